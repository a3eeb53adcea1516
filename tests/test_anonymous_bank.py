"""The "Anonymous Bank" importer: the real February 1999 file and one rule at a time."""

from __future__ import annotations

import csv
import gzip
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from kpis.config import EngineConfig
from streams.inputs.importers import make_importer
from streams.inputs.importers.anonymous_bank import AnonymousBank
from streams.inputs.privacy import Pseudonymizer
from streams.replay import Replay, Source
from tests.builders import ZONE, line, tsv
from tests.helpers import ivr_row, row

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "anonymous-bank" / "1999-02.tsv"


def replay(path: Path, **kw: Any) -> dict[str, Any]:
    importer = make_importer("anonymous-bank", Pseudonymizer("test-key"), ZONE)
    return Replay(EngineConfig(), ZONE, **kw).run([Source(str(path))], importer=importer)


@lru_cache(maxsize=1)
def february() -> dict[str, Any]:
    return replay(DATA)


@lru_cache(maxsize=1)
def tally() -> dict[str, Any]:
    """Counts straight from the TSV, independently of the importer."""
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    real = [r for r in rows if r["outcome"] != "PHANTOM"]
    per_type: dict[str, dict[str, int]] = {}
    for r in real:
        t = per_type.setdefault(r["type"], {"calls": 0, "answered": 0, "abandoned": 0, "ivr": 0})
        t["calls"] += 1
        if r["outcome"] == "AGENT":
            t["answered"] += 1
        elif r["q_start"] != "0:00:00":
            t["abandoned"] += 1
        else:
            t["ivr"] += 1
    return {
        "rows": len(rows),
        "phantom": len(rows) - len(real),
        "per_type": per_type,
        "vru_time_mean": sum(int(r["vru_time"]) for r in real) / len(real),
        "days": sorted({r["date"] for r in real}),
    }


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
@pytest.mark.slow
def test_february_counts_match_the_file() -> None:
    rep = february()
    t = tally()
    src = rep["input"]["sources"][0]
    assert src["lines"] == t["rows"] + 1  # with the header
    assert src["import"]["records"] == t["rows"]
    assert src["import"]["skipped"] == {"phantom": t["phantom"]}
    assert rep["rejected"]["total"] == 0
    assert rep["data_quality"] == {}
    total = row(rep, "voice")
    calls = sum(x["calls"] for x in t["per_type"].values())
    assert total["contacts"] == calls == 33_066
    assert total["answered"] == sum(x["answered"] for x in t["per_type"].values()) == 27_162
    assert total["abandoned"] == sum(x["abandoned"] for x in t["per_type"].values()) == 3_963
    assert total["left_in_ivr"] == sum(x["ivr"] for x in t["per_type"].values()) == 1_941
    assert total["abandonment_rate"] == pytest.approx(3963 / (27162 + 3963), abs=1e-6)
    for queue, x in t["per_type"].items():
        m = row(rep, "voice", queue)
        assert (m["answered"], m["abandoned"], m["left_in_ivr"]) == (
            x["answered"],
            x["abandoned"],
            x["ivr"],
        ), queue
    assert total["handle_incomplete"] == src["import"]["warnings"]["service_times_missing"]


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
def test_february_durations_and_days() -> None:
    rep = february()
    t = tally()
    # IVR time from the event times agrees with the file's own vru_time column.
    ivr = ivr_row(rep, "vru")["ivr_time_seconds"]
    assert ivr["count"] == 33_066
    assert ivr["mean"] == pytest.approx(t["vru_time_mean"], abs=0.05)
    days = [r["bucket"] for r in rep["kpis"] if r["period"] == "day" and r["channel"] == "*"]
    assert days == [f"1999-02-{d:02d}" for d in range(1, 29)]
    assert sum(row(rep, period="day", bucket=d)["contacts"] for d in days) == 33_066
    total = row(rep, "voice")
    assert 0.4 < total["service_level"] < 0.7
    assert 20 < total["answer_seconds"]["mean"] < 90
    assert 60 < total["handle_seconds"]["mean"] < 400


def test_each_rule_on_crafted_rows(tmp_path: Path) -> None:
    path = tsv(
        tmp_path,
        # served without queueing: answered at vru_exit, zero wait (ser_start is a second early)
        line(1, "AGENT", "7:02:47", "7:02:56", ser_start="7:02:55", ser_exit="7:05:41"),
        # queued, answered after 30 s, served 100 s
        line(2, "AGENT", "8:00:00", "8:00:10", "8:00:10", "8:00:40", "8:00:40", "8:02:20"),
        # hung up in queue after 45 s
        line(3, "HANG", "9:00:00", "9:00:05", "9:00:05", "9:00:50", customer="23317894"),
        # hung up in the IVR
        line(4, "HANG", "9:30:00", "9:30:12"),
        # a phantom
        line(5, "PHANTOM", "9:40:00", "9:40:01"),
        # crosses midnight while queued: waits 32 s, answered on 2 February
        line(6, "AGENT", "23:59:50", "23:59:58", "23:59:58", "0:00:30", "0:00:30", "0:03:30"),
        # a different VRU line, earlier in the day: merged into time order
        line(
            7,
            "AGENT",
            "7:30:00",
            "7:30:05",
            "7:30:05",
            "7:30:15",
            "7:30:15",
            "7:31:15",
            vru="AA0102",
        ),
        # clock skew: answered a second before it entered the queue: zero wait, order kept
        line(
            9,
            "AGENT",
            "10:00:00",
            "10:00:10",
            "10:00:10",
            "10:00:20",
            "10:00:09",
            "10:01:09",
            vru="AA0102",
        ),
    )
    rep = replay(path)
    src = rep["input"]["sources"][0]
    assert src["import"]["skipped"] == {"phantom": 1}
    assert src["import"]["warnings"] == {"clock_skew": 1}
    assert rep["rejected"]["total"] == 0
    m = row(rep, "voice", "PS")
    assert (m["contacts"], m["answered"], m["abandoned"], m["left_in_ivr"]) == (7, 5, 1, 1)
    waits = row(rep, "voice", "PS", period="day", bucket="1999-02-01")["answer_seconds"]
    assert waits["count"] == 4 and waits["mean"] == pytest.approx((0 + 30 + 10 + 0) / 4)
    feb2 = row(rep, "voice", "PS", period="day", bucket="1999-02-02")
    assert feb2["answered"] == 1 and feb2["answer_seconds"]["mean"] == pytest.approx(32)
    assert feb2["handle_seconds"]["mean"] == pytest.approx(180)
    assert m["abandon_wait_seconds"]["mean"] == pytest.approx(45)
    assert m["handle_seconds"]["count"] == 5
    assert row(rep, "voice", "PS", period="day", bucket="1999-02-01")["handle_seconds"][
        "mean"
    ] == pytest.approx((165 + 100 + 60 + 59) / 4)  # call 1 is answered at vru_exit: 165 s


def test_customer_ids_are_pseudonymized(tmp_path: Path) -> None:
    path = tsv(tmp_path, line(3, "HANG", "9:00:00", "9:00:05", "9:00:05", "9:00:50",
                              customer="23317894"))  # fmt: skip
    importer = make_importer("anonymous-bank", Pseudonymizer("k1"), ZONE)
    from streams.inputs.files import ImportStats, SourceStats

    assert importer is not None
    events = [e for _, e in importer.events(Source(str(path)), SourceStats("x"),
                                            ImportStats("anonymous-bank"), 65536)]  # fmt: skip
    text = orjson.dumps(events)
    assert b"23317894" not in text
    ids = {e["customer_id"] for e in events if isinstance(e, dict)}
    assert len(ids) == 1 and next(iter(ids)).startswith("p-")


def test_bad_rows_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    path = tsv(
        tmp_path,
        line(1, "AGENT", "7:02:47", "7:02:56", ser_start="7:02:55", ser_exit="7:05:41"),
        "AA0101\t2\tnot enough fields",
        line(3, "AGENT", "7:9x:00", "7:10:00"),
        line(4, "LOST", "8:00:00", "8:00:05"),
    )
    rep = replay(path)
    listed = [(r["line"], r["reason"]) for r in rep["rejected"]["events"]]
    assert listed == [(3, "malformed_record"), (4, "malformed_record"), (5, "malformed_record")]
    assert row(rep, "voice")["answered"] == 1
    bad_header = tmp_path / "h.tsv"
    bad_header.write_text("a\tb\n1\t2\n")
    rep = replay(bad_header)
    assert [(r["line"], r["reason"]) for r in rep["rejected"]["events"]] == [
        (1, "malformed_record")
    ]


def test_gzip_is_sorted_in_memory_with_the_same_result(tmp_path: Path) -> None:
    rows = [
        line(2, "AGENT", "8:00:00", "8:00:10", "8:00:10", "8:00:40", "8:00:40", "8:02:20"),
        line(6, "AGENT", "23:59:50", "23:59:58", "23:59:58", "0:00:30", "0:00:30", "0:03:30"),
        line(
            7,
            "AGENT",
            "7:30:00",
            "7:30:05",
            "7:30:05",
            "7:30:15",
            "7:30:15",
            "7:31:15",
            vru="AA0102",
        ),
        line(8, "HANG", "8:00:01", "8:00:05", "8:00:05", "8:01:00", vru="AA0102"),
    ]
    plain = tsv(tmp_path, *rows)
    packed = tmp_path / "calls.tsv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = replay(plain), replay(packed)
    for rep in (a, b):
        rep.pop("input")
    assert a == b
    assert a["rejected"]["total"] == 0


def test_timestamps_carry_their_own_minutes_offset_across_summer_time() -> None:
    """The importer caches zone offsets by local minute: every second of the two 1999
    changes in Israel (2 April 02:00 -> 03:00, 3 September 02:00 -> 01:00, the repeated hour
    taken at its first, summer-time offset) gets what zoneinfo gives it, with the cache warm."""
    importer = AnonymousBank(ZONE, Pseudonymizer("k"))
    for day in (date(1999, 4, 2), date(1999, 9, 3)):
        start = datetime.combine(day, time(0))
        offsets = set()
        for s in range(0, 5 * 3600, 7):
            local = start + timedelta(seconds=s)
            expected = local.replace(tzinfo=ZONE)
            got = importer._aware(local)
            assert got.timestamp() == expected.timestamp()  # (== is never true in a gap, PEP 495)
            assert got.utcoffset() == expected.utcoffset()
            assert got.isoformat() == expected.isoformat()
            offsets.add(expected.isoformat()[19:])
        assert offsets == {"+02:00", "+03:00"}


def _rows_of_february(n: int) -> tuple[str, list[str]]:
    text = DATA.read_text().splitlines()
    return text[0], text[1 : n + 1]


@pytest.mark.slow
def test_hostile_files_end_as_counted_problems(tmp_path: Path) -> None:
    """A header alone, a row with a date that does not read (it must not hold back its VRU
    line's other rows), and a file sorted by time instead of by VRU line (a group per row)."""
    header, rows = _rows_of_february(3000)
    only = tmp_path / "header.tsv"
    only.write_text(header + "\n")
    assert replay(only)["events"]["accepted"] == 0
    whole = tmp_path / "whole.tsv"
    whole.write_text("\n".join([header, *rows]) + "\n")
    base = replay(whole)
    for bad_date in ("991301", "abcdef"):
        cells = rows[100].split("\t")
        cells[5] = bad_date
        bad = tmp_path / f"bad-{bad_date}.tsv"
        bad.write_text("\n".join([header, *rows[:100], "\t".join(cells), *rows[100:]]) + "\n")
        rep = replay(bad)
        assert rep["rejected"]["by_reason"]["malformed_record"] == 1
        assert rep["rejected"]["by_reason"]["late"] == 0
        assert rep["events"]["accepted"] == base["events"]["accepted"]
    by_time = tmp_path / "by-time.tsv"
    ordered = sorted(rows, key=lambda r: (r.split("\t")[5], r.split("\t")[6]))
    by_time.write_text("\n".join([header, *ordered]) + "\n")
    rep = replay(by_time)
    assert rep["events"]["accepted"] == base["events"]["accepted"]
    assert rep["rejected"]["by_reason"]["late"] == 0
    # out of order with more VRU-line runs than files it may open: sorted in memory instead
    reverse = tmp_path / "reverse.tsv"
    reverse.write_text("\n".join([header, *reversed(ordered)]) + "\n")
    rep = replay(reverse)
    assert rep["events"]["accepted"] == base["events"]["accepted"]
    assert rep["rejected"]["by_reason"]["late"] == 0


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
def test_what_the_bank_never_records_is_not_measured() -> None:
    """The records carry no hold, after-contact work or transfer: those figures are "not
    measured" (None), never a measured 0 s / 0 %, and the phone handle time (talk time only)
    is shown but not rated against the CX benchmark (it was once "champion", 2.9 min)."""
    rep = february()
    assert rep["input"]["not_recorded"] == {
        f: [str(DATA)] for f in ("hold", "after_contact_work", "transfers", "who_ended", "offers")
    }
    voice = row(rep, "voice")
    assert voice["hold_seconds"]["mean"] is None and voice["acw_seconds"]["mean"] is None
    assert voice["transfer_rate"] is None and voice["transferred"] is None
    assert voice["handle_seconds"]["mean"] is not None  # talk time, shown as such
    agents = [r for r in rep["agents"] if r["period"] == "total" and r["tenant"] == "*"]
    assert agents
    for r in agents:
        assert r["metrics"]["agent_hold_seconds"]["mean"] is None
        assert r["metrics"]["agent_transferred"] is None
    bench = {b["kpi"]: b for b in rep["benchmark"]}
    assert bench["handle_time_phone"]["level"] == "not rated"
    assert "talk time only" in bench["handle_time_phone"]["note"]
    from cc_monitor.render import render_markdown

    md = render_markdown(rep)
    assert "hold: not recorded by" in md and "never 0" in md
    agent_table = md[md.index("## Agents"):md.index("## Targets") if "## Targets" in md
                     else md.index("## IVR")]  # fmt: skip
    assert " 0 s |" not in agent_table and "| 0 |" not in agent_table


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
def test_no_server_is_not_an_agent() -> None:
    """NO_SERVER marks served calls whose agent the source does not name (491 in February):
    they count as handled, and no agent row carries them."""
    rep = february()
    agents = {r["agent"] for r in rep["agents"] if r["period"] == "total"}
    from streams.inputs.privacy import Pseudonymizer as P

    assert P("test-key")("NO_SERVER") not in agents and "NO_SERVER" not in agents
    assert "-" not in agents
    assert rep["input"]["sources"][0]["import"]["warnings"]["served_by_no_named_agent"] == 491
    handled = sum(r["metrics"]["agent_handled"] for r in rep["agents"]
                  if r["period"] == "total" and r["tenant"] == "*")  # fmt: skip
    assert row(rep, "voice")["handled"] == handled + 491
    assert rep["events"]["rejected"] == 0


def test_agent_names_are_pseudonymized_unless_the_setting_says(tmp_path: Path) -> None:
    path = tsv(tmp_path, line(3, "AGENT", "9:00:00", "9:00:05", "9:00:05", "9:00:20",
                              "9:00:20", "9:03:00"))  # fmt: skip
    from cc_monitor.cli import main

    out = tmp_path / "r.json"
    env = {"CC_MONITOR_PSEUDONYM_KEY": "k", "CC_MONITOR_WORKER__DATA_DIR": str(tmp_path)}
    with pytest.MonkeyPatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        assert main(["replay", "--format", "anonymous-bank", str(path), "--json", str(out),
                     "--quiet", "--no-progress"]) == 0  # fmt: skip
        rep = orjson.loads(out.read_bytes())
        agents = {r["agent"] for r in rep["agents"]}
        assert agents == {Pseudonymizer("k")("DORIT")}
        assert rep["input"]["agent_ids"] == "pseudonymized"
        m.setenv("CC_MONITOR_SHOW_AGENT_NAMES", "true")
        assert main(["replay", "--format", "anonymous-bank", str(path), "--json", str(out),
                     "--quiet", "--no-progress"]) == 0  # fmt: skip
        rep = orjson.loads(out.read_bytes())
        assert {r["agent"] for r in rep["agents"]} == {"DORIT"}
        assert rep["input"]["agent_ids"] == "as the source names them"


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
@pytest.mark.slow
def test_no_agent_states_kept_for_a_source_without_them(tmp_path: Path) -> None:
    """Anonymous Bank records no agent states, so a replay of it keeps none (the agent domain
    costs nothing per call): the report is the one the domain would have given, byte for
    byte, and the command line's replay chooses that by the importer's declaration."""
    assert make_importer("anonymous-bank", Pseudonymizer("k"), ZONE).agent_states is False
    assert make_importer("queue_log", Pseudonymizer("k"), ZONE).agent_states is True
    with open(DATA, "rb") as f:
        head = b"".join(f.readline() for _ in range(4000))  # the header and the first rows
    path = tmp_path / "head.tsv"
    path.write_bytes(head)
    with_states = replay(path, agent_states=True)
    without = replay(path, agent_states=False)
    assert with_states["agents"] and with_states["kpis"]
    assert orjson.dumps(without) == orjson.dumps(with_states)
    from streams.replay import replay_paths

    importer = make_importer("anonymous-bank", Pseudonymizer("test-key"), ZONE)
    assert orjson.dumps(replay_paths([str(path)], EngineConfig(), ZONE, importer=importer)) == (
        orjson.dumps(with_states)
    )
