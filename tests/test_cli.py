"""The command line, end to end (in process)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from cc_monitor.cli import main


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["x-schema-version"] == 1 and "discriminator" in schema


@pytest.mark.slow
def test_simulate_then_replay_gz_with_json_report(tmp_path: Path) -> None:
    log = tmp_path / "day.jsonl.gz"
    assert main(["simulate", "--contacts-per-day", "300", "-o", str(log)]) == 0
    with gzip.open(log) as f:
        assert sum(1 for _ in f) > 1000
    out = tmp_path / "r.json"
    assert main(["replay", str(log), "--json", str(out), "--quiet", "--strict"]) == 0
    first = out.read_bytes()
    report = json.loads(first)
    assert report["rejected"]["total"] == 0 and report["events"]["accepted"] > 1000
    assert main(["replay", str(log), "--json", str(out), "--quiet"]) == 0
    assert out.read_bytes() == first  # byte-identical


@pytest.mark.slow
def test_demo_prints_the_summary_and_strict_fails_on_rejects(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--contacts-per-day", "500", "--no-progress"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "## KPIs by channel and queue" in out and "## IVR (KS S 1006 6.4.1)" in out
    assert "loans.mortgage.rates" in out
    assert "## Rejected events" in out
    # the rejected lines point into the simulated log, which is still there
    kept = captured.err.split("the simulated log stays in ")[1].split(" ")[0]
    assert Path(kept).is_file() and f"{kept}:" in out
    Path(kept).unlink()
    code = main(["demo", "--contacts-per-day", "500", "--no-progress", "--quiet", "--strict"])
    assert code == 1


def test_replay_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    log = tmp_path / "day.jsonl"
    assert main(["simulate", "--contacts-per-day", "100", "-o", str(log)]) == 0
    capsys.readouterr()
    with open(log, "rb") as f:
        monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": f})())
        assert main(["replay", "-", "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input"]["sources"][0]["name"] == "-"
    assert report["events"]["accepted"] == report["events"]["lines"]


def test_settings_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    cfg = tmp_path / "cc.toml"
    cfg.write_text('timezone = "Asia/Seoul"\n[engine]\nivr_max_depth = 4\n')
    monkeypatch.setenv("CC_MONITOR_ENGINE__ALLOWED_LATENESS_SECONDS", "120")
    log = tmp_path / "d.jsonl"
    assert main(["simulate", "--contacts-per-day", "100", "-o", str(log)]) == 0
    assert main(["--config", str(cfg), "replay", str(log), "--json", "-", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["timezone"] == "Asia/Seoul"
    assert report["config"]["engine"]["ivr_max_depth"] == 4
    assert report["config"]["engine"]["allowed_lateness_seconds"] == 120
    depth = [r for r in report["ivr"] if r["period"] == "total" and r["flow"] == "*"]
    assert depth[0]["metrics"]["ivr_depth_exceeded"] == 0  # four levels are allowed now


def _sl(report: dict[str, object]) -> dict[str, float]:
    return {
        r["channel"]: r["metrics"]["service_level"]  # type: ignore[index]
        for r in report["kpis"]  # type: ignore[attr-defined]
        if (r["period"], r["tenant"], r["queue"]) == ("total", "*", "*")
    }


@pytest.mark.parametrize("form", ["file", "environment"])
@pytest.mark.slow
def test_one_channel_set_changes_that_channel_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    form: str,
) -> None:  # fmt: skip
    log = tmp_path / "d.jsonl"
    assert main(["simulate", "--contacts-per-day", "600", "-o", str(log)]) == 0
    capsys.readouterr()
    assert main(["replay", str(log), "--json", "-", "--quiet"]) == 0
    default = json.loads(capsys.readouterr().out)
    args = ["replay", str(log), "--json", "-", "--quiet"]
    if form == "file":
        cfg = tmp_path / "cc.toml"
        cfg.write_text("[engine.service_level_seconds]\nvoice = 30\n"
                       "[engine.contact_idle_timeout_seconds]\nchat = 172800\n")  # fmt: skip
        args = ["--config", str(cfg), *args]
    else:
        monkeypatch.setenv("CC_MONITOR_ENGINE__SERVICE_LEVEL_SECONDS__VOICE", "30")
        monkeypatch.setenv("CC_MONITOR_ENGINE__CONTACT_IDLE_TIMEOUT_SECONDS__CHAT", "172800")
    assert main(args) == 0
    changed = json.loads(capsys.readouterr().out)
    engine, before = changed["config"]["engine"], default["config"]["engine"]
    assert engine["service_level_seconds"] == before["service_level_seconds"] | {"voice": 30.0}
    assert engine["contact_idle_timeout_seconds"] == (
        before["contact_idle_timeout_seconds"] | {"chat": 172800.0}
    )
    old, new = _sl(default), _sl(changed)
    assert new["voice"] > old["voice"]
    assert {k: v for k, v in new.items() if k not in ("voice", "*")} == {
        k: v for k, v in old.items() if k not in ("voice", "*")
    }
    assert min(new.values()) > 0.3  # e-mail, SMS and social keep their targets


@pytest.mark.parametrize(
    ("toml", "env", "said"),
    [
        ("[engine.service_level_seconds]\nvoic = 30\n", {},
         "unknown setting 'engine.service_level_seconds.voic'; did you mean 'voice'? (valid: "
         "chat, email, sms, social, video, voice)"),
        ("", {"CC_MONITOR_ENGINE__SERVICE_LEVEL_SECONDS__VOIC": "30"},
         "unknown setting 'engine.service_level_seconds.voic'; did you mean 'voice'?"),
        ("[engine]\nalowed_lateness_seconds = 3\n", {},
         "unknown setting 'engine.alowed_lateness_seconds'; did you mean "
         "'allowed_lateness_seconds'?"),
        ("[kafkaa]\n", {}, "unknown setting 'kafkaa'; did you mean 'kafka'?"),
        ("[engine.service_level_seconds]\nvoice = -1\n", {},
         "setting 'engine.service_level_seconds.voice': Input should be greater than 0 (got -1)"),
        ("[engine\n", {}, "is not valid TOML"),
        (None, {}, "No such file or directory"),
    ],
)  # fmt: skip
def test_settings_errors_are_one_line_each_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    toml: str | None, env: dict[str, str], said: str,
) -> None:  # fmt: skip
    cfg = tmp_path / "cc.toml"
    if toml is not None:
        cfg.write_text(toml)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    log = tmp_path / "d.jsonl"
    log.write_text("")
    assert main(["--config", str(cfg), "replay", str(log), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_settings_and_missing_files_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('timezone = "Mars/Olympus"\n')
    assert main(["--config", str(cfg), "replay", str(cfg)]) == 2
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 2


@pytest.mark.slow
def test_from_and_to_apply_to_event_time_on_plain_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A range on a plain file gives the report of the events in it (the same as a file
    holding only those), and says how many were left out; it was silently ignored."""
    log = tmp_path / "week.jsonl"
    assert main(["simulate", "--contacts-per-day", "300", "--days", "3", "-o", str(log)]) == 0
    lines = log.read_bytes().splitlines()
    start, end = "2026-11-03T00:00:00+00:00", "2026-11-04T00:00:00+00:00"
    from datetime import datetime

    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    inside = [ln for ln in lines if lo <= datetime.fromisoformat(json.loads(ln)["ts"]) < hi]
    assert 0 < len(inside) < len(lines)
    only = tmp_path / "day.jsonl"
    only.write_bytes(b"".join(ln + b"\n" for ln in inside))
    capsys.readouterr()
    assert main(["replay", str(log), "--from", start, "--to", end, "--json", "-", "--quiet"]) == 0
    ranged = json.loads(capsys.readouterr().out)
    assert main(["replay", str(only), "--json", "-", "--quiet"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert ranged["events"]["accepted"] == len(inside) == alone["events"]["accepted"]
    assert ranged["events"]["outside_range"] == len(lines) - len(inside)
    assert ranged["events"]["range"] == {"from": start, "to": end}
    for key in ("kpis", "ivr", "system", "alerts", "scorecard", "queues_at_end"):
        assert ranged[key] == alone[key], key
    assert "range" not in alone["events"] and "outside_range" not in alone["events"]
