"""Live agent states (streams.agents): facts published keyed by agent, one agent engine per
agents partition; /api/agents and cc_agents equal a replay of the same log. (Through a real
broker and worker: tests/test_live_worker.py.)"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from kpis.config import EngineConfig
from streams.agents import AgentPartition, encode_mark
from streams.inputs.files import ImportStats, Source, SourceStats
from streams.inputs.importers import make_importer
from streams.inputs.importers.base import RowProblem
from streams.inputs.privacy import Pseudonymizer
from streams.kafka.checkpoint import MemoryCheckpoints
from streams.replay import Replay
from streams.replay import Source as ReplaySource
from tests.fakes import AgentsTopic, Consumer, day, records_by_tp, runtime

DATA = Path(__file__).parent / "data"
STATE_SERIES = ("agent_available_seconds", "agent_busy_seconds", "agent_after_work_seconds",
                "agent_away_seconds")  # fmt: skip


def queue_log_events() -> tuple[bytes, ...]:
    """tests/data/agents.queue_log (every agent event Asterisk writes: logins, membership,
    pauses, calls answered, transferred, abandoned, timed out) as canonical events."""
    importer = make_importer("queue_log", Pseudonymizer(""))
    src = Source(str(DATA / "agents.queue_log"))
    out = []
    for _, item in importer.events(src, SourceStats(src.name), ImportStats("queue_log"), 65536):
        assert not isinstance(item, RowProblem)
        out.append(orjson.dumps(item))
    return tuple(out)


def replay_of(lines: tuple[bytes, ...], tmp_path: Path) -> tuple[Replay, dict[str, Any]]:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rep = Replay(EngineConfig(), ZoneInfo("UTC"), staffing_view=True)
    return rep, rep.run([ReplaySource(str(path))])


def live(lines: tuple[bytes, ...], partitions: int, seed: int, crash: bool = False) -> Any:
    """Two workers share the partitions (one of them killed mid-stream if ``crash``)."""
    data = records_by_tp(lines, partitions)
    topic = AgentsTopic(data, partitions)
    store, committed = MemoryCheckpoints(), {}
    rng = random.Random(seed)
    half = set(range(0, partitions, 2))
    rest = set(range(partitions)) - half
    from tests.fakes import Shared

    shared = Shared()
    a = runtime(store, partitions, shared, agents=topic)
    b = runtime(store, partitions, shared, agents=topic)
    ca, cb = Consumer(data, committed), Consumer(data, committed)
    total = sum(len(v) for v in data.values())
    if crash:
        ca.run(a, half, rng, stop_after=total // 3)
        asyncio.run(a.tick())
        a = runtime(store, partitions, shared, agents=topic)  # killed: memory gone
        ca = Consumer(data, committed)
    ca.run(a, half, rng)
    cb.run(b, rest, rng)
    for _ in range(2):
        ca.quiesce(a)
        cb.quiesce(b)
    asyncio.run(a.tick())  # a reads b's last documents
    return a, b


def compare(view: dict[str, Any], report: dict[str, Any]) -> int:
    live_rows = {(r["tenant"], r["agent"]): r["metrics"] for r in view["agents"]}
    rows = [r for r in report["agents"] if r["period"] == "total"]
    assert rows and len(rows) == len(live_rows)
    for r in rows:
        got, want = live_rows[(r["tenant"], r["agent"])], r["metrics"]
        for name in ("agent_handled", "agent_transferred", "agent_csat_answers"):
            assert got[name] == want[name], (r["agent"], name)
        for name in (*STATE_SERIES, "agent_handle_seconds", "agent_talk_seconds"):
            assert got[name]["count"] == want[name]["count"], (r["agent"], name)
            if want[name]["count"]:
                assert got[name]["mean"] == pytest.approx(want[name]["mean"], abs=2e-3), name
        for name in ("agent_occupancy", "agent_utilisation"):
            if want[name] is None:
                assert got[name] is None
            else:
                assert got[name] == pytest.approx(want[name], abs=1e-6), name
    return len(rows)


def gauges(*workers: Any) -> dict[tuple[str, str, str], float]:
    """cc_agents{queue, state} summed over the workers' partitions."""
    out: dict[tuple[str, str, str], float] = {}
    for w in workers:
        for metric in w.registry.collect():
            for s in metric.samples:
                if s.name == "cc_agents":
                    key = (s.labels["channel"], s.labels["queue"], s.labels["state"])
                    out[key] = out.get(key, 0.0) + s.value
    return out


@pytest.mark.parametrize(("partitions", "crash"), [(1, False), (3, False), (4, True)])
def test_a_queue_log_live_gives_the_replay_agents(
    tmp_path: Path, partitions: int, crash: bool
) -> None:
    lines = queue_log_events()
    rep, report = replay_of(lines, tmp_path)
    a, b = live(lines, partitions, seed=partitions, crash=crash)
    assert compare(a.views.agents(), report) == 3  # three agents (no tenant: over all only)
    view = a.views.agents()
    assert view["states"]["offline"] == 3 and view["states"]["available"] == 0
    one = next(r for r in view["agents"] if r["agent"] == "Agent/1001")
    assert one["state"] == "offline" and one["metrics"]["agent_handled"] == 2
    assert one["name"] is None and one["state_seconds"] is not None  # no directory: no name
    # the agent directory names agents where it maps them, on /api/agents only
    a.options = replace(a.options, agent_names={"Agent/1001": "Kim Minji"})
    named = {r["agent"]: r["name"] for r in a.views.agents()["agents"]}
    assert named["Agent/1001"] == "Kim Minji" and named["Agent/1002"] is None
    assert "Kim Minji" not in "".join(str(m.samples) for m in a.registry.collect())
    # the live gauges: what the replay's engine holds at its end (everyone logged off)
    want = {(lb[1], lb[2], st): float(n) for (lb, st), n in rep.engine.agents.in_state.items()
            if st != "offline"}  # fmt: skip
    got = gauges(a, b)
    assert got == want
    assert set(got) >= {("voice", "sales", "available"), ("voice", "support", "busy")}


@pytest.mark.slow
def test_a_simulated_day_live_gives_the_replay_agents(tmp_path: Path) -> None:
    lines = day()
    _rep, report = replay_of(lines, tmp_path)
    a, b = live(lines, 3, seed=11, crash=True)
    assert compare(a.views.agents(), report) > 20
    assert a.views.agents() == b.views.agents()  # both read the shared read model
    rejected = a.registry.get_sample_value("cc_events_rejected_total", {"reason": "late"})
    assert rejected == 0.0  # no fact was late at its agent engine


def test_hostile_agents_topic_records_are_rejected_with_a_reason() -> None:
    part = AgentPartition(0, 2, EngineConfig())
    bad = [b"", b"{", b"[]", b'{"src": 9, "wm": 1.0}', b'{"src": 0}', b'{"src": 0, "wm": NaN}',
           b'{"src": 0, "ts": 1.0, "fact": {"type": "nope"}}',
           b'{"src": 0, "ts": null, "fact": {"type": "agent.state", "event_id": "e", '
           b'"ts": "2026-11-02T09:00:00Z", "channel": "voice", "contact_id": "x", '
           b'"agent_id": "a", "state": "available"}}',
           b'{"src": 0, "extra": 1}', b"\xff" * 100, b'{"src": 0, "wm": 1e400}']  # fmt: skip
    for raw in bad:
        out = part.process(raw)
        assert out.status == "rejected" and out.reason, raw
    assert part.engine.watermark == float("-inf")  # nothing moved its time
    assert part.process(encode_mark(0, 100.0, False)).status == "accepted"
    assert part.engine.watermark == float("-inf")  # source 1 has not marked yet
    part.process(encode_mark(1, 50.0, False))
    assert part.engine.watermark == 50.0
    part.process(encode_mark(1, 40.0, False))  # a mark never moves time back
    assert part.engine.watermark == 50.0
    # a fact sent again (its partition restored from a checkpoint): counted, not dead-lettered
    from kpis.wire import AgentState
    from streams.agents import encode_fact

    at = 1_800_000_000.0
    fact = AgentState(event_id="e1", ts=datetime.fromtimestamp(at, UTC), channel="voice",
                      contact_id="agent:a", agent_id="a", state="available")  # fmt: skip
    _, _, value = encode_fact(0, fact, at, 2)
    assert part.process(value).event_type == "agent.fact"
    again = part.process(value)
    assert again.status == "accepted" and again.event_type == "agent.repeat"


@pytest.mark.slow
def test_the_staffing_view_live_equals_the_replay(tmp_path: Path) -> None:
    """The current interval, required agents and forecast come from the alert stage: the
    evaluating worker's view equals a replay's, and cc_required_agents exports it."""
    from alerts.rules import RulesConfig

    lines = tuple(x for x in day() if orjson.loads(x)["ts"] < "2026-11-02T10:50")  # mid-morning
    rep, _ = replay_of(lines, tmp_path)
    assert rep.stage.staffing is not None
    want = rep.stage.staffing.view()
    assert any(r["required_agents"] for r in want)
    assert any(r["agents_staffed"] for r in want)
    data = records_by_tp(lines, 3)
    topic = AgentsTopic(data, 3)

    rt = runtime(MemoryCheckpoints(), 3, rules=RulesConfig(), agents=topic)
    consumer = Consumer(data, {})
    consumer.run(rt, {0, 1, 2}, random.Random(3))
    for _ in range(2):
        consumer.quiesce(rt)
    assert rt.views.staffing() == want
    row = next(r for r in want if r["tenant"] != "*" and r["required_agents"])
    got = rt.registry.get_sample_value("cc_required_agents", {
        "tenant": row["tenant"], "channel": row["channel"], "queue": row["queue"],
        "horizon": "now"})  # fmt: skip
    assert got == row["required_agents"]
    assert rt.views.kpis()["staffing"] == want


def _shortfall(alerts: list[dict[str, Any]]) -> list[tuple[str, str, float, float]]:
    return [(a["rule"], a["labels"]["queue"], a["starts_at"], a["ends_at"]) for a in alerts
            if a["rule"] in ("staffing_gap", "no_agents_available")
            and a["labels"]["queue"] in ("billing", "loans")]  # fmt: skip


@pytest.mark.slow
def test_the_simulated_staffing_shortfall_fires_and_resolves_in_replay_and_live(
    tmp_path: Path,
) -> None:
    """The simulator's scenario: half of billing's agents on shift called away 10:00-11:30,
    loans' team meeting 16:00-16:20. In a replay and on live workers alike, staffing_gap fires
    on billing during the absence and resolves after it, no_agents_available on loans during
    the meeting; the same alerts, with the same times."""
    from datetime import datetime

    from alerts.rules import RulesConfig
    from cc_monitor.simulator import SimConfig, simulate
    from tests.fakes import Notified

    lines = tuple(orjson.dumps(e) for e in simulate(SimConfig())
                  if e["ts"] < "2026-11-02T17:30")  # fmt: skip
    rep, _ = replay_of(lines, tmp_path)
    want = _shortfall([a.to_dict() for a in rep.timeline.alerts()])

    def at(hh_mm: str) -> float:
        return datetime.fromisoformat(f"2026-11-02T{hh_mm}:00+00:00").timestamp()

    gap = [
        a
        for a in want
        if a[0] == "staffing_gap"
        and a[1] == "billing"
        and a[2] <= at("11:00")
        and (a[3] or math.inf) >= at("11:00")
    ]  # firing mid-absence
    assert gap and all(a[3] is not None and a[3] <= at("12:30") for a in gap)
    none = [a for a in want if a[0] == "no_agents_available" and a[1] == "loans"]
    assert [(a[2] >= at("16:00"), a[3] is not None and a[3] <= at("16:30")) for a in none] == [
        (True, True)
    ]

    data = records_by_tp(lines, 3)
    topic, sent = AgentsTopic(data, 3), Notified()
    rt = runtime(MemoryCheckpoints(), 3, rules=RulesConfig(), agents=topic, notify=sent)
    consumer = Consumer(data, {})
    consumer.run(rt, {0, 1, 2}, random.Random(4))
    for _ in range(2):
        consumer.quiesce(rt)
    live: dict[tuple[str, float], dict[str, Any]] = {}
    for ev in sent.events:
        live[(ev.alert.fingerprint, ev.alert.starts_at)] = ev.alert.to_dict()
    assert _shortfall(sorted(live.values(), key=lambda a: (a["starts_at"], a["fingerprint"]))) \
        == want  # fmt: skip
