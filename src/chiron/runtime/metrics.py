"""Prometheus metrics of one control plane, in its own registry (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_appended = Counter(
            "chiron_events_appended", "Events appended to session logs", registry=self.registry
        )
        self.executions_finished = Counter(
            "chiron_executions_finished",
            "Executions that reached a terminal status",
            ["status"],
            registry=self.registry,
        )
        self.sandboxes_ready = Counter(
            "chiron_sandboxes_ready",
            "Sandboxes made ready for an execution, by source",
            ["source"],
            registry=self.registry,
        )
        self.executions_driving = Gauge(
            "chiron_executions_driving",
            "Executions this process is driving now",
            registry=self.registry,
        )
