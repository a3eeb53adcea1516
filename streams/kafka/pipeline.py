"""The live worker's own metrics (the per-record ones are :class:`RecordStats`), the status
of a shared store as /health reports it, and the staffing gauges of the evaluating worker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("cc_monitor.worker")


@dataclass
class PipelineMetrics:
    """Metrics updated now and then; the per-record ones are :class:`RecordStats`."""

    rejected: Counter
    rerouted: Counter
    event_time_lag: Gauge
    consumer_lag: Gauge
    checkpoints: Counter
    checkpoint_bytes: Gauge
    redis_up: Gauge
    owned: Gauge
    gaps: Counter
    checkpoint_seconds: Histogram
    alerts_firing: Gauge
    notifications: Counter
    log_lost: Counter
    broker_up: Gauge
    rejected_share: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        return cls(
            rejected=Counter("cc_events_rejected", "Input records dead-lettered, by reason.",
                             ["reason"], registry=registry),
            rerouted=Counter("cc_records_rerouted", "Input records that arrived on a partition "
                             "their case does not hash to (a producer not keyed by case), sent "
                             "on to theirs.", ["topic"], registry=registry),
            event_time_lag=Gauge(
                "cc_event_time_lag_seconds",
                "Wall clock minus the latest event time this worker has processed.",
                registry=registry,
            ),
            consumer_lag=Gauge("cc_consumer_lag", "Records not yet consumed, per partition.",
                               ["topic", "partition"], registry=registry),
            checkpoints=Counter("cc_checkpoints", "Partition checkpoints saved.",
                                registry=registry),
            checkpoint_bytes=Gauge("cc_checkpoint_bytes", "Size of the latest checkpoint.",
                                   ["partition"], registry=registry),
            redis_up=Gauge("cc_redis_up", "1 while the shared stores (the KPI view, the alert "
                           "store) answer.", registry=registry),
            owned=Gauge("cc_partitions_owned", "Input partitions this worker owns.",
                        registry=registry),
            checkpoint_seconds=Histogram(
                "cc_checkpoint_duration_seconds",
                "Time to serialize and hand over one partition checkpoint (processing waits).",
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=registry,
            ),
            gaps=Counter("cc_offset_gaps", "Records delivered ahead of the next offset due "
                         "(stale after a rebalance); read again after a seek.",
                         registry=registry),
            alerts_firing=Gauge("cc_alerts_firing", "Alerts firing, on the worker that "
                                "evaluates the rules (0 elsewhere: sum over workers).",
                                ["alertname", "severity"], registry=registry),
            notifications=Counter("cc_alert_notifications", "Alert transitions notified "
                                  "(alerts topic and receivers), once across workers.",
                                  ["status"], registry=registry),
            log_lost=Counter("cc_input_log_lost", "A partition's log found ending before the "
                             "offsets its checkpoint covers (records lost by the broker, a "
                             "topic recreated); it continues from the log's end.",
                             ["topic", "partition"], registry=registry),
            broker_up=Gauge("cc_broker_up", "0 once the broker has failed the worker's end-offset "
                            "request, or not answered it for 20 s; else 1.", registry=registry),
            rejected_share=Gauge("cc_input_rejected_share", "Share of the input records read in "
                                 "the last worker.reject_window_seconds that were rejected; "
                                 "/health is degraded at worker.reject_alarm_share.",
                                 registry=registry),
        )  # fmt: skip


class StoreStatus:
    """Whether a shared store (the KPI view, the alert coordination) answered last time: None
    before the first try. Processing never waits for a store; /health says it is down."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ok: bool | None = None
        self.error = ""

    def failed(self, exc: Exception) -> None:
        if self.ok is not False:
            log.warning("%s unreachable, processing goes on: %s", self.name, exc)
        self.ok = False
        self.error = f"{type(exc).__name__}: {exc}"

    def answered(self) -> None:
        if self.ok is False:
            log.info("%s reachable again; caught up", self.name)
        self.ok = True
        self.error = ""

    def problem(self) -> str | None:
        return f"{self.name} unreachable: {self.error}" if self.ok is False else None


class StaffingCollector(Collector):
    """``cc_required_agents`` and ``cc_forecast_offered`` per queue, from the staffing view of
    the worker evaluating the rules (the others export none: a dashboard takes the max)."""

    def __init__(self, rows: Callable[[], list[dict[str, object]] | None]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        labels = ["tenant", "channel", "queue", "horizon"]
        required = GaugeMetricFamily(
            "cc_required_agents",
            "Agents a queue needs for its service-level target (Erlang C): for the current "
            "interval's load so far (horizon=now) and the next interval's forecast (next).",
            labels=labels,
        )
        forecast = GaugeMetricFamily(
            "cc_forecast_offered",
            "Contacts expected in the next interval (same weekday and interval of previous weeks).",
            labels=labels[:3],
        )
        for row in self.rows() or ():
            if row["tenant"] == "*":
                continue  # rollups belong to queries
            lb = [str(row["tenant"]), str(row["channel"]), str(row["queue"])]
            for key, horizon in (("required_agents", "now"), ("forecast_required_agents", "next")):
                value = row[key]
                if isinstance(value, int | float):
                    required.add_metric([*lb, horizon], float(value))
            offered = row["forecast_offered"]
            if isinstance(offered, int | float):
                forecast.add_metric(lb, float(offered))
        yield required
        yield forecast
