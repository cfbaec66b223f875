"""The field names ``spec`` of an Environment may hold (the CRD's schema, reduced).

Generated from manifests/gitopsd/crd.yaml by ``python -m gitopsd.fieldcheck``: do not edit by hand.
"""

from gitopsd.fieldcheck import Node

SPEC: Node = {
    "source": {
        "url": None,
        "branch": None,
        "tag": None,
        "semver": None,
        "commit": None,
        "path": None,
        "secretRef": {
            "name": None
        }
    },
    "chart": {
        "repository": None,
        "name": None,
        "version": None,
        "secretRef": {
            "name": None
        }
    },
    "helm": {
        "releaseName": None,
        "valuesFiles": [
            None
        ],
        "values": None,
        "valuesFrom": [
            {
                "kind": None,
                "name": None,
                "key": None,
                "optional": None
            }
        ],
        "skipCRDs": None
    },
    "kubeConfig": {
        "secretRef": {
            "name": None,
            "key": None
        }
    },
    "dependsOn": [
        {
            "name": None,
            "namespace": None
        }
    ],
    "serviceAccountName": None,
    "targetNamespace": None,
    "interval": None,
    "prune": None,
    "allowEmpty": None,
    "wait": {
        "timeout": None
    },
    "suspend": None,
    "force": None,
    "substitute": {
        "*": None
    },
    "substituteFrom": [
        {
            "kind": None,
            "name": None,
            "optional": None
        }
    ],
    "historyLimit": None,
    "rollback": {
        "auto": None
    },
    "freeze": [
        {
            "start": None,
            "end": None,
            "cron": None,
            "duration": None,
            "timezone": None
        }
    ],
    "notify": [
        {
            "notifier": None,
            "events": [
                None
            ],
            "severity": None
        }
    ],
    "verification": {
        "prometheus": {
            "url": None,
            "secretRef": {
                "name": None
            },
            "timeout": None
        },
        "startDelay": None,
        "interval": None,
        "samples": None,
        "deadline": None,
        "onFailure": None,
        "enforce": None,
        "metrics": [
            {
                "name": None,
                "query": None,
                "window": None,
                "range": {
                    "min": None,
                    "max": None
                },
                "failureThreshold": None,
                "noData": None
            }
        ]
    },
    "promotion": {
        "requireHealthyIn": [
            {
                "name": None
            }
        ],
        "match": None
    }
}
