"""cc-monitor ivr lint: each KS S 1006 6.4.1 item on a small flow, and the shipped example."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from cc_monitor.cli import main
from kpis.ivr_lint import Flow, LintConfig, lint

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 22)


def good() -> dict[str, Any]:
    return {
        "flow": "f", "greeting_seconds": 8, "hours": "24/7", "backup": "standby",
        "reviewed": "2026-10-01",
        "menu": {"id": "top", "options": [
            {"key": "1", "menu": {"id": "sub", "asks": ["account"], "options": [
                {"key": 1, "action": "self_service"}, {"key": "0", "action": "agent"},
                {"key": "*", "action": "back"}, {"key": "#", "action": "repeat"}]}},
            {"key": "0", "action": "agent"}, {"key": "#", "action": "repeat"}]},
    }  # fmt: skip


def rules(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = lint(Flow.model_validate(doc), LintConfig(), TODAY)
    return [(f.rule, f.severity, f.path) for f in found]


def test_a_compliant_flow_has_no_findings() -> None:
    assert rules(good()) == []


def test_each_item() -> None:
    d = good()
    d["greeting_seconds"] = 20
    d["hours"] = "09:00-18:00 weekdays"
    assert rules(d) == [("hours", "violation", "f"), ("greeting_too_long", "violation", "f")]
    d = good()
    sub = d["menu"]["options"][0]["menu"]
    sub["options"] = [o for o in sub["options"] if o["key"] not in ("0", "*", "#")]
    sub["on_timeout"] = "hangup"
    sub["asks"] = ["account"]
    sub["options"].append({"key": "2", "menu": {"id": "deep", "asks": ["account"], "options": [
        {"key": "2", "menu": {"id": "deeper", "options": [
            {"key": "0", "action": "agent"}, {"key": "#", "action": "repeat"},
            {"key": "*", "action": "top"}, {"key": "*", "action": "back"}]}},
        {"key": "0", "action": "agent"}, {"key": "#", "action": "repeat"},
        {"key": "*", "action": "back"}]}})  # fmt: skip
    assert rules(d) == [
        ("agent_option", "violation", "f > top > sub"),
        ("repeat_option", "violation", "f > top > sub"),
        ("back_option", "violation", "f > top > sub"),
        ("machine_disconnect", "violation", "f > top > sub"),
        ("asked_twice", "violation", "f > top > sub > deep"),
        ("depth", "violation", "f > top > sub > deep > deeper"),
        ("duplicate_key", "violation", "f > top > sub > deep > deeper"),
    ]


def test_review_and_backup_are_warnings() -> None:
    d = good()
    d["reviewed"] = "2025-01-01"
    d.pop("backup")
    assert rules(d) == [("review", "warning", "f"), ("backup", "warning", "f")]


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(yaml.safe_dump(good()))
    assert main(["ivr", "lint", str(flow), "--today", "2026-11-22"]) == 0
    d = good()
    d.pop("backup")
    flow.write_text(yaml.safe_dump(d))
    assert main(["ivr", "lint", str(flow), "--today", "2026-11-22"]) == 0
    assert main(["ivr", "lint", str(flow), "--today", "2026-11-22", "--strict"]) == 1
    as_json = tmp_path / "f.json"
    d["greeting_seconds"] = 30
    as_json.write_bytes(orjson.dumps(d))
    capsys.readouterr()
    assert main(["ivr", "lint", str(as_json), "--json", "--today", "2026-11-22"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["violations"] == 1 and out["findings"][0]["rule"] == "greeting_too_long"
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: x\ngreeting_seconds: 3\nmenu: {id: m, options: [{key: '1'}]}\n")
    assert main(["ivr", "lint", str(bad)]) == 2
    assert "exactly one of" in capsys.readouterr().err


def test_the_shipped_example_flags_what_the_simulator_breaks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["ivr", "lint", str(ROOT / "deploy" / "ivr" / "main.yaml"), "--json",
                 "--today", "2026-11-22"])  # fmt: skip
    assert code == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    found = {(f["rule"], f["path"].split(" > ")[-1]) for f in findings}
    assert found == {("depth", "loans.mortgage.rates"), ("asked_twice", "cards.lost")}
    # the root menu is named as its flow: said once
    assert {f["path"] for f in findings} == {
        "main > loans > loans.mortgage > loans.mortgage.rates",
        "main > cards > cards.lost",
    }
