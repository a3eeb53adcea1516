"""Alert rules over partitioned engines (alerts.stage): the same alerts as one engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from alerts.evaluator import AlertTimeline
from alerts.rules import RulesConfig
from alerts.stage import AlertStage, Interval
from cc_monitor.simulator import SimConfig, simulate
from kpis.config import EngineConfig
from kpis.decode import Decoder, Rejection
from streams.inputs.files import Source
from streams.partitioned import AGENTS_TOPIC, PartitionEngine, key_of, partition_of, route_agents
from streams.replay import Replay


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The simulator's day (with its trunk outage) and the alerts a replay gives for it."""
    lines = [orjson.dumps(e) for e in simulate(SimConfig())]
    path = tmp_path_factory.mktemp("day") / "day.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rep = Replay(EngineConfig(), ZoneInfo("UTC"))
    rep.run([Source(str(path))])
    return lines, [a.to_dict() for a in rep.timeline.alerts()]


def run_partitioned(
    lines: list[bytes], partitions: int, *, chunk: int = 5000,
    restart: tuple[int, int] | None = None, stage_restart_at: int | None = None,
) -> tuple[list[dict[str, Any]], AlertTimeline]:  # fmt: skip
    """Lines routed as the producer routes them, engines fed chunk by chunk, the stage
    released after each chunk as a live worker's tick does. ``restart=(p, n)``: partition
    ``p`` is restored from the checkpoint it had after chunk ``n`` and reprocesses what came
    after it; ``stage_restart_at``: the stage is rebuilt from its snapshot after that chunk."""
    config, rules = EngineConfig(), RulesConfig()
    timeline = AlertTimeline()
    # input partitions 0..n-1 and agents partitions n..2n-1 (streams.agents)
    stage = AlertStage(
        rules, timeline, range(2 * partitions), staff_from=range(partitions, 2 * partitions)
    )
    engines = {p: PartitionEngine(p, config, rules=rules, agents_topic=AGENTS_TOPIC,
                                  sources=partitions) for p in range(partitions)}  # fmt: skip
    routed: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    decoder = Decoder()
    for raw in lines:
        try:
            rec, _ = decoder.decode(raw)
            routed[partition_of(key_of(rec), partitions)].append(raw)
        except Rejection:
            routed[0].append(raw)
    saved: bytes | None = None
    done = dict.fromkeys(range(partitions), 0)

    def tick() -> None:
        route_agents(engines)
        progress = {}
        for p, pe in engines.items():
            assert pe.recorder is not None and pe.agents is not None
            assert pe.agents.recorder is not None
            stage.offer(pe.recorder.take())
            stage.offer(pe.agents.recorder.take())
            progress[p] = pe.alert_progress()
            progress[partitions + p] = pe.agents.alert_progress()
        stage.release(progress)

    rounds = max(len(v) for v in routed.values()) // chunk + 1
    for n in range(rounds):
        for p, pe in engines.items():
            for raw in routed[p][n * chunk : (n + 1) * chunk]:
                pe.process("log", done[p], raw)
                done[p] += 1
        if restart is not None and n == restart[1]:
            saved = engines[restart[0]].checkpoint()
        tick()
        if stage_restart_at == n:
            snap = orjson.loads(orjson.dumps(stage.snapshot()))
            stage = AlertStage(
                rules, timeline, range(2 * partitions), staff_from=range(partitions, 2 * partitions)
            )
            stage.restore(snap)
    if restart is not None:
        # the partition dies and comes back from its older checkpoint: its records since
        # are processed again and its intervals offered again
        p = restart[0]
        pe = PartitionEngine.from_checkpoint(
            p, config, saved, rules=rules, agents_topic=AGENTS_TOPIC, sources=partitions
        )
        engines[p] = pe
        for i, raw in enumerate(routed[p]):
            pe.process("log", i, raw)
            done[p] = i + 1
        tick()
    latest = max(pe.max_ts for pe in engines.values())
    for pe in engines.values():
        pe.flush(latest)
    tick()
    return [a.to_dict() for a in timeline.alerts()], timeline


@pytest.mark.parametrize("partitions", [1, 3, 6])
@pytest.mark.slow
def test_partitioned_alerts_equal_one_engine(day: Any, partitions: int) -> None:
    lines, expected = day
    assert {a["rule"] for a in expected} >= {"component_down", "channel_silent"}
    got, timeline = run_partitioned(lines, partitions)
    assert got == expected  # same rules, groups, starts, ends, values and evidence
    assert sum(e.status == "firing" for e in timeline.events) == len(expected)


@pytest.mark.slow
def test_a_restored_partition_and_a_restored_stage_change_nothing(day: Any) -> None:
    lines, expected = day
    got, timeline = run_partitioned(lines, 3, chunk=2000, restart=(1, 2), stage_restart_at=4)
    assert got == expected
    # nothing fired twice although partition 1 offered its intervals again
    assert sum(e.status == "firing" for e in timeline.events) == len(expected)


def test_the_stage_waits_for_the_slowest_partition() -> None:
    rules = RulesConfig()
    every = rules.evaluation_interval_seconds
    stage = AlertStage(rules, AlertTimeline(), range(2))
    stage.offer([Interval(every, 0), Interval(2 * every, 0)])
    assert stage.release({0: 2 * every}) == 0  # partition 1 has said nothing yet
    assert stage.release({0: 2 * every, 1: float("-inf")}) == 0
    assert stage.release({0: 2 * every, 1: every}) == 1
    assert stage.evaluated_to == every
    assert stage.release({0: 2 * every, 1: 3 * every}) == 1  # only up to the slowest
    stage.offer([Interval(every, 1)])  # late copy of an evaluated interval: ignored
    assert stage.snapshot()["pending"] == []


def test_interval_round_trip() -> None:
    i = Interval(60.0, 2, {("x", ("a", "b")): 3.0}, [(1.0, "x", ("a", "b"), "c1")],
                 [(2.0, ("t", "trunk"), 0.0)], {("t", "voice", "q"): (2, 30.0)})  # fmt: skip
    assert Interval.from_list(orjson.loads(orjson.dumps(i.to_list()))) == i


def test_replay_path_unchanged_for_a_log(tmp_path: Path, day: Any) -> None:
    """The replay's alert timeline still shows the simulated outage (sanity of the wiring)."""
    _, expected = day
    names = [(a["rule"], a["labels"].get("channel") or a["labels"].get("component"))
             for a in expected if a["rule"] in {"component_down", "channel_silent"}]  # fmt: skip
    assert names == [("component_down", "trunk"), ("channel_silent", "voice")]


@pytest.mark.slow
def test_a_release_limited_per_call_gives_the_same_alerts(day: Any) -> None:
    """A live worker evaluates a backlog's ticks a bounded number at a time; the alerts and
    their times are the same as all at once."""
    lines, expected = day
    rules = RulesConfig()
    timeline = AlertTimeline()
    stage = AlertStage(rules, timeline, range(1), staff_from=())
    pe = PartitionEngine(0, EngineConfig(), rules=rules)
    for i, raw in enumerate(lines):
        pe.process("log", i, raw)
    pe.flush(pe.max_ts)
    assert pe.recorder is not None
    stage.offer(pe.recorder.take())
    calls = 0
    while stage.release({0: pe.alert_progress()}, limit=50):
        calls += 1
    assert calls > 10
    staffing = {"staffing_gap", "no_agents_available"}  # no agent engine here: not measured
    want = [a for a in expected if a["rule"] not in staffing]
    assert [a.to_dict() for a in timeline.alerts()] == want
