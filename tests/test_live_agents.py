"""Live agent states (streams.agents): facts published keyed by agent, one agent engine per
agents partition; /api/agents and cc_agents equal a replay of the same log. (Through a real
broker and worker: tests/test_live_worker.py.)"""

from __future__ import annotations

import asyncio
import random
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
from streams.kafka.worker import MemoryCheckpoints
from streams.replay import Replay
from streams.replay import Source as ReplaySource
from tests.test_live import AgentsTopic, Consumer, day, records_by_tp, runtime

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
    rep = Replay(EngineConfig(), ZoneInfo("UTC"))
    return rep, rep.run([ReplaySource(str(path))])


def live(lines: tuple[bytes, ...], partitions: int, seed: int, crash: bool = False) -> Any:
    """Two workers share the partitions (one of them killed mid-stream if ``crash``)."""
    data = records_by_tp(lines, partitions)
    topic = AgentsTopic(data, partitions)
    store, committed = MemoryCheckpoints(), {}
    rng = random.Random(seed)
    half = set(range(0, partitions, 2))
    rest = set(range(partitions)) - half
    from streams.sinks.readmodel import MemoryReadModel

    shared = MemoryReadModel()
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
        if want["agent_occupancy"] is None:
            assert got["agent_occupancy"] is None
        else:
            assert got["agent_occupancy"] == pytest.approx(want["agent_occupancy"], abs=1e-6)
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
    assert compare(a.agents(), report) == 3  # three agents (no tenant: over all only)
    view = a.agents()
    assert view["states"]["offline"] == 3 and view["states"]["available"] == 0
    one = next(r for r in view["agents"] if r["agent"] == "Agent/1001")
    assert one["state"] == "offline" and one["metrics"]["agent_handled"] == 2
    # the live gauges: what the replay's engine holds at its end (everyone logged off)
    want = {(lb[1], lb[2], st): float(n) for (lb, st), n in rep.engine.agents.in_state.items()
            if st != "offline"}  # fmt: skip
    got = gauges(a, b)
    assert got == want
    assert set(got) >= {("voice", "sales", "available"), ("voice", "support", "busy")}


def test_a_simulated_day_live_gives_the_replay_agents(tmp_path: Path) -> None:
    lines = day()
    _rep, report = replay_of(lines, tmp_path)
    a, b = live(lines, 3, seed=11, crash=True)
    assert compare(a.agents(), report) > 20
    assert a.agents() == b.agents()  # both read the shared read model
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
