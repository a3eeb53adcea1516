"""Engine observations as Prometheus metrics.

:class:`MetricsSink` keeps cumulative aggregates (counters, histogram buckets, gauges) in plain
dicts, so a live worker can checkpoint them with the engine's snapshot and its offsets: after a
restart the exported totals continue instead of starting from zero, and they equal what a replay
of the same events gives. :class:`MetricsCollector` exports them to a ``CollectorRegistry``.

Names follow Prometheus conventions (base units, ``_seconds``, ``_total``); labels are bounded:
``tenant``, ``channel``, ``queue`` (KPI series), ``flow``, ``menu`` (IVR), ``component``
(platform), ``reason`` (contact reasons, bounded per tenant), plus ``rule`` / ``kind``
enumerations. Never a contact, customer or agent id.
See docs/metrics.md for the full list.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from kpis.catalogue import DATA_QUALITY, DQ_PREFIX, KPI, lookup
from kpis.interfaces import Labels

NAMESPACE = "cc"
# From a second to a week: first response and resolution run to days, handle time to minutes.
BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200,
    86400, 172800, 345600, 604800,
)  # fmt: skip


def _exported(name: str) -> bool:
    """False for report-only families (per agent: an agent id is never a Prometheus label)."""
    s = lookup(name)
    return s is None or s.family.exported


def _family(name: str) -> tuple[str, tuple[str, ...], dict[str, str], str]:
    """Exported metric name, label names, constant labels and help text of an engine series,
    from its declaration in the series catalogue."""
    s = lookup(name)
    if s is None:  # not declared (a test keeps every emitted series declared): export anyway
        return f"{NAMESPACE}_{name}", KPI.labels, {}, f"{name.replace('_', ' ')}."
    const = dict(s.const_labels)
    if s is DATA_QUALITY:
        const["kind"] = name[len(DQ_PREFIX) :]
    return s.exported, s.family.labels, const, s.exported_help


class MetricsSink:
    """A :class:`kpis.interfaces.KpiSink` that aggregates for Prometheus. Pure; no registry."""

    def __init__(self, buckets: Iterable[float] = BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counters: dict[tuple[str, Labels], float] = {}
        # per series: [count in each bucket (not cumulative)..., count above the last, sum]
        self.histograms: dict[tuple[str, Labels], list[float]] = {}
        self.gauges: dict[tuple[str, Labels], float] = {}

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + 1.0

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        key = (name, labels)
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = [0.0] * (len(self.buckets) + 2)
        h[bisect.bisect_left(self.buckets, value)] += 1.0
        h[-1] += value

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self.gauges[(name, labels)] = value

    def snapshot(self) -> dict[str, Any]:
        def dump(d: dict[tuple[str, Labels], Any]) -> list[list[Any]]:
            return [[name, list(labels), value] for (name, labels), value in sorted(d.items())]

        return {
            "buckets": list(self.buckets),
            "counters": dump(self.counters),
            "histograms": dump(self.histograms),
            "gauges": dump(self.gauges),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        if tuple(snap["buckets"]) != self.buckets:
            raise ValueError("the snapshot was taken with other histogram buckets")
        self.counters = {(n, tuple(lb)): float(v) for n, lb, v in snap["counters"]}
        self.histograms = {(n, tuple(lb)): [float(x) for x in v] for n, lb, v in snap["histograms"]}
        self.gauges = {(n, tuple(lb)): float(v) for n, lb, v in snap["gauges"]}


WaitingNow = Callable[[], dict[Labels, tuple[int, float]]]
Part = tuple[dict[str, str], MetricsSink, WaitingNow | None]
"""One exported part: constant labels (a live worker's ``partition``), its sink, its queues."""


class MetricsCollector(Collector):
    """Exports :class:`MetricsSink` aggregates (and the queues' live state) on each scrape.

    A live worker exports one part per input partition it owns, labelled ``partition``: when a
    partition moves to another worker, its series move with it (the new owner continues them
    from the checkpoint) instead of making another series drop, which Prometheus would take
    for a counter reset.
    """

    def __init__(
        self,
        sink: MetricsSink | None = None,
        waiting_now: WaitingNow | None = None,
        *,
        parts: Callable[[], Iterable[Part]] | None = None,
    ) -> None:
        if parts is None:
            if sink is None:
                raise ValueError("a sink or parts")
            single: list[Part] = [({}, sink, waiting_now)]
            parts = lambda: single  # noqa: E731
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        parts = list(self.parts())
        counters: dict[str, CounterMetricFamily] = {}
        histograms: dict[str, HistogramMetricFamily] = {}
        gauges: dict[str, GaugeMetricFamily] = {}
        live: list[tuple[dict[str, str], WaitingNow, MetricsSink]] = []
        folded: CounterMetricFamily | None = None
        for const, sink, waiting_now in parts:
            cn, cv = list(const), list(const.values())
            by_dimension: dict[str, float] = {}
            for (name, labels), value in sorted(sink.counters.items()):
                if name.startswith(FOLDED):
                    dim = name[len(FOLDED) :]
                    by_dimension[dim] = by_dimension.get(dim, 0.0) + value
                if not _exported(name):
                    continue
                metric, label_names, extra, text = _family(name)
                fam = counters.get(metric)
                if fam is None:
                    fam = counters[metric] = CounterMetricFamily(
                        metric, text, labels=[*label_names, *extra, *cn]
                    )
                fam.add_metric([*labels, *extra.values(), *cv], value)
            if by_dimension:
                if folded is None:
                    folded = CounterMetricFamily(*LABELS_FOLDED, labels=["dimension", *cn])
                for dim, value in sorted(by_dimension.items()):
                    folded.add_metric([dim, *cv], value)
            for (name, labels), h in sorted(sink.histograms.items()):
                if not _exported(name):
                    continue
                metric, label_names, _, text = _family(name)
                fam_h = histograms.get(metric)
                if fam_h is None:
                    fam_h = histograms[metric] = HistogramMetricFamily(
                        metric, text, labels=[*label_names, *cn]
                    )
                cumulative = 0.0
                buckets: list[tuple[str, float]] = []
                for bound, n in zip(sink.buckets, h, strict=False):
                    cumulative += n
                    buckets.append((repr(float(bound)), cumulative))
                total = cumulative + h[len(sink.buckets)]
                buckets.append(("+Inf", total))
                fam_h.add_metric([*labels, *cv], buckets, h[-1])
            for (name, labels), value in sorted(sink.gauges.items()):
                if (name == "waiting" and waiting_now is not None) or not _exported(name):
                    continue  # exported from the live view below; per agent: never
                metric, label_names, extra, text = _family(name)
                fam_g = gauges.get(metric)
                if fam_g is None:
                    fam_g = gauges[metric] = GaugeMetricFamily(
                        metric, text, labels=[*label_names, *extra, *cn]
                    )
                fam_g.add_metric([*labels, *extra.values(), *cv], value)
            if waiting_now is not None:
                live.append((const, waiting_now, sink))
        yield from counters.values()
        if folded is not None:
            yield folded
        yield from histograms.values()
        yield from gauges.values()
        if live:
            names = [*KPI.labels, *live[0][0]]
            waiting = GaugeMetricFamily(
                f"{NAMESPACE}_contacts_waiting", "Contacts waiting in queue.", labels=names
            )
            oldest = GaugeMetricFamily(*OLDEST_WAIT, labels=names)
            for const, waiting_now, sink in live:
                now = waiting_now()
                # every queue contacts have entered has a series: 0 when nobody waits, so a
                # wallboard shows an empty queue as 0, not as no data
                queues = {lb for (name, lb) in sink.counters if name == "queued"}
                for labels in sorted(queues | set(now)):
                    n, age = now.get(labels, (0, 0.0))
                    waiting.add_metric([*labels, *const.values()], n)
                    oldest.add_metric([*labels, *const.values()], age)
            yield waiting
            yield oldest


FOLDED = "dq_label_folded_"
LABELS_FOLDED = (
    f"{NAMESPACE}_label_values_folded",
    "Events whose label value was folded into 'other' past its dimension's cap (kpis.rules."
    "labels), by dimension: the sum of the data-quality kinds label_folded_<dimension>.",
)
"""Derived from the data-quality counts, for an alert that needs no label but the dimension."""

OLDEST_WAIT = (
    f"{NAMESPACE}_oldest_wait_seconds",
    "Wait of the longest-waiting contact, at the watermark.",
)
"""Exported from a live worker's queue view, next to the catalogue's ``contacts_waiting``."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 300,
)  # fmt: skip


class RecordStats(Collector):
    """Per-record pipeline metrics, ``cc_events_consumed_total{topic,type}`` and
    ``cc_processing_latency_seconds``, in plain Python numbers.

    prometheus-client's own ``Counter.inc`` and ``Histogram.observe`` take a lock on every
    call, several microseconds each; at tens of thousands of records a second that was over a
    tenth of a worker's time. A worker's records are handled on one event loop thread, and
    scrapes run on the same loop, so no lock is needed.
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.consumed: dict[tuple[str, str], int] = {}
        self.latency_counts = [0] * (len(buckets) + 1)  # the last is +Inf
        self.latency_sum = 0.0

    def count(self, topic: str, event_type: str) -> None:
        key = (topic, event_type)
        self.consumed[key] = self.consumed.get(key, 0) + 1

    def observe_latency(self, seconds: float) -> None:
        # a value on a bound belongs to that bucket (le), as in prometheus-client
        self.latency_counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.latency_sum += seconds

    def collect(self) -> Iterator[Metric]:
        consumed = CounterMetricFamily(
            "cc_events_consumed", "Input records consumed.", labels=["topic", "type"]
        )
        for (topic, etype), n in sorted(self.consumed.items()):
            consumed.add_metric([topic, etype], n)
        yield consumed
        cumulative: list[tuple[str, float]] = []
        total = 0
        for le, n in zip([*self.buckets, float("inf")], self.latency_counts, strict=True):
            total += n
            cumulative.append((floatToGoString(le), total))  # type: ignore[no-untyped-call]
        latency = HistogramMetricFamily(
            "cc_processing_latency_seconds",
            "From a record's append to the input topic to its processing (wall clock).",
        )
        latency.add_metric([], cumulative, self.latency_sum)
        yield latency
