"""CSV exports and drill-down (streams.exports, streams.sinks.ledger): the contacts behind
every count add up to the report's counts, the same input gives the same bytes, and
`cc-monitor explain` lists the contacts behind one number."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import orjson
import pytest

from cc_monitor.cli import main
from cc_monitor.simulator import SimConfig, simulate
from kpis.catalogue import KPI, names

COUNTS = names(KPI, "count")


@lru_cache(maxsize=1)
def two_days() -> bytes:
    cfg = SimConfig(days=2, contacts_per_day=1200, bad_lines_per_day=0)
    return b"".join(orjson.dumps(e) + b"\n" for e in simulate(cfg))


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("csv")
    log = tmp / "days.jsonl"
    log.write_bytes(two_days())
    a, b = tmp / "a", tmp / "b"
    for into in (a, b):
        assert main(["replay", str(log), "--csv", str(into), "--quiet", "--no-progress"]) == 0
    return log, a, b


@pytest.mark.slow
def test_same_input_same_bytes(exported: tuple[Path, Path, Path]) -> None:
    _, a, b = exported
    for name in ("kpis.csv", "contacts.csv", "alerts.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_the_contacts_add_up_to_every_count(exported: tuple[Path, Path, Path]) -> None:
    """Per channel and queue (all tenants), each KPI count of kpis.csv's total is the number
    of times contacts.csv's rows name it; what only a replay's end settles (open at the end,
    pending) belongs to the contact or case still open then, and counts too."""
    _, a, _ = exported
    summed: dict[tuple[str, str, str], int] = {}
    contacts = read(a / "contacts.csv")
    assert len({r["contact_id"] for r in contacts}) == len(contacts) > 2000
    for row in contacts:
        for entry in filter(None, row["kpis"].split(";")):
            name_scope, _, times = entry.partition("*")
            name, _, scope = name_scope.partition("@")
            channel, _, queue = scope.partition("/")
            key = (name, channel, queue)
            summed[key] = summed.get(key, 0) + (int(times) if times else 1)
    checked = 0
    for line in read(a / "kpis.csv"):
        if (
            line["period"] != "total"
            or line["tenant"] != "*"
            or "*" in (line["channel"], line["queue"])
        ):
            continue
        if line["metric"] in COUNTS:
            key = (line["metric"], line["channel"], line["queue"])
            assert summed.get(key, 0) == int(line["value"]), key
            checked += int(line["value"]) > 0
    assert checked > 100
    assert {"resolved", "abandoned", "answered_in_sl", "callbacks_breached"} <= {
        k[0] for k in summed
    }


def test_contacts_carry_their_story(exported: tuple[Path, Path, Path]) -> None:
    _, a, _ = exported
    contacts = read(a / "contacts.csv")
    answered = next(r for r in contacts if r["outcome"] == "answered" and r["ivr_path"])
    assert answered["answered"] >= answered["queued"] >= answered["started"]
    assert float(answered["handle_seconds"]) > 0 and answered["agents"]
    assert answered["ivr_path"].startswith("main")
    assert {r["outcome"] for r in contacts} >= {"answered", "abandoned", "left_in_ivr"}
    assert all(r["customer_id"].startswith("p-") or not r["customer_id"] for r in contacts)
    # a case event is no contact: the simulated reopen notes (ids of their own) make no row,
    # and their cases_reopened counts belong to the case's latest contact
    assert not [r for r in contacts if "-reopen" in r["contact_id"]]
    assert any("cases_reopened@" in r["kpis"] for r in contacts)
    assert all(r["started"] for r in contacts)
    alerts = read(a / "alerts.csv")
    assert {r["alertname"] for r in alerts} >= {"component_down", "ivr_depth_exceeded"}


@pytest.mark.slow
def test_explain_lists_the_contacts_behind_a_number(
    exported: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log, a, _ = exported
    want = next(int(r["value"]) for r in read(a / "kpis.csv")
                if (r["period"], r["bucket"], r["tenant"], r["channel"], r["queue"], r["metric"])
                == ("day", "2026-11-02", "*", "voice", "billing", "abandoned"))  # fmt: skip
    assert want > 0
    capsys.readouterr()
    assert main(["explain", str(log), "--metric", "abandoned", "--channel", "voice",
                 "--queue", "billing", "--day", "2026-11-02", "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr()
    rows = list(csv.DictReader(out.out.splitlines()))
    assert len(rows) == want and all(r["outcome"] == "abandoned" for r in rows)
    assert f"{want:,} contacts counted in abandoned" in out.err
