"""The series catalogue is what every sink reads: a series declared once shows up in the replay
report, in /metrics and in /api/kpis, with the family's labels. ``abandoned_short`` is the worked
example of docs/architecture.md (one catalogue entry, one rule line, this test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kpis import catalogue
from kpis.catalogue import IVR, KPI, SERIES, SYSTEM, label_names, lookup, names, require
from kpis.config import EngineConfig
from kpis.report import COUNTS, DURATIONS
from streams.partitioned import PartitionEngine, partition_doc
from streams.sinks.metrics import MetricsCollector
from streams.sinks.readmodel import kpi_view
from tests.helpers import Log, replay_log, row


def _abandons() -> Log:
    """c1 abandons after 3 s (short), c2 after 5 s (short: the bound is inclusive), c3 after
    40 s; c4 is answered."""
    log = Log()
    for c, start, wait in (("c1", 0, 3), ("c2", 100, 5), ("c3", 200, 40)):
        log.add(start, "contact.started", c, tenant="bank")
        log.add(start, "queue.entered", c, tenant="bank", queue="billing")
        log.add(start + wait, "queue.abandoned", c, tenant="bank", queue="billing")
        log.add(start + wait + 1, "contact.ended", c, tenant="bank", ended_by="customer")
    log.add(300, "contact.started", "c4", tenant="bank")
    log.add(300, "queue.entered", "c4", tenant="bank", queue="billing")
    log.add(310, "agent.connected", "c4", tenant="bank", queue="billing", agent_id="a1")
    return log


def test_the_worked_example_is_in_the_report_metrics_and_api_kpis(tmp_path: Path) -> None:
    log = _abandons()
    # the replay report
    rep = replay_log(log, tmp_path)
    m = row(rep, "voice", "billing")
    assert m["abandoned"] == 3 and m["abandoned_short"] == 2
    assert rep["config"]["engine"]["short_abandon_seconds"] == 5.0
    # /metrics: a live partition's aggregates through the collector the worker registers
    pe = PartitionEngine(0, EngineConfig())
    for offset, line in enumerate(log.lines()):
        assert pe.process("in", offset, line).status == "accepted"
    pe.flush()
    registry = CollectorRegistry()
    registry.register(MetricsCollector(pe.metrics, pe.waiting_now))
    labels = {"tenant": "bank", "channel": "voice", "queue": "billing"}
    assert registry.get_sample_value("cc_abandoned_short_total", labels) == 2
    assert registry.get_sample_value("cc_abandoned_total", labels) == 3
    # /api/kpis: the read model's view of the partition documents
    view = kpi_view([partition_doc(pe)], 1)
    rows = {(r["tenant"], r["channel"], r["queue"]): r["metrics"] for r in view["kpis"]}
    assert rows[("bank", "voice", "billing")]["abandoned_short"] == 2
    assert rows[("*", "*", "*")]["abandoned_short"] == 2
    # a threshold of 0 s: none is short
    rep0 = replay_log(log, tmp_path, config=EngineConfig(short_abandon_seconds=0))
    assert row(rep0, "voice", "billing")["abandoned_short"] == 0


def test_every_declared_series_reaches_its_sinks_with_its_family_labels(tmp_path: Path) -> None:
    """A simulated day: every KPI count and duration is a report column and an /api/kpis
    column; every exported series carries its family's labels (plus partition)."""
    from cc_monitor.simulator import SimConfig, lines

    day = list(lines(SimConfig(contacts_per_day=300)))
    pe = PartitionEngine(0, EngineConfig())
    for offset, line in enumerate(day):
        pe.process("in", offset, line)
    pe.flush()
    view = kpi_view([partition_doc(pe)], 1)
    top = next(r["metrics"] for r in view["kpis"] if r["tenant"] == r["channel"] == "*")
    for name in names(KPI, "count", live=True) + names(KPI, "duration", live=True):
        assert name in top, name
    # every count and duration is live but those only a replay's single engine can measure
    # (agent states; repeat contacts, across a customer's cases)
    assert set(COUNTS) - set(top) == {"contacts_identified", "contacts_repeated"}
    assert set(DURATIONS) - set(top) == {"agent_staffed_seconds"}
    registry = CollectorRegistry()
    registry.register(MetricsCollector(parts=lambda: [({"partition": "0"}, pe.metrics, None)]))
    exported = {m.name: m for m in registry.collect()}
    for (name, labels), _ in pe.metrics.counters.items():
        s = require(name)
        if not s.family.exported:  # per agent: report only, never a Prometheus label
            assert s.exported not in exported
            continue
        metric = exported[s.exported]
        sample = metric.samples[0]
        assert set(sample.labels) == {*s.family.labels, *dict(s.const_labels), "partition"} | (
            {"kind"} if s is catalogue.DATA_QUALITY else set()
        )
        assert len(labels) == len(s.family.labels)
        assert metric.documentation == s.exported_help
    for (name, _labels), _ in pe.metrics.histograms.items():
        s = require(name)
        assert (s.exported in exported) == s.family.exported, name  # per agent: never


def test_declarations() -> None:
    assert lookup("dq_unmatched_contact_ended") is catalogue.DATA_QUALITY
    assert label_names("ivr_seconds") == KPI.labels  # per channel and queue, not per flow
    assert label_names("ivr_time_seconds") == IVR.labels
    assert label_names("system_down") == SYSTEM.labels
    with pytest.raises(ValueError, match="did you mean 'abandoned'"):
        require("abandonned")
    assert all(
        s.kind != "duration" or s.unit == "seconds" for s in SERIES if s.name.endswith("_seconds")
    )
    # report-only families are the per-agent ones (an agent id is never a Prometheus label)
    assert all(s.family.exported or s.family.labels[:2] == ("tenant", "agent") for s in SERIES)
    # report column order is the catalogue's: the first KPI columns, as reports have them
    assert COUNTS[:5] == ("contacts", "cases_opened", "queued", "answered", "answered_in_sl")


def test_alert_rules_name_only_declared_series() -> None:
    from pydantic import ValidationError

    from alerts.rules import RulesConfig

    with pytest.raises(ValidationError, match="unknown series 'abandonned'"):
        RulesConfig.model_validate({"rules": {"callbacks_breaching": {"series": "abandonned"}}})
    ok = RulesConfig.model_validate({"rules": {"callbacks_breaching": {"series": "abandoned"}}})
    assert ok.rules["callbacks_breaching"].series == "abandoned"  # type: ignore[union-attr]
