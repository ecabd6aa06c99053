"""Prometheus metrics of the service: latency per route, decisions by tier, bundle in use."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Buckets from 1 ms to 5 s: a per-turn score takes a few milliseconds, a reload seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

__all__ = ["PROMETHEUS_CONTENT_TYPE", "ServiceMetrics"]


class ServiceMetrics:
    """The service's collectors, in a registry of their own so tests can build several apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "escalation_request_seconds", "Request latency by route template and method.",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.decisions = Counter(
            "escalation_decisions_total", "Decisions made on scored turns, by tier.",
            ["tier"], registry=self.registry,
        )
        self.escalations = Counter(
            "escalation_escalations_total", "Conversations newly escalated, by reason.",
            ["reason"], registry=self.registry,
        )
        self.bundle_info = Gauge(
            "escalation_bundle_info", "The model bundle in use (value 1) by name.",
            ["bundle"], registry=self.registry,
        )
        self.live_conversations = Gauge(
            "escalation_live_conversations", "Conversations with state in this worker.",
            registry=self.registry,
        )

    def set_bundle(self, name: str) -> None:
        """Mark `name` as the bundle in use, clearing the previous one."""
        self.bundle_info.clear()
        self.bundle_info.labels(bundle=name).set(1)

    def render(self) -> bytes:
        """Return the text exposition format of every collector."""
        return generate_latest(self.registry)
