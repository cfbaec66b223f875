"""What the demo deploys and how it is configured: the shop repository's files, its Environments,
the daemon's and the adapter's config.

Kept apart from the story so a reader sees the whole GitOps side in one place: a kustomize base
(the ``web`` Deployment and Service) with one overlay per environment; prod's overlay adds an
HPA on two metrics, a request rate from Prometheus and a Redis job queue's length.
"""

from __future__ import annotations

NAMESPACE = "gitopsd-system"  # where the Environments live
APP = "web"
TARGETS = {"dev": "shop-dev", "staging": "shop-staging", "prod": "shop-prod"}
QUEUE = "jobs"  # the Redis list behind the external metric
REQUEST_METRIC = "http_requests_per_second"
QUEUE_METRIC = "jobs_backlog"
REQUEST_TARGET = 10  # requests/s per pod the HPA aims for
QUEUE_TARGET = 5  # queued jobs per pod the HPA aims for
PROD_WAIT = 15  # seconds prod's health gate waits for the pods to turn Ready
NEVER_READY = "e2e.gitopsd.dev/never-ready"


def _web(version: str) -> str:
    # No `replicas`: the HPA owns it in prod (server-side apply leaves a field nobody sets alone).
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop/web:{version}
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def _namespace(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


HPA = f"""\
# Scale web on whichever asks for more pods: the requests per second its Service receives, 10 per
# pod (Prometheus, through the adapter's custom metrics API), or the jobs queued, 5 per pod (a
# Redis list, through its external metrics API).
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Object
    object:
      describedObject: {{apiVersion: v1, kind: Service, name: web}}
      metric: {{name: {REQUEST_METRIC}}}
      target: {{type: AverageValue, averageValue: "{REQUEST_TARGET}"}}
  - type: External
    external:
      metric: {{name: {QUEUE_METRIC}}}
      target: {{type: AverageValue, averageValue: "{QUEUE_TARGET}"}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 15}}
"""

_PROD_PATCH = """\
# Production settings for web.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    metadata:
      labels: @LABELS@
    spec:
      containers:
      - name: web
        env:
        - {name: CHECKOUT_URL, value: "http://@BACKEND@.shop-prod.svc"}
"""


def initial_files(version: str) -> dict[str, str]:
    """The first commit: base, three overlays (prod with its HPA)."""
    files = {
        "deploy/base/kustomization.yaml": "resources: [web.yaml]\n",
        "deploy/base/web.yaml": _web(version),
        "deploy/overlays/prod/hpa.yaml": HPA,
    }
    for env, ns in TARGETS.items():
        extra = ", hpa.yaml" if env == "prod" else ""
        files[f"deploy/overlays/{env}/kustomization.yaml"] = f"resources: [../../base, namespace.yaml{extra}]\n"
        files[f"deploy/overlays/{env}/namespace.yaml"] = _namespace(ns)
    return files


def web_version(version: str) -> dict[str, str]:
    return {"deploy/base/web.yaml": _web(version)}


def prod_settings(*, broken: bool) -> dict[str, str]:
    """Prod's overlay patched with a setting; the broken one names a backend prod does not have.

    kwok pods run no code, so a readiness probe cannot fail by itself: the pod label
    ``e2e.gitopsd.dev/never-ready`` (the harness keeps such pods un-Ready) stands in for it.
    """
    if broken:
        labels = f'{{{NEVER_READY}: "true"}}   # kwok: the probe fails (no checkout-v2 in prod)'
        patch = _PROD_PATCH.replace("@LABELS@", labels).replace("@BACKEND@", "checkout-v2")
    else:
        patch = _PROD_PATCH.replace("@LABELS@", "{}").replace("@BACKEND@", "checkout")
    return {
        "deploy/overlays/prod/kustomization.yaml": (
            "resources: [../../base, namespace.yaml, hpa.yaml]\npatches:\n- path: web-prod.yaml\n"
        ),
        "deploy/overlays/prod/web-prod.yaml": patch,
    }


def environments(repo_url: str) -> str:
    """dev follows develop, staging main, prod the newest release tag (with automatic rollback)."""
    common = "  interval: 30s\n  prune: true\n"
    return f"""\
apiVersion: gitopsd.dev/v1alpha1
kind: Environment
metadata: {{name: dev, namespace: {NAMESPACE}}}
spec:
  source: {{url: "{repo_url}", branch: develop, path: deploy/overlays/dev}}
  targetNamespace: {TARGETS["dev"]}
{common}  wait: {{timeout: 1m}}
---
apiVersion: gitopsd.dev/v1alpha1
kind: Environment
metadata: {{name: staging, namespace: {NAMESPACE}}}
spec:
  source: {{url: "{repo_url}", branch: main, path: deploy/overlays/staging}}
  targetNamespace: {TARGETS["staging"]}
{common}  wait: {{timeout: 1m}}
---
apiVersion: gitopsd.dev/v1alpha1
kind: Environment
metadata: {{name: prod, namespace: {NAMESPACE}}}
spec:
  source: {{url: "{repo_url}", semver: "*", path: deploy/overlays/prod}}   # "*": the newest release tag
  targetNamespace: {TARGETS["prod"]}
{common}  wait: {{timeout: {PROD_WAIT}s}}        # the health gate
  rollback: {{auto: true}}      # a release that fails it is rolled back, and its revision held
"""


def daemon_config(secret_name: str) -> str:
    """The daemon's own config: the generic webhook (what ``gitopsd notify`` calls) and its secret."""
    return f"""\
apiVersion: gitopsd.dev/v1alpha1
kind: DaemonConfig
secretNamespace: {NAMESPACE}
webhooks:
  generic: {{secretRef: {{name: {secret_name}, key: generic}}}}
"""


def post_receive_hook(python: str, repo_url: str, receiver: str, secret_file: str) -> str:
    """The bare repository's hook: tell gitopsd about every pushed branch and tag (docs/push-to-deploy.md)."""
    return f"""\
#!/bin/sh
# post-receive: tell gitopsd about each branch or tag this push moved, so it deploys at once.
export GITOPSD_RECEIVER="{receiver}" GITOPSD_SECRET_FILE="{secret_file}"
while read -r old new ref; do
  case "$ref" in
    refs/heads/*|refs/tags/*)
      "{python}" -m gitopsd notify --url "{repo_url}" --ref "$ref" --after "$new" --timeout 5 || true ;;
  esac
done
"""


def adapter_config(redis_url: str) -> str:
    """The request rate from the demo app's counter (per Service and per pod), and the Redis list's length."""
    return f"""\
rules:
- seriesQuery: 'demo_http_requests_total{{namespace!="",service!=""}}'
  resources:
    overrides:
      namespace: {{resource: namespace}}
      service: {{resource: service}}
      pod: {{resource: pod}}
  name: {{matches: "^demo_http_requests_total$", as: "{REQUEST_METRIC}"}}
  metricsQuery: sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[5s])) by (<<.GroupBy>>)
queues:
- name: {QUEUE_METRIC}
  namespace: {TARGETS["prod"]}
  redis: {{url: "{redis_url}", list: {QUEUE}}}
"""
