"""Alert rules on event time: thresholds, `for`, keep-firing, resolution, checkpoints, and the
simulator's incident window in replay."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from alerts.evaluator import AlertLogic
from cc_monitor.cli import main
from cc_monitor.simulator import SimConfig, simulate
from kpis.config import EngineConfig
from streams.replay import Replay, Source
from tests.builders import Events, M, Q, only, ticks


def test_count_rule_fires_at_the_threshold_not_below_and_resolves() -> None:
    out = Events()
    logic = AlertLogic(only("ivr_depth_exceeded", keep_firing_seconds=0), out)
    labels = ("bank", "voice", "main", "deep")
    for _ in range(2):
        logic.count("ivr_depth_exceeded", labels, 10, "c1")
    ticks(logic, 60, 60)
    assert out.seen == []  # 2 < 3
    logic.count("ivr_depth_exceeded", labels, 70, "c2")
    ticks(logic, 120, 120)
    assert out.log() == [("firing", "ivr_depth_exceeded", 120)]
    alert = out.seen[0].alert
    assert alert.labels == {"alertname": "ivr_depth_exceeded", "severity": "warning",
                            "tenant": "bank", "flow": "main", "menu": "deep"}  # fmt: skip
    assert alert.evidence == ["c1", "c2"] and alert.value == 3
    assert alert.runbook_url.endswith("#ivr-depth-exceeded") and "deep" in alert.summary
    ticks(logic, 180, 15 * M)  # the two first breaches leave the 15-min window at 960
    assert out.log() == [("firing", "ivr_depth_exceeded", 120)]
    ticks(logic, 16 * M, 16 * M)
    assert out.log()[-1] == ("resolved", "ivr_depth_exceeded", 16 * M)


def test_keep_firing_prevents_flapping() -> None:
    out = Events()
    logic = AlertLogic(only("ivr_depth_exceeded", keep_firing_seconds=10 * M,
                            window_seconds=M), out)  # fmt: skip
    labels = ("bank", "voice", "main", "deep")
    for t in (0, 11 * 60):  # a burst, a quiet spell, a burst
        for _ in range(3):
            logic.count("ivr_depth_exceeded", labels, t, None)
        ticks(logic, t + 60, t + 60)
        ticks(logic, t + 120, t + 9 * M)
    assert [s for s, _, _ in out.log()] == ["firing"]  # the quiet 9 minutes did not resolve it
    ticks(logic, 21 * M, 22 * M)  # clear since 13 min: not yet 10 min
    assert [s for s, _, _ in out.log()] == ["firing"]
    ticks(logic, 23 * M, 23 * M)
    assert out.log()[-1] == ("resolved", "ivr_depth_exceeded", 23 * M)


def test_ratio_rule_honours_for_min_volume_and_direction() -> None:
    out = Events()
    logic = AlertLogic(only("abandonment_high", keep_firing_seconds=0), out)  # for 5 min
    for _ in range(8):
        logic.count("answered", Q, 0)
    for _ in range(2):
        logic.count("abandoned", Q, 0)
    ticks(logic, 60, 10 * M)
    assert out.seen == []  # 20% but only 10 contacts: under min_volume 20
    for _ in range(8):
        logic.count("answered", Q, 601)
    for _ in range(2):
        logic.count("abandoned", Q, 601)
    ticks(logic, 11 * M, 15 * M)
    assert out.seen == []  # 20% of 20 is at the threshold: true since 11 min, `for` is 5 min
    for _ in range(8):
        logic.count("answered", Q, 901)
    for _ in range(2):
        logic.count("abandoned", Q, 901)
    ticks(logic, 16 * M, 16 * M)  # the first batch left the window; the third keeps it at 20
    assert out.log() == [("firing", "abandonment_high", 16 * M)]
    assert out.seen[0].alert.value == pytest.approx(0.2)
    ticks(logic, 17 * M, 25 * M)
    assert len(out.seen) == 1
    ticks(logic, 26 * M, 26 * M)  # the second batch leaves the window: under min_volume
    assert out.log()[-1] == ("resolved", "abandonment_high", 26 * M)


def test_service_level_fires_below_target_only_on_real_time_channels() -> None:
    out = Events()
    logic = AlertLogic(only("service_level_low", for_seconds=0, keep_firing_seconds=0), out)
    for channel in ("voice", "email"):
        labels = ("bank", channel, "q")
        for _ in range(10):
            logic.count("answered_in_sl", labels, 0)
        for _ in range(20):
            logic.count("answered", labels, 0)
        for _ in range(5):
            logic.count("abandoned", labels, 0)
    ticks(logic, 60, 60)
    assert [e.alert.labels["channel"] for e in out.seen] == ["voice"]  # 10/25 = 40% < 60%


def test_oldest_wait_and_component_down() -> None:
    out = Events()
    waits = {Q: (3, 200.0)}
    logic = AlertLogic(only("oldest_wait_high", keep_firing_seconds=0), out, lambda now: waits)
    ticks(logic, 60, 60)
    waits[Q] = (3, 301.0)
    ticks(logic, 120, 120)
    waits.clear()
    ticks(logic, 180, 180)
    assert out.log() == [("firing", "oldest_wait_high", 120), ("resolved", "oldest_wait_high", 180)]

    out = Events()
    logic = AlertLogic(only("component_down"), out)
    logic.gauge("system_status", ("bank", "trunk"), 10, 0.0)
    ticks(logic, 60, 120)
    logic.gauge("system_status", ("bank", "trunk"), 130, 0.5)  # degraded is not down
    ticks(logic, 180, 180)
    assert out.log() == [("firing", "component_down", 60), ("resolved", "component_down", 180)]
    assert out.seen[0].alert.severity == "critical"


def test_silence_needs_a_baseline() -> None:
    out = Events()
    logic = AlertLogic(only("channel_silent"), out)  # 10-min window, 6 baseline windows, >= 10
    labels = ("bank", "voice", "-")
    t = 0.0
    for minute in range(1, 61):  # an hour at 2 contacts a minute
        for _ in range(2):
            logic.count("contacts", labels, t)
        t = minute * M
        logic.on_tick(t)
    assert out.seen == []
    for minute in range(61, 71):  # ten silent minutes
        logic.on_tick(minute * M)
    assert out.log() == [("firing", "channel_silent", 70 * M)]
    assert out.seen[0].alert.value == pytest.approx(20)  # the hour before: 20 per 10 min
    logic.count("contacts", labels, 70 * M + 1)
    logic.on_tick(71 * M)
    assert out.log()[-1] == ("resolved", "channel_silent", 71 * M)


def test_a_restored_checkpoint_does_not_page_again() -> None:
    out = Events()
    logic = AlertLogic(only("component_down"), out)
    logic.gauge("system_status", ("bank", "trunk"), 10, 0.0)
    ticks(logic, 60, 120)
    snap = orjson.loads(orjson.dumps(logic.snapshot()))
    again = Events()
    restored = AlertLogic(only("component_down"), again)
    restored.restore(snap)
    ticks(restored, 180, 300)
    assert again.seen == []  # still firing, not fired twice
    restored.gauge("system_status", ("bank", "trunk"), 310, 1.0)
    ticks(restored, 360, 360)
    assert again.log() == [("resolved", "component_down", 360)]
    assert again.seen[0].alert.starts_at == 60


def incident_alerts() -> list[dict[str, Any]]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "day.jsonl"
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in simulate(SimConfig())))
        rep = Replay(EngineConfig(), ZoneInfo("UTC")).run([Source(str(path))])
    return rep["alerts"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_the_simulated_incident_raises_exactly_the_incident_alerts() -> None:
    incident = {"component_down", "system_disconnects_spike", "channel_silent"}
    got = [
        (a["alertname"], a["labels"].get("channel") or a["labels"].get("component"),
         a["starts_at"][11:16], a["ends_at"][11:16])
        for a in incident_alerts() if a["alertname"] in incident
    ]  # fmt: skip
    assert got == [
        ("component_down", "trunk", "14:00", "14:30"),
        ("system_disconnects_spike", "voice", "14:01", "14:16"),
        ("channel_silent", "voice", "14:10", "14:31"),  # no voice contact from 14:00
    ]


@pytest.mark.slow
def test_rules_check_and_a_rules_file_in_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "rules.toml"
    good.write_text("[rules.channel_silent]\nenabled = false\n[rules.abandonment_high]\n"
                    "threshold = 0.3\n")  # fmt: skip
    assert main(["rules", "check", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules.abandonment_high]\nthreshold = 3\nwindow = 1\n[rules.nope]\n")
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown rule(s): nope" in err
    bad.write_text("[rules.abandonment_high]\nthreshold = 3\nwindow = 1\n")
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "threshold" in err and "less than or equal to 1" in err and "window" in err
    log = tmp_path / "day.jsonl"
    assert main(["simulate", "-o", str(log), "--start", str(date(2026, 11, 2))]) == 0
    capsys.readouterr()
    assert main(["replay", str(log), "--rules", str(good), "--json", "-", "--quiet"]) == 0
    rep = orjson.loads(capsys.readouterr().out)
    names = {a["alertname"] for a in rep["alerts"]}
    assert "channel_silent" not in names and "component_down" in names
    assert rep["config"]["rules"]["rules"]["abandonment_high"]["threshold"] == 0.3
