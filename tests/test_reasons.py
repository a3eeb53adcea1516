"""Contact reasons (wrap-up codes, kpis.rules.reasons): exact counts, shares, handle time and
one-touch per reason, unresolved cases by reason, the bounded reason label, and live equal to
replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from kpis.config import EngineConfig, LabelCaps, ReasonList
from kpis.decode import Decoder
from kpis.engine import Engine
from streams.partitioned import partition_doc, replay_partitioned
from streams.sinks.metrics import MetricsSink
from tests.builders import call, ev, kpi_total, report, totals

pytestmark = pytest.mark.unit


def test_reasons_of_a_contact_count_once_each_with_share_handle_time_and_one_touch() -> None:
    lines = [
        # c1: lost_card on the end, again and fee on the wrap-up; resolved in one touch
        *call("c1", 0, end=["lost_card"], wrap=["lost_card", "fee"], resolved=True),
        # c2: lost_card only; resolved
        *call("c2", 1000, wrap=["lost_card"], resolved=True),
        # c3: no reason at all
        *call("c3", 2000, resolved=True),
        # c4: fee, the case never resolved (closed unresolved after the idle timeout)
        *call("c4", 3000, wrap=["fee"]),
    ]
    rep = report(lines)
    t = totals(rep)
    assert set(t) == {"lost_card", "fee"}
    assert t["lost_card"]["reason_contacts"] == 2 and t["fee"]["reason_contacts"] == 2
    assert kpi_total(rep)["contacts_coded"] == 3  # c1, c2, c4 (c3 has none)
    assert t["lost_card"]["share"] == round(2 / 3, 6) and t["fee"]["share"] == round(2 / 3, 6)
    for code in ("lost_card", "fee"):
        h = t[code]["reason_handle_seconds"]
        assert (h["count"], h["mean"]) == (2, 360.0)
    assert (t["lost_card"]["reason_resolved"], t["lost_card"]["reason_resolved_one_touch"]) == (
        2,
        2,
    )
    assert t["lost_card"]["reason_one_touch_rate"] == 1.0
    # fee: c1 resolved; c4 still open at the end of this log (its idle timeout not reached)
    assert (t["fee"]["reason_resolved"], t["fee"]["reason_cases_unresolved"]) == (1, 0)
    assert rep["data_quality"] == {}
    # per queue and tenant rows as well, never a row over every reason
    assert totals(rep, ("bank", "voice", "cards"))["fee"]["reason_contacts"] == 2
    assert all(r["reason"] != "*" for r in rep["reasons"])


def test_an_unresolved_case_is_counted_by_its_reasons_when_it_closes() -> None:
    config = EngineConfig(case_idle_timeout_seconds=3600)
    later = ev("system.status", "x", 20_000, component="ivr", status="up")  # time moves on
    rep = report([*call("c4", 0, wrap=["fee", "fraud"]), later], config)
    t = totals(rep)
    assert t["fee"]["reason_cases_unresolved"] == 1 and t["fraud"]["reason_cases_unresolved"] == 1
    assert t["fee"]["reason_resolved"] == 0 and t["fee"]["reason_one_touch_rate"] is None


def test_a_configured_list_makes_other_codes_unknown_never_a_label() -> None:
    config = EngineConfig(contact_reasons=(ReasonList(tenant="bank", codes=("lost_card",)),))
    lines = [*call("c1", 0, wrap=["lost_card", "CALL-ID-123"]),
             *call("c2", 1000, wrap=["CALL-ID-456", "CALL-ID-789"])]  # fmt: skip
    rep = report(lines, config)
    t = totals(rep)
    assert set(t) == {"lost_card", "unknown"}
    assert t["unknown"]["reason_contacts"] == 2  # c1 once, c2 once (two unknown codes, one row)
    assert rep["data_quality"]["unknown_reason"] == 3


def test_without_a_list_a_tenant_keeps_its_first_codes_and_folds_the_rest() -> None:
    config = EngineConfig(label_caps=LabelCaps(reasons_per_tenant=2))
    lines = [x for i in range(6) for x in call(f"c{i}", i * 1000, wrap=[f"code{i}"])]
    rep = report(lines, config)
    assert set(totals(rep)) == {"code0", "code1", "other"}
    assert totals(rep)["other"]["reason_contacts"] == 4
    assert rep["data_quality"]["label_folded_reason"] == 4
    assert rep["labels_folded"]["reason"]["events"] == 4


def test_hostile_reason_input_is_counted_and_bounded() -> None:
    config = EngineConfig(label_caps=LabelCaps(reasons_per_tenant=50))
    lines = [x for i in range(2000) for x in call(f"c{i}", i * 400, wrap=[f"r{i}", f"s{i}"])]
    lines += [
        ev("wrapup.ended", "c1999", 799_990, agent_id="a9", reasons=["late"]),  # done already
        ev("wrapup.ended", "ghost", 900_000, agent_id="a1", reasons=["x"]),  # never seen
    ]
    rep = report(lines, config)
    t = totals(rep)
    assert len(t) == 51 and t["other"]["reason_contacts"] == 2000 - 25
    assert rep["data_quality"]["reasons_contact_unknown"] == 2
    # too many codes on one event: refused by the schema with the field named
    too_many = ev("wrapup.ended", "c1", 1, reasons=[f"x{i}" for i in range(11)])
    with pytest.raises(Exception, match="reasons"):
        Decoder().decode(too_many)
    with pytest.raises(Exception, match="reasons"):
        Decoder().decode(ev("wrapup.ended", "c1", 1, reasons=["x" * 65]))


def test_reason_series_of_live_partitions_add_up_to_the_replay() -> None:
    lines = [x for i in range(60) for x in call(f"c{i}", i * 400, case_id=f"k{i % 20}",
                                                  wrap=[("fee", "lost_card", "limit")[i % 3]],
                                                  resolved=i % 4 == 0)]  # fmt: skip
    one = MetricsSink()
    config = EngineConfig(reopen_window_seconds=3600, case_idle_timeout_seconds=7200)
    eng = Engine(config, one)
    dec = Decoder()
    for line in lines:
        eng.ingest(*dec.decode(line))
    eng.flush()  # as live partitions are at the end of their input (no replay end)
    engines = replay_partitioned(lines, 3, config)
    summed: dict[tuple[str, tuple[str, ...]], float] = {}
    for pe in engines.values():
        for name, labels, v in partition_doc(pe)["counters"]:
            if name.startswith("reason_") or name == "contacts_coded":
                key = (name, tuple(labels))
                summed[key] = summed.get(key, 0.0) + v
    want = {(n, lb): v for (n, lb), v in one.counters.items()
            if n.startswith("reason_") or n == "contacts_coded"}  # fmt: skip
    assert {n for n, _ in want} >= {"reason_resolved", "reason_cases_unresolved"}
    assert summed == want
    # and a checkpoint keeps a contact's reasons: restored, the counts go on the same
    snap = orjson.loads(orjson.dumps(eng.snapshot()))
    again = Engine(config, MetricsSink())
    again.restore(snap)
    assert again.snapshot() == eng.snapshot()


def test_importers_map_the_codes_their_sources_carry(tmp_path: Path) -> None:
    """Connect CTRs: the contact attribute a wrap-up flow sets (Disposition, any case); a CDR
    mapping's reasons column. What an event cannot carry is dropped and warned about."""
    from streams.inputs.importers import make_importer
    from streams.inputs.privacy import Pseudonymizer
    from streams.replay import Replay, Source
    from tests.builders import BYE, at, ctr

    answered = ctr(
        "c1", at(20), InitiationTimestamp=at(0), DisconnectTimestamp=at(10), DisconnectReason=BYE,
        Queue={"Name": "cards", "EnqueueTimestamp": at(0, 30), "DequeueTimestamp": at(1)},
        Agent={"Username": "kim", "ConnectedToAgentTimestamp": at(1),
               "AfterContactWorkEndTimestamp": at(11)},
        Attributes={"disposition": "lost_card; fee |" + "x" * 65},
    )  # fmt: skip
    abandoned = ctr(
        "c2", at(20), InitiationTimestamp=at(2), DisconnectTimestamp=at(3), DisconnectReason=BYE,
        Queue={"Name": "cards", "EnqueueTimestamp": at(2, 10), "DequeueTimestamp": at(2, 50)},
        Attributes={"WrapUpCode": ["callback_promised"], "other": "ignored"},
    )  # fmt: skip
    hostile = ctr(
        "c3", at(20), InitiationTimestamp=at(4), DisconnectTimestamp=at(5), DisconnectReason=BYE,
        Attributes={"ReasonCode": {"not": "text"}},
    )  # fmt: skip
    path = tmp_path / "ctr.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(c) for c in (answered, abandoned, hostile)) + b"\n")
    rep = Replay(EngineConfig(), ZoneInfo("UTC")).run(
        [Source(str(path))], importer=make_importer("connect-ctr", Pseudonymizer(""))
    )
    t = totals(rep)
    assert {k: v["reason_contacts"] for k, v in t.items()} == {
        "lost_card": 1, "fee": 1, "callback_promised": 1}  # fmt: skip
    assert t["lost_card"]["reason_handle_seconds"]["mean"] == 600.0  # connected 1:00, wrapped 11:00
    warnings = rep["input"]["sources"][0]["import"]["warnings"]
    assert warnings == {"reason_code_too_long": 1, "reasons_not_text": 1}
    assert rep["rejected"]["total"] == 0

    from cc_monitor.cli import main

    (tmp_path / "map.toml").write_text(
        '[columns]\ncontact_id = "id"\nstarted = "start"\nended = "end"\nagent_id = "agent"\n'
        'answered = "answer"\noutcome = "result"\nreasons = "codes"\n'
        '[outcomes]\nOK = "answered"\nGONE = "abandoned"\n'
    )
    (tmp_path / "calls.csv").write_text(
        "id,start,answer,end,agent,result,codes\n"
        "a1,2026-11-02T09:00:00Z,2026-11-02T09:00:10Z,2026-11-02T09:05:10Z,kim,OK,billing|fee\n"
        "a2,2026-11-02T09:01:00Z,,2026-11-02T09:02:00Z,,GONE,"
        + ",".join(f"c{i}" for i in range(12)).replace(",", ";")
        + "\n"
    )
    out = tmp_path / "cdr.json"
    assert main(["replay", str(tmp_path / "calls.csv"), "--format", "cdr", "--mapping",
                 str(tmp_path / "map.toml"), "--json", str(out), "--quiet"]) == 0  # fmt: skip
    rep = orjson.loads(out.read_bytes())
    t = totals(rep)
    assert t["billing"]["reason_contacts"] == 1 and t["fee"]["reason_contacts"] == 1
    assert sum(1 for k in t if k.startswith("c")) == 10  # the first ten codes of a2
    assert rep["input"]["sources"][0]["import"]["warnings"] == {"reasons_over_10": 1}


def test_contacts_csv_lists_a_contacts_codes_and_explain_finds_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cc_monitor.cli import main

    log = tmp_path / "log.jsonl"
    lines = [*call("c1", 0, wrap=["lost_card", "fee"]), *call("c2", 1000, wrap=["fee"]),
             *call("c3", 2000)]  # fmt: skip
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    assert main(["replay", str(log), "--csv", str(tmp_path / "csv"), "--quiet"]) == 0
    import csv

    with open(tmp_path / "csv" / "contacts.csv", encoding="utf-8") as f:
        rows = {r["contact_id"]: r for r in csv.DictReader(f)}
    assert [rows[c]["reasons"] for c in ("c1", "c2", "c3")] == ["lost_card;fee", "fee", ""]
    assert "reason_contacts[fee]@voice/cards" in rows["c2"]["kpis"]
    capsys.readouterr()
    assert main(["explain", str(log), "--metric", "reason_contacts", "--reason", "fee",
                 "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr()
    listed = [line.split(",")[0] for line in out.out.splitlines()[1:]]
    assert listed == ["c1", "c2"] and "2 contacts counted in reason_contacts reason=fee" in out.err


def test_the_scorecard_judges_the_cause_analysis_from_the_codes() -> None:
    """KS S 1006 나.(4) 3): pass when every case left unresolved carries reason codes, fail
    naming an uncoded one, not measured without any code in the log (no evidence)."""
    config = EngineConfig(case_idle_timeout_seconds=3600)
    later = ev("system.status", "x", 20_000, component="ivr", status="up")

    def item(lines: list[bytes]) -> dict[str, Any]:
        rep = report([*lines, later], config)
        (found,) = [i for i in rep["scorecard"] if i["ks"] == "나.(4) 3)"]
        return found

    coded = item([*call("c1", 0, wrap=["fee"], resolved=True), *call("c2", 1000, wrap=["fee"])])
    assert coded["status"] == "pass" and coded["counts"]["with_reason"] == 1
    uncoded = item([*call("c1", 0, wrap=["fee"]), *call("c2", 1000)])
    assert uncoded["status"] == "fail" and uncoded["counts"]["without_reason"] == 1
    assert uncoded["examples"] == ["c2"]
    none = item([*call("c1", 0), *call("c2", 1000, resolved=True)])
    assert none["status"] == "not measured" and none["counts"]["contacts_coded"] == 0


def test_the_live_view_has_the_reports_reason_rows() -> None:
    """/api/kpis ``reasons``: from the partitions' documents, the report's counts, shares and
    handle times per reason (resolutions only once final: no provisional part there)."""
    from streams.sinks.readmodel import kpi_view

    lines = [x for i in range(30) for x in call(f"c{i}", i * 400, case_id=f"k{i % 10}",
                                                  wrap=[("fee", "lost_card")[i % 2]] if i % 3
                                                  else ["fee", "limit"])]  # fmt: skip
    engines = replay_partitioned(lines, 3, EngineConfig())
    view = kpi_view([partition_doc(pe) for pe in engines.values()], 3)
    rep = report(lines)
    want = {(r["tenant"], r["channel"], r["queue"], r["reason"]): r["metrics"]
            for r in rep["reasons"] if r["period"] == "total"}  # fmt: skip
    got = {(r["tenant"], r["channel"], r["queue"], r["reason"]): r["metrics"]
           for r in view["reasons"]}  # fmt: skip
    assert set(got) == set(want) and len(got) == 3 * 6
    for key, m in got.items():
        w = want[key]
        assert (m["reason_contacts"], m["share"]) == (w["reason_contacts"], w["share"]), key
        assert m["reason_handle_seconds"]["mean"] == w["reason_handle_seconds"]["mean"], key
