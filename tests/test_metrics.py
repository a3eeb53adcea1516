"""Live metrics: the same numbers as the replay report, bounded labels, checkpointable."""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cc_monitor.simulator import SimConfig, simulate
from kpis.catalogue import label_names
from kpis.config import EngineConfig
from kpis.decode import Decoder, Rejection
from kpis.engine import Engine
from kpis.interfaces import FanOut
from kpis.report import COUNTS, DURATIONS, ReportSink, build_sections
from kpis.wire import Rec
from streams.sinks.metrics import MetricsCollector, MetricsSink

ALLOWED_LABELS = {
    "tenant", "channel", "queue", "flow", "menu", "component", "reason", "category", "rule",
    "kind", "le",
}  # fmt: skip


@lru_cache(maxsize=1)
def records() -> tuple[tuple[Rec, float], ...]:
    dec = Decoder()
    return tuple(dec.decode(orjson.dumps(ev)) for ev in simulate(SimConfig(contacts_per_day=800)))


def run(recs: Any, metrics: MetricsSink, report: ReportSink | None = None) -> Engine:
    sink = FanOut(metrics, (report, None)) if report is not None else metrics
    eng = Engine(EngineConfig(), sink)
    for r in recs:
        eng.ingest(*r)
    eng.finish()
    return eng


def samples(registry: CollectorRegistry) -> dict[str, float]:
    """Sum of every sample by name (over all label sets)."""
    out: dict[str, float] = {}
    for fam in registry.collect():
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def test_metrics_totals_equal_the_replay_report() -> None:
    metrics, report = MetricsSink(), ReportSink(ZoneInfo("UTC"))
    eng = run(records(), metrics, report)
    registry = CollectorRegistry()
    registry.register(MetricsCollector(metrics, eng.waiting_now))
    got = samples(registry)
    sections = build_sections(report)
    total = next(r["metrics"] for r in sections["kpis"] if r["period"] == "total"
                 and (r["tenant"], r["channel"], r["queue"]) == ("*", "*", "*"))  # fmt: skip
    for name in COUNTS:
        assert got.get(f"cc_{name}_total", 0.0) == total[name], name
    for name in DURATIONS:
        assert got.get(f"cc_{name}_count", 0.0) == total[name]["count"], name
        if total[name]["count"]:
            mean = got[f"cc_{name}_sum"] / got[f"cc_{name}_count"]
            assert abs(mean - total[name]["mean"]) < 1e-3, name
    ivr = next(r["metrics"] for r in sections["ivr"] if r["period"] == "total"
               and (r["flow"], r["menu"]) == ("main", "loans.mortgage.rates"))  # fmt: skip
    depth = registry.get_sample_value(
        "cc_ivr_rule_breaches_total",
        {"tenant": "bank", "channel": "voice", "flow": "main", "menu": "loans.mortgage.rates",
         "rule": "depth_exceeded"},
    )  # fmt: skip
    assert depth == ivr["ivr_depth_exceeded"] > 0
    assert got["cc_system_down_total"] == 1


def test_labels_are_bounded_and_the_exposition_parses() -> None:
    metrics = MetricsSink()
    eng = run(records(), metrics)
    registry = CollectorRegistry()
    registry.register(MetricsCollector(metrics, eng.waiting_now))
    text = generate_latest(registry).decode()
    contact_ids = {r.contact_id for r, _ in records()}
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} >= {
        "cc_contacts", "cc_answered", "cc_abandoned", "cc_first_response_seconds",
        "cc_handle_seconds", "cc_resolution_seconds", "cc_contacts_waiting",
        "cc_oldest_wait_seconds", "cc_ivr_rule_breaches", "cc_callbacks_breached",
    }  # fmt: skip
    for fam in families:
        for s in fam.samples:
            assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
            assert not set(s.labels.values()) & contact_ids, s
    # every series' label values match its label names (none silently dropped)
    for name, labels in [*metrics.counters, *metrics.histograms, *metrics.gauges]:
        assert len(labels) == len(label_names(name)), name
    ivr_time = [s for f in families if f.name == "cc_ivr_seconds" for s in f.samples]
    assert ivr_time and all(set(s.labels) - {"le"} == {"tenant", "channel", "queue"}
                            for s in ivr_time)  # fmt: skip
    buckets = [s for f in families if f.name == "cc_handle_seconds" for s in f.samples
               if s.name.endswith("_bucket")]  # fmt: skip
    assert {s.labels["le"] for s in buckets} >= {"1.0", "86400.0", "604800.0", "+Inf"}


def test_a_checkpoint_of_metrics_and_engine_continues_the_same_totals() -> None:
    recs = records()
    whole = MetricsSink()
    run(recs, whole)
    cut = len(recs) // 2
    first = MetricsSink()
    eng = Engine(EngineConfig(), first)
    for r in recs[:cut]:
        eng.ingest(*r)
    checkpoint = orjson.loads(orjson.dumps({"engine": eng.snapshot(), "metrics": first.snapshot()}))
    second = MetricsSink()
    second.restore(checkpoint["metrics"])
    eng2 = Engine(EngineConfig(), second)
    eng2.restore(checkpoint["engine"])
    for r in recs[cut - 50 :]:  # redelivered from before the checkpoint
        with contextlib.suppress(Rejection):
            eng2.ingest(*r)
    eng2.finish()
    assert second.snapshot() == whole.snapshot()


def test_a_snapshot_of_live_objects_encodes_to_the_plain_snapshot() -> None:
    """Checkpoints encode the state objects directly (Engine.snapshot(objects=True)): the JSON
    must be the plain snapshot's, and restore from it to the same totals."""
    import msgspec

    recs = records()
    cut = len(recs) * 2 // 3  # mid-day: open contacts with segments, cases, callbacks, buffer
    first = MetricsSink()
    eng = Engine(EngineConfig(), first)
    for r in recs[:cut]:
        eng.ingest(*r)
    plain = eng.snapshot()
    assert plain["contacts"] and plain["cases"] and plain["callbacks"] and plain["buffer"]
    assert any(c["segments"] for c in plain["contacts"].values())
    encoded = msgspec.json.encode(eng.snapshot(objects=True))
    decoded = orjson.loads(encoded)
    for key in ("seen", "seen_old"):  # sets, written in any order
        decoded[key].sort()
    assert decoded == orjson.loads(orjson.dumps(plain))
    whole, second = MetricsSink(), MetricsSink()
    run(recs, whole)
    second.restore(first.snapshot())
    eng2 = Engine(EngineConfig(), second)
    eng2.restore(orjson.loads(encoded))
    for r in recs[cut:]:
        eng2.ingest(*r)
    eng2.finish()
    assert second.snapshot() == whole.snapshot()


def test_record_stats_export_counts_and_a_cumulative_latency_histogram() -> None:
    from streams.sinks.metrics import RecordStats

    reg = CollectorRegistry()
    stats = RecordStats(buckets=(0.1, 1.0))
    reg.register(stats)
    for topic, etype in [("calls", "contact.started"), ("calls", "contact.started"),
                         ("ivr", "invalid")]:  # fmt: skip
        stats.count(topic, etype)
    for seconds in (0.05, 0.1, 0.5, 7.0):  # 0.1 is on a bound: in that bucket (le)
        stats.observe_latency(seconds)
    get = reg.get_sample_value
    assert get("cc_events_consumed_total", {"topic": "calls", "type": "contact.started"}) == 2
    assert get("cc_events_consumed_total", {"topic": "ivr", "type": "invalid"}) == 1
    assert get("cc_processing_latency_seconds_bucket", {"le": "0.1"}) == 2
    assert get("cc_processing_latency_seconds_bucket", {"le": "1.0"}) == 3
    assert get("cc_processing_latency_seconds_bucket", {"le": "+Inf"}) == 4
    assert get("cc_processing_latency_seconds_count") == 4
    assert get("cc_processing_latency_seconds_sum") == 7.65
