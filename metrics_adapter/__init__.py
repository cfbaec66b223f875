"""metrics_adapter: custom.metrics.k8s.io and external.metrics.k8s.io from Prometheus and queues."""

__version__ = "0.1.0.dev0"
