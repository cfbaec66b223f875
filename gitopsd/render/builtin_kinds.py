"""Which built-in Kubernetes types are namespaced, by API group and kind (kube-apiserver v1.33.13).

Generated from the server's discovery by ``python -m gitopsd.render.scopes``: do not edit by hand.
"""

SERVER_VERSION = "v1.33.13"

NAMESPACED: dict[str, dict[str, bool]] = {
    "": {
        "Binding": True,
        "ComponentStatus": False,
        "ConfigMap": True,
        "Endpoints": True,
        "Event": True,
        "LimitRange": True,
        "Namespace": False,
        "Node": False,
        "PersistentVolume": False,
        "PersistentVolumeClaim": True,
        "Pod": True,
        "PodTemplate": True,
        "ReplicationController": True,
        "ResourceQuota": True,
        "Secret": True,
        "Service": True,
        "ServiceAccount": True,
    },
    "admissionregistration.k8s.io": {
        "MutatingWebhookConfiguration": False,
        "ValidatingAdmissionPolicy": False,
        "ValidatingAdmissionPolicyBinding": False,
        "ValidatingWebhookConfiguration": False,
    },
    "apiextensions.k8s.io": {
        "CustomResourceDefinition": False,
    },
    "apiregistration.k8s.io": {
        "APIService": False,
    },
    "apps": {
        "ControllerRevision": True,
        "DaemonSet": True,
        "Deployment": True,
        "ReplicaSet": True,
        "StatefulSet": True,
    },
    "authentication.k8s.io": {
        "SelfSubjectReview": False,
        "TokenReview": False,
    },
    "authorization.k8s.io": {
        "LocalSubjectAccessReview": True,
        "SelfSubjectAccessReview": False,
        "SelfSubjectRulesReview": False,
        "SubjectAccessReview": False,
    },
    "autoscaling": {
        "HorizontalPodAutoscaler": True,
    },
    "batch": {
        "CronJob": True,
        "Job": True,
    },
    "certificates.k8s.io": {
        "CertificateSigningRequest": False,
    },
    "coordination.k8s.io": {
        "Lease": True,
    },
    "discovery.k8s.io": {
        "EndpointSlice": True,
    },
    "events.k8s.io": {
        "Event": True,
    },
    "flowcontrol.apiserver.k8s.io": {
        "FlowSchema": False,
        "PriorityLevelConfiguration": False,
    },
    "networking.k8s.io": {
        "IPAddress": False,
        "Ingress": True,
        "IngressClass": False,
        "NetworkPolicy": True,
        "ServiceCIDR": False,
    },
    "node.k8s.io": {
        "RuntimeClass": False,
    },
    "policy": {
        "PodDisruptionBudget": True,
    },
    "rbac.authorization.k8s.io": {
        "ClusterRole": False,
        "ClusterRoleBinding": False,
        "Role": True,
        "RoleBinding": True,
    },
    "scheduling.k8s.io": {
        "PriorityClass": False,
    },
    "storage.k8s.io": {
        "CSIDriver": False,
        "CSINode": False,
        "CSIStorageCapacity": True,
        "StorageClass": False,
        "VolumeAttachment": False,
    },
}
