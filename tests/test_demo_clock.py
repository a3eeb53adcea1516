"""The live demo's simulated clock and the worker's reject alarm: a worker fed a day played
faster than the wall clock must either be told that clock or say it is throwing its input
away (the demo once froze after 15 s at 60x with /health "ok")."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry

from cc_monitor.live_demo import LEAD_WALL_SECONDS, clock_env, demo_clock, on_clock
from cc_monitor.simulator import SimConfig
from kpis.clock import EventClock
from kpis.config import EngineConfig
from streams.kafka.checkpoint import MemoryCheckpoints
from streams.kafka.settings import Topics
from streams.kafka.worker import LiveOptions, LiveRuntime
from streams.kafka.worker_settings import ClockSettings
from streams.rejects import RejectWatch

INPUTS = Topics().inputs()
START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC).timestamp()


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _feed(rt: LiveRuntime, wall: Wall, cfg: SimConfig, clock: EventClock, seconds: float) -> int:
    """Sends the simulated day as the demo's feeder does, at the wall times it would, for
    ``seconds`` of wall time; returns the records sent."""
    n = 0
    for when, raw in on_clock(cfg, clock):
        if when > clock.wall_start + seconds:
            break
        wall.t = max(wall.t, when)
        rt.on_record(INPUTS[0], 0, n, raw, lambda: None)
        n += 1
    return n


def test_the_event_clock() -> None:
    c = EventClock(1000.0, 5000.0, 60.0)
    assert c.at(1000.0) == 5000.0 and c.at(1010.0) == 5600.0
    assert c.wall_at(c.at(1234.5)) == pytest.approx(1234.5)
    assert not EventClock().simulated and EventClock().at(42.0) == 42.0
    s = ClockSettings(speed=60, wall_start=datetime(2026, 1, 1, tzinfo=UTC),
                      event_start=datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    assert s.event_clock().speed == 60 and s.event_clock().simulated
    with pytest.raises(ValueError, match="needs wall_start"):
        ClockSettings(speed=60)
    with pytest.raises(ValueError, match="both"):
        ClockSettings(wall_start=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_worker_on_the_wall_clock_says_it_rejects_a_fast_day() -> None:
    """The demo's old way: the day played at 60x from now, the worker on the wall clock. After
    15 s of wall time events are more than 900 s ahead: they are rejected, and /health, the
    metric and the wallboard's source say so with the reason and the counts."""
    cfg = SimConfig(start=date(2026, 11, 2), contacts_per_day=3000)
    wall = Wall(START)
    played = EventClock(START, START, 60.0)  # what the feeder played; the worker is not told
    rt = LiveRuntime(
        EngineConfig(),
        1,
        MemoryCheckpoints(),
        registry=CollectorRegistry(),
        clock=wall,
        options=LiveOptions(inputs=INPUTS),
    )
    _feed(rt, wall, cfg, played, 40)
    health = rt.views.health()
    assert health["status"] == "degraded"
    problem = " ".join(str(p) for p in health["problems"])
    assert "rejecting" in problem and "out_of_range" in problem
    assert "ahead of the wall clock" in problem
    read = health["input"]["read"]  # type: ignore[index]
    assert health["input"]["rejected"]["out_of_range"] > 0.2 * read  # type: ignore[index]
    asyncio.run(rt.tick())
    share = rt.registry.get_sample_value("cc_input_rejected_share")
    assert share is not None and share > 0.2


@pytest.mark.slow
def test_a_worker_told_the_demos_clock_accepts_the_whole_run() -> None:
    """The demo's way: the worker runs on the simulated clock the feeder plays on; at 60x and
    600x nothing is rejected and event time keeps moving with the clock."""
    for speed in (60.0, 600.0):
        cfg = SimConfig(start=date(2026, 11, 2), contacts_per_day=3000, days=2)
        wall = Wall(START - 100)
        clock = demo_clock(cfg, speed, START)
        env = clock_env(clock)
        lead = float(env["CC_MONITOR_ENGINE__MAX_CLOCK_LEAD_SECONDS"])
        assert lead >= 2 * LEAD_WALL_SECONDS * speed
        config = EngineConfig(max_clock_lead_seconds=lead)
        rt = LiveRuntime(
            config,
            1,
            MemoryCheckpoints(),
            registry=CollectorRegistry(),
            clock=wall,
            options=LiveOptions(inputs=INPUTS, event_clock=clock),
        )
        n = _feed(rt, wall, cfg, clock, 120)
        assert n > 500
        assert rt.registry.get_sample_value("cc_events_rejected_total",
                                            {"reason": "out_of_range"}) == 0  # fmt: skip
        health = rt.views.health()
        assert health["status"] == "ok", health["problems"]
        assert health["input"]["rejected"] == {}  # type: ignore[index]
        # the event time the worker reached follows the clock (2 min of wall time at speed)
        assert rt.owned[0].pe.max_ts >= clock.at(wall.t) - 600


def test_the_reject_watch_window_and_threshold() -> None:
    w = RejectWatch(alarm_share=0.5, window=10, min_records=4)
    for i in range(3):
        w.observe(100 + i, "late", "10 s behind the watermark")
    assert w.problem(103) is None  # fewer than min_records
    w.observe(103, None)
    assert w.problem(103) == ("rejecting 75% of the input read in the last 10 s (3 of 4: "
                              "late 3); latest late: 10 s behind the watermark")  # fmt: skip
    assert w.share(103) == 0.75
    for i in range(10):
        w.observe(104 + i, None)
    assert w.counts(113)[0] == 11 and w.problem(113) is None  # the rejects left the window
    # memory: one bucket a second of the window, whatever the rate
    for i in range(5000):
        w.observe(200 + i / 100, "invalid")
    assert len(w._buckets) <= 11


def test_the_demo_refuses_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from cc_monitor.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(SystemExit) as exc:
            main(["live", "--port", str(port), "--duration", "1"])
    assert exc.value.code != 0
    assert str(exc.value.code).count("\n") == 0 and f"port {port} is already in use" in str(
        exc.value.code)  # fmt: skip


def test_on_clock_sends_each_event_ahead_of_its_time() -> None:
    cfg = SimConfig(start=date(2026, 11, 2), contacts_per_day=500)
    clock = demo_clock(cfg, 60.0, START)
    first = [(when, orjson.loads(raw)) for when, raw in list(on_clock(cfg, clock))[:50]]
    for when, ev in first:
        ts = datetime.fromisoformat(ev["ts"]).timestamp()
        assert ts >= clock.event_start  # nothing before the demo's morning
        assert clock.at(when) == pytest.approx(ts - LEAD_WALL_SECONDS * 60)
