"""Per-call records through a declarative column mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_monitor.cli import main
from tests.helpers import row

MAPPING = """
delimiter = ","
time_format = "%Y-%m-%d %H:%M:%S"
timezone = "Asia/Seoul"
order = "start"

[columns]
contact_id = "call_id"
started = "start"
queued = "queued"
answered = "answer"
ended = "end"
wrapup_ended = "acw_end"
agent_id = "agent"
queue = "queue"
hold_seconds = "hold"
outcome = "result"
customer_id = "caller"

[outcomes]
ANSWERED = "answered"
ABANDON = "abandoned"
FAILED = "system"
TEST = "skip"
"""

CSV = """call_id,start,queued,answer,end,acw_end,agent,queue,hold,result,caller
a1,@09:00:00,@09:00:20,@09:00:35,@09:05:35,@09:06:35,kim,cards,30,ANSWERED,01012345678
a2,@09:01:00,@09:01:10,,@09:02:10,,,cards,,ABANDON,01099999999
a3,@09:02:00,@09:02:05,,@09:02:09,,,cards,,FAILED,
a4,@09:03:00,,,@09:03:40,,,,,IVR,
a5,@09:04:00,,,@09:04:01,,,,,TEST,
a6,@09:05:00,@09:05:10,@09:05:05,@09:09:00,,lee,cards,,ANSWERED,
bad,@25:00:00,,,@09:10:00,,,,,ANSWERED,
""".replace("@", "2026-11-02 ")


def run(tmp: Path, capsys: pytest.CaptureFixture[str], csv_text: str = CSV) -> dict:  # type: ignore[type-arg]
    import json

    (tmp / "map.toml").write_text(MAPPING)
    (tmp / "calls.csv").write_text(csv_text)
    code = main(["replay", str(tmp / "calls.csv"), "--format", "cdr", "--mapping",
                 str(tmp / "map.toml"), "--json", "-", "--timezone", "Asia/Seoul"])  # fmt: skip
    assert code == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_cdr_rows_become_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(tmp_path, capsys)
    src = rep["input"]["sources"][0]["import"]
    assert src["records"] == 7 and src["skipped"] == {"outcome_test": 1}
    assert src["warnings"] == {"time_before_previous_step": 1}  # a6 answered before it queued
    assert [(r["line"], r["reason"]) for r in rep["rejected"]["events"]] == [
        (8, "malformed_record")
    ]
    cards = row(rep, "voice", "cards")
    assert (cards["queued"], cards["answered"], cards["abandoned"], cards["dropped"]) == (
        4,
        2,
        1,
        1,
    )
    assert cards["answer_seconds"]["mean"] == pytest.approx((15 + 0) / 2)
    assert cards["abandon_wait_seconds"]["mean"] == pytest.approx(60)
    assert cards["handle_seconds"]["mean"] == pytest.approx((360 + 230) / 2)
    assert cards["hold_seconds"]["mean"] == pytest.approx(15)
    assert row(rep, "voice")["contacts"] == 5
    assert "01012345678" not in str(rep)
    days = {r["bucket"] for r in rep["kpis"] if r["period"] == "day"}
    assert days == {"2026-11-02"}  # Seoul clock times, Seoul days


def test_mapping_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "calls.csv").write_text(CSV)
    assert main(["replay", str(tmp_path / "calls.csv"), "--format", "cdr"]) == 2
    (tmp_path / "bad.toml").write_text("[columns]\ncontact_id = 'x'\n")
    assert main(["replay", str(tmp_path / "calls.csv"), "--format", "cdr", "--mapping",
                 str(tmp_path / "bad.toml")]) == 2  # fmt: skip


def test_missing_columns_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(tmp_path, capsys, "call_id,start,end\na1,2026-11-02 09:00:00,2026-11-02 09:01:00\n")
    assert rep["rejected"]["events"][0]["reason"] == "malformed_record"
    assert "columns not in the header" in rep["rejected"]["events"][0]["detail"]
