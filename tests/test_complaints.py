"""Complaints tracked to the end (kpis.rules.complaints): times to acknowledge and close
against targets, overdue, reopened, the bounded category, bad input counted, live equal to
replay, and the KS S 1006 다.(1) items."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kpis.config import ComplaintTarget, EngineConfig, LabelCaps, ReasonList
from kpis.decode import Decoder
from kpis.engine import Engine
from streams.partitioned import partition_doc, replay_partitioned
from streams.sinks.metrics import MetricsSink
from tests.builders import ev, kpi_total, report

pytestmark = pytest.mark.unit
H, DAY = 3600.0, 86_400.0


def comp(kind: str, cid: str, at: float, contact: str = "c1", **fields: Any) -> bytes:
    return ev(f"complaint.{kind}", contact, at, complaint_id=cid, **fields)


def in_order(lines: list[bytes], config: EngineConfig | None = None) -> dict[str, Any]:
    """The replay report of ``lines`` sorted by event time (as a source appends them)."""
    return report(sorted(lines, key=lambda raw: orjson.loads(raw)["ts"]), config)


def rows(rep: dict[str, Any], channel: str = "*") -> dict[str, dict[str, Any]]:
    return {r["category"]: r["metrics"] for r in rep["complaints"] if r["period"] == "total"
            and r["tenant"] == "*" and r["channel"] == channel}  # fmt: skip


def life(cid: str, at: float, contact: str, category: str = "fees", **opened: Any) -> list[bytes]:
    """Opened, acknowledged after 2 h, closed upheld after 2 days."""
    return [comp("opened", cid, at, contact, category=category, severity="high",
                 remedy="refund", **opened),
            comp("updated", cid, at + 2 * H, contact, status="investigating"),
            comp("closed", cid, at + 2 * DAY, contact, outcome="upheld")]  # fmt: skip


def test_a_complaints_life_is_timed_against_its_targets() -> None:
    lines = [
        ev("contact.started", "c1", 0),
        ev("contact.started", "c2", 10),
        *life("K1", 60, "c1"),
        # K2: never acknowledged, never closed: both targets pass (1 day, 14 days)
        comp("opened", "K2", 100, "c2", category="service", severity="low", remedy="apology"),
        # K3: critical: 4 h / 3 days; closed after 4 days, acknowledged by the close
        comp("opened", "K3", 200, "c2", category="fees", severity="critical", remedy="refund"),
        comp("escalated", "K3", 300, "c2"),
        comp("escalated", "K3", 400, "c2"),
        comp("compensated", "K3", 4 * DAY - 10, "c2", amount_class="medium"),
        comp("closed", "K3", 4 * DAY, "c2", outcome="partly_upheld"),
        comp("reopened", "K3", 5 * DAY, "c2"),
        ev("system.status", "x", 20 * DAY, component="ivr", status="up"),
    ]
    rep = in_order(lines)
    t = rows(rep)["*"]
    assert (t["complaints_opened"], t["complaints_closed"], t["complaints_reopened"]) == (3, 2, 1)
    assert (t["complaints_acknowledged"], t["complaints_ack_in_target"]) == (2, 1)  # K3 late
    assert t["complaints_ack_overdue"] == 2  # K2 after 1 day, K3 after 4 h
    assert t["complaint_ack_seconds"]["mean"] == pytest.approx((2 * H + (4 * DAY - 200)) / 2)
    assert t["complaint_close_seconds"]["mean"] == pytest.approx((2 * DAY + 4 * DAY - 200) / 2)
    assert (t["complaints_closed_in_target"], t["complaint_close_in_target_rate"]) == (1, 0.5)
    # overdue: K3 at 3 days, K2 at 14 days, K3 again 3 days after its reopen (8 days)
    assert t["complaints_overdue"] == 3
    assert (t["complaints_escalated"], t["complaints_compensated"], t["complaints_upheld"]) == (
        1, 1, 2)  # fmt: skip
    assert t["complaints_open_at_end"] == 2  # K2, and K3 reopened
    assert rows(rep)["fees"]["complaints_opened"] == 2
    total = kpi_total(rep)
    assert total["complaints"] == 3 and total["complaints_per_contact"] == 1.5
    assert rep["data_quality"] == {}
    alerts = [a for a in rep["alerts"] if a["alertname"] == "complaint_overdue"]
    assert {a["labels"]["category"] for a in alerts} == {"fees", "service"}


def test_targets_per_category_and_severity_the_most_specific_wins() -> None:
    targets = (
        ComplaintTarget(close_seconds=10 * DAY),
        ComplaintTarget(category="fees", close_seconds=DAY),
        ComplaintTarget(category="fees", severity="low", close_seconds=20 * DAY),
    )
    config = EngineConfig(complaint_targets=targets)
    lines = [comp("opened", "K1", 0, category="fees", severity="high"),  # 1 day
             comp("opened", "K2", 1, category="fees", severity="low"),  # 20 days
             comp("opened", "K3", 2, category="other_cat"),  # 10 days
             ev("system.status", "x", 15 * DAY, component="ivr", status="up")]  # fmt: skip
    t = rows(in_order(lines, config))
    assert t["fees"]["complaints_overdue"] == 1 and t["other_cat"]["complaints_overdue"] == 1
    assert t["fees"]["complaints_ack_overdue"] == 0  # no acknowledgement target configured


def test_bad_complaint_input_is_counted_and_changes_nothing() -> None:
    config = EngineConfig(complaint_categories=(ReasonList(tenant="bank", codes=("fees",)),))
    lines = [
        comp("closed", "K0", 0, outcome="upheld"),  # closed before it opened: unknown
        *life("K1", 10, "c1"),
        comp("opened", "K1", 3 * DAY, category="fees"),  # the id again
        comp("updated", "K9", 3 * DAY, status="proposed"),  # never opened
        comp("reopened", "K8", 3 * DAY),
        comp("opened", "K2", 3 * DAY + 1, category="CALL-ID-1"),  # outside the list
    ]
    rep = in_order(lines, config)
    assert rep["data_quality"] == {"complaint_unknown": 3, "complaint_id_reused": 1,
                                   "unknown_complaint_category": 1}  # fmt: skip
    assert set(rows(rep)) == {"*", "fees", "unknown"}
    flood = [comp("opened", f"K{i}", i, category=f"cat{i}") for i in range(500)]
    rep = in_order(flood, EngineConfig(label_caps=LabelCaps(complaint_categories_per_tenant=20),
                                     max_open_complaints=300))  # fmt: skip
    assert len(rows(rep)) == 22  # 20 categories, other and the roll-up
    assert rep["data_quality"]["complaint_over_cap"] == 200
    with pytest.raises(Exception, match="outcome"):
        Decoder().decode(comp("closed", "K1", 0, outcome="maybe"))
    with pytest.raises(Exception, match="category"):
        Decoder().decode(comp("opened", "K1", 0, category="x" * 65))


def test_live_partitions_add_up_to_one_engine_and_a_checkpoint_keeps_the_complaints() -> None:
    lines: list[bytes] = []
    for i in range(40):
        lines += life(f"K{i}", i * 3 * H, f"c{i}", category=("fees", "service")[i % 2],
                      case_id=f"k{i}")  # fmt: skip
    lines.sort(key=lambda raw: orjson.loads(raw)["ts"])
    one = MetricsSink()
    eng = Engine(EngineConfig(), one)
    dec = Decoder()
    for line in lines:
        eng.ingest(*dec.decode(line))
    eng.flush()
    engines = replay_partitioned(lines, 3, EngineConfig())
    summed: dict[tuple[str, tuple[str, ...]], float] = {}
    for pe in engines.values():
        for name, labels, v in partition_doc(pe)["counters"]:
            if name.startswith("complaint"):
                summed[(name, tuple(labels))] = summed.get((name, tuple(labels)), 0.0) + v
    want = {k: v for k, v in one.counters.items() if k[0].startswith("complaint")}
    assert want and summed == want
    snap = orjson.loads(orjson.dumps(eng.snapshot()))
    again = Engine(EngineConfig(), MetricsSink())
    again.restore(snap)
    assert again.snapshot() == eng.snapshot()


def test_the_scorecard_judges_the_complaint_items_from_the_events() -> None:
    good = in_order([*life("K1", 0, "c1"), *life("K2", 10, "c2")])
    status = {i["ks"]: i["status"] for i in good["scorecard"] if i["ks"].startswith("다")}
    assert status == dict.fromkeys(
        ["다.(1) 1)", "다.(1) 2)", "다.(1) 3)", "다.(1) 4)", "다.(1) 5)"], "pass"
    )
    bad = in_order([comp("opened", "K1", 0, category="fees"), comp("updated", "K7", 1,
                  status="proposed"), ev("system.status", "x", 20 * DAY, component="ivr",
                  status="up")])  # fmt: skip
    status = {i["ks"]: i["status"] for i in bad["scorecard"] if i["ks"].startswith("다")}
    assert status == {"다.(1) 1)": "pass", "다.(1) 2)": "fail", "다.(1) 3)": "fail",
                      "다.(1) 4)": "fail", "다.(1) 5)": "fail"}  # fmt: skip
    none = report([ev("contact.started", "c1", 0)])
    assert {i["status"] for i in none["scorecard"] if i["ks"].startswith("다")} == {"not measured"}


def test_the_live_view_has_the_reports_complaint_rows() -> None:
    from streams.sinks.readmodel import kpi_view

    lines: list[bytes] = []
    for i in range(12):
        lines += life(f"K{i}", i * H, f"c{i}", category=("fees", "service", "app")[i % 3])
    lines.sort(key=lambda raw: orjson.loads(raw)["ts"])
    engines = replay_partitioned(lines, 3, EngineConfig())
    view = kpi_view([partition_doc(pe) for pe in engines.values()], 3)
    got = {(r["tenant"], r["channel"], r["category"]): r["metrics"] for r in view["complaints"]}
    rep = in_order(lines)
    want = {(r["tenant"], r["channel"], r["category"]): r["metrics"]
            for r in rep["complaints"] if r["period"] == "total"}  # fmt: skip
    assert set(got) == set(want) and len(got) == 2 * 4 * 2  # tenants, categories, channels
    for key, m in got.items():
        for name in ("complaints_opened", "complaints_closed", "complaints_closed_in_target"):
            assert m[name] == want[key][name], (key, name)
        assert m["complaint_close_seconds"]["mean"] == want[key]["complaint_close_seconds"]["mean"]
