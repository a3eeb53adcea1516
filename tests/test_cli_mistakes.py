"""Ordinary mistakes on the command line: each is refused in one line with exit code 2 (a
missing input, a bad value, a broker that is not there), before any work, and never with a
traceback or a silent exit 0 (issue 33)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import cc_monitor.settings as settings_module
from cc_monitor.cli import DESCRIPTIONS, build_parser, countable, main


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def small_log(tmp_path: Path) -> Path:
    log = tmp_path / "day.jsonl"
    assert main(["simulate", "--contacts-per-day", "60", "--no-incident", "-o", str(log)]) == 0
    return log


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "kafka:", "--quiet", "--no-progress"],
        ["audit", "reconcile", "{archive}", "--no-kpis"],
        ["produce", "{log}"],
        ["worker", "--port", "0"],
    ],
    ids=["replay-kafka", "audit-reconcile", "produce", "worker"],
)
def test_no_broker_is_one_line_naming_the_address_exit_2(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("CC_MONITOR_PSEUDONYM_KEY", "test-key")
    archive = tmp_path / "archive"
    archive.mkdir()
    log = tmp_path / "e.jsonl"
    log.write_text("{}\n")
    address = f"127.0.0.1:{_refused_port()}"
    argv = [a.format(archive=archive, log=log) for a in command] + ["--bootstrap", address]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"cannot reach the Kafka broker at {address}" in line and "--bootstrap" in line


def test_explain_refuses_an_unknown_metric_with_a_did_you_mean(
    small_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["explain", str(small_log), "--metric", "abandonned", "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "did you mean 'abandoned'?" in line and "answered_in_sl" in line
    assert "abandoned" in countable() and "answered" in countable()


def test_explain_refuses_a_day_that_is_not_a_date(
    small_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["explain", str(small_log), "--metric", "abandoned", "--day", "2026-13-01"])
    assert exit_.value.code == 2
    assert "not a date (YYYY-MM-DD): 2026-13-01" in _one_line(capsys.readouterr().err)


def test_explain_with_a_valid_day_still_lists_contacts(
    small_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["explain", str(small_log), "--metric", "answered", "--day", "2026-11-02",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) > 10 and "day=2026-11-02" in captured.err


@pytest.mark.parametrize(
    "argv, said",
    [
        (["simulate", "--days", "-1"], "--days: must be 1 or more: -1"),
        (["simulate", "--contacts-per-day", "0"], "must be 1 or more: 0"),
        (["simulate", "--bad-lines-per-day", "-3"], "must be 0 or more: -3"),
        (["demo", "--days", "many"], "not a whole number: many"),
        (["live", "--speed", "0"], "--speed: must be above 0"),
        (["replay", "x", "--from", "2026-11-02"], "a time needs an offset"),
        (["ivr", "lint", "f.yaml", "--review-days", "-5"], "must be 1 or more"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_values_are_refused_in_one_line(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert said in line and "--help" in line


def test_a_folder_without_an_archive_or_logs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not events\n")
    for argv in (["replay", str(tmp_path)], ["produce", str(tmp_path)],
                 ["explain", str(tmp_path), "--metric", "answered"]):  # fmt: skip
        assert main(argv) == 2
        assert "is a folder but not" in _one_line(capsys.readouterr().err)


def test_a_folder_of_logs_replays_as_its_files(
    small_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    small_log.rename(folder / "day.jsonl")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["replay", str(folder), "--json", str(a), "--quiet", "--no-progress"]) == 0
    assert main(["replay", str(folder / "day.jsonl"), "--json", str(b), "--quiet",
                 "--no-progress"]) == 0  # fmt: skip
    assert json.loads(a.read_bytes())["kpis"] == json.loads(b.read_bytes())["kpis"]
    assert json.loads(a.read_bytes())["events"]["accepted"] > 500


@pytest.mark.slow
def test_outputs_into_a_missing_folder_are_made(small_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "deeper"
    argv = ["replay", str(small_log), "--quiet", "--no-progress", "--json", str(out / "r.json"),
            "--html", str(out / "r.html"), "--csv", str(out / "csv")]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "r.json").read_bytes())["events"]["accepted"] > 500
    assert (out / "r.html").read_text().startswith("<!doctype html>")
    assert (out / "csv" / "kpis.csv").is_file()
    sim = tmp_path / "new" / "sim.jsonl.gz"
    assert main(["simulate", "--contacts-per-day", "20", "-o", str(sim)]) == 0
    assert sim.stat().st_size > 100


def test_an_output_that_cannot_be_written_is_one_line(
    small_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    capsys.readouterr()
    argv = ["replay", str(small_log), "--quiet", "--no-progress", "--json",
            str(blocker / "r.json")]  # fmt: skip
    assert main(argv) == 2
    assert f"cannot write {blocker / 'r.json'}" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "{missing}"],
        ["explain", "{missing}", "--metric", "answered"],
        ["produce", "{missing}"],
        ["audit", "archive", "{missing}", "--into", "{tmp}/a"],
        ["audit", "verify", "{missing}"],
        ["audit", "reconcile", "{missing}"],
        ["rules", "check", "{missing}"],
        ["ivr", "lint", "{missing}"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_a_missing_input_is_exit_2_for_every_command(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope")
    assert main([a.format(missing=missing, tmp=tmp_path) for a in argv]) == 2
    assert missing in _one_line(capsys.readouterr().err)


def test_every_command_says_what_it_does_and_shows_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) <= DESCRIPTIONS.keys()  # type: ignore[attr-defined]
    for argv in (["simulate"], ["replay"], ["audit", "reconcile"], ["worker"], ["ivr", "lint"]):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--help"])
        assert exit_.value.code == 0
        out = " ".join(capsys.readouterr().out.split())
        what = " ".join(DESCRIPTIONS[argv[-1]].split())
        assert what in out and "exit codes: 0 done; 1" in out
    main_help = ["simulate", "--help"]
    with pytest.raises(SystemExit):
        main(main_help)
    out = " ".join(capsys.readouterr().out.split())
    assert "--days DAYS days to simulate (default: 1)" in out
    assert "(default: 0)" in out  # a zero default is shown, not taken for "unset"
    assert "--no-incident no trunk outage --bad" in out  # flags show no default


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("cc-monitor ") and out.strip() != "cc-monitor"


def test_the_unkeyed_pseudonym_warning_comes_once_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(settings_module, "_WARNED", [])
    monkeypatch.setenv("CC_MONITOR_WORKER__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CC_MONITOR_PSEUDONYM_KEY", raising=False)
    rows = ["vru+line\tcall_id\tcustomer_id\tpriority\ttype\tdate\tvru_entry\tvru_exit\t"
            "vru_time\tq_start\tq_exit\tq_time\toutcome\tser_start\tser_exit\tser_time\tserver",
            "AA0101\t33116\t9664491\t2\tPS\t990901\t11:07:39\t11:07:44\t5\t11:07:44\t11:08:36\t"
            "52\tAGENT\t11:08:36\t11:11:01\t145\tMICHAL"]  # fmt: skip
    files = []
    for i in range(3):
        f = tmp_path / f"{i}.tsv"
        f.write_text("\n".join(rows) + "\n")
        files.append(str(f))
    argv = ["replay", "--format", "anonymous-bank", *files, "--quiet", "--no-progress",
            "--csv", str(tmp_path / "csv")]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("no pseudonym_key set") == 1, err


def test_a_bad_agent_directory_stops_the_worker_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC_MONITOR_PSEUDONYM_KEY", "test-key")
    bad = tmp_path / "agents.csv"
    bad.write_text("agent,name\nsecret-raw-id\n")
    monkeypatch.setenv("CC_MONITOR_WORKER__AGENT_DIRECTORY", str(bad))
    # refused before the broker is asked (none listens on this address)
    argv = ["worker", "--port", "0", "--bootstrap", f"127.0.0.1:{_refused_port()}"]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "agent directory" in line and "line 2: no name" in line, line
    assert "secret-raw-id" not in line  # an id is never in a message
