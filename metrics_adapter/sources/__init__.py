"""Upstreams whose values the adapter serves (Prometheus here; queue brokers in metrics_adapter.queues)."""
