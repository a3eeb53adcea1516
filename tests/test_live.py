"""The live worker's logic without Kafka: per-partition engines, checkpoints with offsets,
crashes and rebalances, the read model. (Against a real broker: test_live_worker.py.)"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from prometheus_client import CollectorRegistry

from alerts.rules import RulesConfig
from kpis.catalogue import KPI, names
from kpis.config import EngineConfig
from kpis.decode import Decoder
from kpis.engine import Engine
from kpis.report import COUNTS
from streams.kafka.checkpoint import MemoryCheckpoints, load_checkpoint
from streams.kafka.settings import topic_for
from streams.kafka.worker import LiveOptions, LiveRuntime
from streams.partitioned import (
    PartitionEngine,
    merged,
    partition_doc,
    replay_partitioned,
)
from streams.replay import Replay, Source
from streams.routing import key_of, partition_of
from streams.sinks.alertstore import MemoryAlertStore
from streams.sinks.metrics import MetricsSink
from streams.sinks.readmodel import MemoryKpiView, kpi_view
from tests.fakes import (
    INPUTS,
    TOPICS,
    AgentsTopic,
    Clock,
    Consumer,
    InputsTopic,
    Notified,
    Shared,
    day,
    records_by_tp,
    runtime,
)

DURATIONS = names(KPI, "duration", live=True)  # replay-only ones (agent states) left out
REPLAY_ONLY = set(names(KPI, "count")) - set(names(KPI, "count", live=True))  # repeats

# Report series that only a replay's end settles (what is still open when the log ends).
END_ONLY = {"cases_open_at_end", "contacts_open_at_end", "callbacks_pending", "handle_incomplete",
            "reason_cases_open_at_end"}  # fmt: skip


def single_engine(lines: tuple[bytes, ...]) -> MetricsSink:
    """One engine over everything, as a partition's: without repeat contacts (a customer's
    cases spread over partitions, kpis.rules.repeats), which only a replay measures."""
    sink = MetricsSink()
    eng = Engine(EngineConfig(), sink, repeats=False)
    dec = Decoder()
    for raw in lines:
        eng.ingest(*dec.decode(raw))
    eng.flush()
    return sink


@pytest.mark.parametrize("partitions", [1, 3, 6])
def test_partitioned_engines_add_up_to_one_engine_over_everything(partitions: int) -> None:
    engines = replay_partitioned(day(), partitions, EngineConfig())
    assert sum(pe.processed for pe in engines.values()) == len(day())
    assert sum(1 for pe in engines.values() if pe.processed) == partitions
    one = single_engine(day())
    total = merged(pe.metrics for pe in engines.values())
    assert total.counters == one.counters
    assert total.histograms.keys() == one.histograms.keys()
    for key, h in one.histograms.items():
        assert total.histograms[key][:-1] == h[:-1], key
        assert total.histograms[key][-1] == pytest.approx(h[-1]), key


def view_of(rt: LiveRuntime) -> dict[str, Any]:
    return kpi_view([partition_doc(o.pe) for o in rt.owned.values()], rt.partitions)


def expected_view(partitions: int) -> dict[str, Any]:
    engines = replay_partitioned(day(), partitions, EngineConfig())
    return kpi_view([partition_doc(pe) for pe in engines.values()], partitions)


@pytest.mark.slow
def test_topics_read_unevenly_give_the_replay_result() -> None:
    """Three topics per partition, fetched in uneven batches: the watermark follows the slowest
    topic, so nothing is late, and the final view equals the replay's."""
    data = records_by_tp(day(), 3)
    store, committed = MemoryCheckpoints(), {}
    rt = runtime(store, 3)
    consumer = Consumer(data, committed)
    consumer.run(rt, {0, 1, 2}, random.Random(1))
    consumer.quiesce(rt)
    rejected = rt.registry.get_sample_value("cc_events_rejected_total", {"reason": "late"})
    assert rejected == 0.0  # every reason is exported from the start; none was late
    assert view_of(rt) == expected_view(3)


@pytest.mark.parametrize("seed", [2, 3, 4])
@pytest.mark.slow
def test_crashes_lose_nothing_and_count_nothing_twice(seed: int) -> None:
    """Kill the worker (drop its memory) at random points; a new one restores the
    checkpoints, the consumer resumes from the committed offsets (so redelivers what was not
    acknowledged). The end result equals the replay's."""
    rng = random.Random(seed)
    data = records_by_tp(day(), 3)
    total = sum(len(v) for v in data.values())
    store, committed = MemoryCheckpoints(), {}
    redelivered = 0
    for _ in range(4):
        rt = runtime(store, 3)
        consumer = Consumer(data, committed)
        before = sum(committed.values())
        n = consumer.run(rt, {0, 1, 2}, rng, stop_after=rng.randint(1000, total // 3))
        redelivered += max(0, before + n - sum(committed.values()))
    rt = runtime(store, 3)
    consumer = Consumer(data, committed)
    consumer.run(rt, {0, 1, 2}, rng)
    consumer.quiesce(rt)
    assert redelivered > 0  # the crashes did lose unacknowledged progress
    assert view_of(rt) == expected_view(3)
    assert sum(o.pe.processed for o in rt.owned.values()) == total


@pytest.mark.slow
def test_partitions_move_between_workers() -> None:
    """Two workers share a checkpoint store (the table); partitions move from one to the
    other mid-stream without being saved on revocation."""
    rng = random.Random(9)
    data = records_by_tp(day(), 4)
    store, committed, shared = MemoryCheckpoints(), {}, Shared()
    a, b = runtime(store, 4, shared), runtime(store, 4, shared)
    ca, cb = Consumer(data, committed), Consumer(data, committed)
    ca.run(a, {0, 1}, rng, stop_after=2500)
    cb.run(b, {2, 3}, rng, stop_after=2500)
    a.revoke({1})
    b.revoke({3})
    ca.run(a, {0, 3}, rng)
    cb.run(b, {1, 2}, rng)
    ca.quiesce(a)
    cb.quiesce(b)
    ca.quiesce(a)  # a learns b's latest event time from the shared read model
    docs = [partition_doc(o.pe) for o in (*a.owned.values(), *b.owned.values())]
    assert sorted(d["partition"] for d in docs) == [0, 1, 2, 3]
    assert kpi_view(docs, 4) == expected_view(4)


@pytest.mark.slow
def test_live_view_equals_the_replay_report() -> None:
    """/api/kpis's rows carry the replay report's numbers (provisional resolutions included,
    as a replay settles them at its end)."""
    report = Replay(EngineConfig(), ZoneInfo("UTC"))
    path = _write(day())
    result = report.run([Source(path)])
    view = expected_view(3)
    live = {(r["tenant"], r["channel"], r["queue"]): r["metrics"] for r in view["kpis"]}
    rows = [r for r in result["kpis"] if r["period"] == "total"]
    assert rows
    for r in rows:
        got = live[(r["tenant"], r["channel"], r["queue"])]
        for name in COUNTS:
            if name not in END_ONLY and name not in REPLAY_ONLY:
                assert got[name] == r["metrics"][name], (r["channel"], r["queue"], name)
        for name in DURATIONS:
            assert got[name]["count"] == r["metrics"][name]["count"], name
            if got[name]["count"]:
                assert got[name]["mean"] == pytest.approx(r["metrics"][name]["mean"], abs=1e-3)
        for name in ("service_level", "abandonment_rate", "one_touch_rate", "callback_compliance"):
            want = r["metrics"][name]
            assert (got[name] is None) == (want is None), name
            if want is not None:
                assert got[name] == pytest.approx(want, abs=1e-6), name
    assert live[("*", "*", "*")]["resolved_provisional"] > 0


def _write(lines: tuple[bytes, ...]) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(b"".join(line + b"\n" for line in lines))
    return f.name


def test_checkpoints_are_chunked_and_old_generations_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.kafka.checkpoint as live

    monkeypatch.setattr(live, "CHUNK_BYTES", 4096)
    store = MemoryCheckpoints()
    pe = PartitionEngine(0, EngineConfig(), inputs=None)
    for o, raw in enumerate(day()[:3000]):
        pe.process("log", o, raw)
    live.save_checkpoint(store, pe, "g1")
    chunks_g1 = [k for k in store.data if k.startswith("0/g1/")]
    assert len(chunks_g1) > 3
    for o, raw in enumerate(day()[3000:3100], 3000):
        pe.process("log", o, raw)
    saved = live.save_checkpoint(store, pe, "g2")
    assert saved.previous is not None and saved.previous.generation == "g1"
    assert [k for k in store.data if k.startswith("0/g1/")]  # kept until g2 is durable
    live.drop_generation(store, saved.previous)
    assert not [k for k in store.data if k.startswith("0/g1/")]
    blob = load_checkpoint(store, 0)
    restored = PartitionEngine.from_checkpoint(0, EngineConfig(), blob)
    assert restored.offsets == {"log": 3100}
    assert restored.metrics.counters == pe.metrics.counters
    assert partition_doc(restored) == partition_doc(pe)
    with pytest.raises(ValueError, match="expected partition 1"):
        PartitionEngine.from_checkpoint(1, EngineConfig(), blob)


class FlakyStore(MemoryKpiView):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(self, docs: Mapping[int, bytes]) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        await super().publish(docs)


@pytest.mark.slow
def test_read_model_outage_degrades_health_and_catches_up() -> None:
    data = records_by_tp(day(), 2)
    store, committed, flaky = MemoryCheckpoints(), {}, FlakyStore()
    rt = runtime(store, 2, Shared(flaky))
    consumer = Consumer(data, committed)
    consumer.run(rt, {0, 1}, random.Random(5), stop_after=3000)
    asyncio.run(rt.tick())
    assert rt.views.health()["status"] == "ok"
    flaky.down = True
    consumer.run(rt, {0, 1}, random.Random(6), stop_after=3000)
    asyncio.run(rt.tick())
    health = rt.views.health()
    assert health["status"] == "degraded"
    assert "connection refused" in str(health["read_model"])
    assert rt.registry.get_sample_value("cc_redis_up") == 0
    before = sum(o.pe.processed for o in rt.owned.values())
    consumer.run(rt, {0, 1}, random.Random(7))  # processing goes on while it is down
    assert sum(o.pe.processed for o in rt.owned.values()) > before
    flaky.down = False
    consumer.quiesce(rt)
    assert rt.views.health()["status"] == "ok"
    assert rt.registry.get_sample_value("cc_redis_up") == 1
    docs = [orjson.loads(d) for _, d in sorted(flaky.docs.items())]
    assert kpi_view(docs, 2) == expected_view(2)


def test_pipeline_metrics_and_dead_letters() -> None:
    store = MemoryCheckpoints()
    rt = runtime(store, 1)
    acks: list[int] = []
    good = day()[0]
    outs = [
        rt.on_record(INPUTS[0], 0, 0, good, lambda: acks.append(0), append_ms=999_999_000),
        rt.on_record(INPUTS[0], 0, 1, b"{not json", lambda: acks.append(1)),
        rt.on_record(INPUTS[0], 0, 2, good, lambda: acks.append(2)),
    ]
    assert [o.status for o in outs] == ["accepted", "rejected", "rejected"]
    assert outs[1].reason == "malformed_json" or outs[1].reason.startswith("malformed")
    assert outs[2].reason == "duplicate"
    reg = rt.registry
    etype = orjson.loads(good)["type"]
    assert reg.get_sample_value("cc_events_consumed_total",
                                {"topic": INPUTS[0], "type": etype}) == 2  # fmt: skip
    assert reg.get_sample_value("cc_events_rejected_total", {"reason": "duplicate"}) == 1
    assert reg.get_sample_value("cc_processing_latency_seconds_count") == 1
    rt.checkpoint(0)
    assert sorted(acks) == [0, 1, 2]  # acknowledged once the checkpoint covers them
    # a redelivery of covered records is skipped and acknowledged at once
    again = runtime(store, 1)
    assert again.on_record(INPUTS[0], 0, 1, b"{not json", lambda: acks.append(9)).status == (
        "skipped"
    )
    assert acks[-1] == 9
    labels = {s.labels.get("partition") for f in reg.collect() for s in f.samples
              if s.name.startswith("cc_contacts")}  # fmt: skip
    assert labels <= {"0", None}


def test_real_time_input_the_wall_clock_moves_quiet_partitions() -> None:
    """On real-time input a callback breaches when its deadline passes on the wall clock,
    with no later event; on historical input the wall clock moves nothing."""
    clock = Clock()
    now = clock.t
    rt = LiveRuntime(
        EngineConfig(),
        1,
        MemoryCheckpoints(),
        registry=CollectorRegistry(),
        clock=clock,
        options=LiveOptions(inputs=INPUTS),
    )
    from datetime import UTC, datetime

    def ev(seconds: float, etype: str, **kw: Any) -> bytes:
        ts = datetime.fromtimestamp(now + seconds, UTC).isoformat()
        return orjson.dumps({"event_id": f"e{etype}{seconds}", "type": etype, "ts": ts,
                             "channel": "voice", "contact_id": "c1", "tenant": "t",
                             "queue": "q", **kw})  # fmt: skip

    log = [ev(0, "contact.started", direction="inbound"),
           ev(1, "callback.requested", callback_id="cb1"),
           ev(2, "contact.ended", ended_by="customer")]  # fmt: skip
    for o, raw in enumerate(log):
        assert rt.on_record(INPUTS[0], 0, o, raw, lambda: None).status == "accepted"
    rt.set_caught_up(0, dict.fromkeys(INPUTS, True))

    def breached() -> float:
        value = rt.registry.get_sample_value("cc_callbacks_breached_total",
                                             {"tenant": "t", "channel": "voice", "queue": "q",
                                              "partition": "0"})  # fmt: skip
        return value or 0.0

    clock.t = now + 3600
    asyncio.run(rt.tick())
    assert breached() == 0
    clock.t = now + 86_400 + 120  # a day and the allowed lateness later: the deadline passed
    rt.time.last_record = clock.t  # not idle: the wall clock alone moves the watermark
    asyncio.run(rt.tick())
    assert breached() == 1
    # historical input (event time far behind the wall clock): nothing moves without events
    hist = LiveRuntime(
        EngineConfig(),
        1,
        MemoryCheckpoints(),
        registry=CollectorRegistry(),
        clock=lambda: now + 400 * 86_400,
        options=LiveOptions(inputs=INPUTS),
    )
    for o, raw in enumerate(log):
        hist.on_record(INPUTS[0], 0, o, raw, lambda: None)
    hist.set_caught_up(0, dict.fromkeys(INPUTS, True))
    asyncio.run(hist.tick())
    assert hist.owned[0].pe.engine.watermark < now + 86_400


def test_a_topic_that_starts_empty_does_not_make_its_first_records_late() -> None:
    """The chats topic has nothing yet when the calls topic is read far ahead: its first
    records, appended later, are older than what calls reached, and are not late."""
    data = records_by_tp(day(), 1)
    calls, chats = data[(INPUTS[0], 0)], data[(INPUTS[1], 0)]
    rt = runtime(MemoryCheckpoints(), 1)
    rt.partition(0)
    rt.set_caught_up(0, {INPUTS[0]: False, INPUTS[1]: True, INPUTS[2]: True})  # chats empty
    for o, raw in enumerate(calls[:2000]):
        rt.on_record(INPUTS[0], 0, o, raw, lambda: None)
    outs = [rt.on_record(INPUTS[1], 0, o, raw, lambda: None) for o, raw in enumerate(chats[:50])]
    assert {o.status for o in outs} == {"accepted"}


@pytest.mark.slow
def test_alerts_across_workers_equal_the_replay_and_page_once() -> None:
    """Two workers share the partitions and the store; the one holding the lease evaluates
    the centre's rules. It is killed mid-stream (its lease expires, the other takes over from
    the saved stage; its partitions restart from their checkpoints). The notified alerts equal
    the replay's alerts, each transition notified exactly once."""
    replay = Replay(EngineConfig(), ZoneInfo("UTC"))
    replay.run([Source(_write(day()))])
    expected = [a.to_dict() for a in replay.timeline.alerts()]
    # the incident, and what the agent engines see (shifts, breaks, the simulated shortfall)
    assert {a["rule"] for a in expected} >= {"component_down", "no_agents_available"}
    rng = random.Random(5)
    data = records_by_tp(day(), 4)
    total = sum(len(v) for v in data.values())
    agents = AgentsTopic(data, 4)
    store, committed, shared, sent = MemoryCheckpoints(), {}, Shared(), Notified()

    def worker(name: str) -> LiveRuntime:
        return runtime(store, 4, shared, RulesConfig(), agents=agents, notify=sent, name=name)

    a, b = worker("a"), worker("b")
    ca, cb = Consumer(data, committed), Consumer(data, committed)
    for _ in range(12):
        ca.run(a, {0, 1}, rng, stop_after=total // 48)
        cb.run(b, {2, 3}, rng, stop_after=total // 48)
        asyncio.run(a.tick())
        asyncio.run(b.tick())
        ca.run(a, {0, 1}, rng, topics=(TOPICS.agents,))  # facts and marks keep up
        cb.run(b, {2, 3}, rng, topics=(TOPICS.agents,))
    assert a.leader.stage is not None and b.leader.stage is None  # a leads
    evaluated = a.leader.evaluated_to
    assert evaluated is not None  # the centre's rules evaluated mid-stream
    # kill a: no last checkpoint, no stage save beyond its last tick; the lease runs out
    shared.alerts.expire_lease()
    before = len(sent.events)
    a = worker("a2")
    ca = Consumer(data, committed)
    asyncio.run(b.tick())
    assert b.leader.stage is not None and b.leader.stage.evaluated_to is not None
    assert b.leader.stage.evaluated_to >= evaluated  # went on from the saved stage
    ca.run(a, {0, 1}, rng)
    cb.run(b, {2, 3}, rng)
    for _ in range(3):
        ca.quiesce(a)
        cb.quiesce(b)
    got: dict[tuple[str, float], dict[str, Any]] = {}
    for ev in sent.events:
        got[(ev.alert.fingerprint, ev.alert.starts_at)] = ev.alert.to_dict()
    assert sorted(got.values(), key=lambda x: (x["starts_at"], x["fingerprint"])) == expected
    keys = [(e.alert.fingerprint, e.alert.starts_at, e.status) for e in sent.events]
    assert len(keys) == len(set(keys))  # paged once
    by_b = b.registry.get_sample_value("cc_alert_notifications_total", {"status": "firing"})
    assert by_b == sum(e.status == "firing" for e in sent.events[before:])
    assert b.views.alerts()["evaluating"] is True and a.views.alerts()["evaluating"] is False
    shown = b.views.alerts()
    assert isinstance(shown["evaluated_to"], str)  # RFC 3339, as every /api view
    for alert in shown["firing"]:  # type: ignore[attr-defined]
        assert datetime.fromisoformat(alert["starts_at"]).tzinfo is not None


class SplitBrain(MemoryAlertStore):
    """Every worker believes it holds the lease (one stalled past its lease's expiry while
    another took it), and no worker's stage save is ever read back."""

    async def lead(self, worker: str, ttl: float) -> bool:
        return True

    async def load_stage(self) -> bytes | None:
        return None


@pytest.mark.slow
def test_two_evaluating_workers_still_page_once() -> None:
    replay = Replay(EngineConfig(), ZoneInfo("UTC"))
    replay.run([Source(_write(day()))])
    expected = [a.to_dict() for a in replay.timeline.alerts()]
    rng = random.Random(6)
    data = records_by_tp(day(), 2)
    agents = AgentsTopic(data, 2)
    store, committed, shared, sent = (
        MemoryCheckpoints(),
        {},
        Shared(alerts=SplitBrain()),
        Notified(),
    )
    a, b = (
        runtime(store, 2, shared, RulesConfig(), agents=agents, notify=sent, name=name)
        for name in ("a", "b")
    )
    ca, cb = Consumer(data, committed), Consumer(data, committed)
    ca.run(a, {0}, rng)
    cb.run(b, {1}, rng)
    for _ in range(3):
        ca.quiesce(a)
        cb.quiesce(b)
    assert a.leader.stage is not None and b.leader.stage is not None  # both evaluated everything
    keys = [(e.alert.fingerprint, e.alert.starts_at, e.status) for e in sent.events]
    assert len(keys) == len(set(keys)) == sum(1 + (a["ends_at"] is not None) for a in expected)


class FailingClaims(MemoryAlertStore):
    """The store fails on the first notification claims it sees (Redis down mid-evaluation)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def claim(self, key: str) -> bool:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        return await super().claim(key)


@pytest.mark.slow
def test_a_store_failure_mid_evaluation_loses_no_alert() -> None:
    replay = Replay(EngineConfig(), ZoneInfo("UTC"))
    replay.run([Source(_write(day()))])
    expected = sum(1 + (a.ends_at is not None) for a in replay.timeline.alerts())
    data = records_by_tp(day(), 2)
    store, sent = FailingClaims(failures=3), Notified()
    rt = runtime(
        MemoryCheckpoints(),
        2,
        Shared(alerts=store),
        RulesConfig(),
        agents=AgentsTopic(data, 2),
        notify=sent,
    )
    consumer = Consumer(data, {})
    consumer.run(rt, {0, 1}, random.Random(8))
    for _ in range(5):
        consumer.quiesce(rt)
    assert store.failures == 0  # the failures happened
    keys = [(e.alert.fingerprint, e.alert.starts_at, e.status) for e in sent.events]
    assert len(keys) == len(set(keys)) == expected


@pytest.mark.slow
def test_a_log_that_lost_records_is_detected_said_and_continued() -> None:
    """The broker lost the end of a partition and the lost part is produced again: the worker
    notices the log ends before its checkpoint, continues from the log's end (it would
    otherwise skip the new records as processed), and /health and a metric say so."""
    data = records_by_tp(day(), 1)
    store, committed = MemoryCheckpoints(), {}
    rt = runtime(store, 1)
    consumer = Consumer(data, committed)
    consumer.run(rt, {0}, random.Random(3))
    consumer.quiesce(rt)
    rt.broker.answered(3)
    assert rt.views.health()["status"] == "ok" and rt.views.health()["problems"] == []
    topic = INPUTS[0]
    done = rt.owned[0].pe.offsets[topic]
    assert done > 10
    rt.report_lag(topic, 0, 10)  # the broker came back with only 10 records of this log
    health = rt.views.health()
    assert health["status"] == "degraded"
    assert f"the log ends at offset 10, the checkpoint covers up to {done}" in str(health)
    assert rt.owned[0].pe.offsets[topic] == 10
    assert (
        rt.registry.get_sample_value("cc_input_log_lost_total", {"topic": topic, "partition": "0"})
        == 1
    )
    # a record written at offset 10 after the loss is processed, not skipped as seen
    fresh = orjson.loads(data[(topic, 0)][-1])
    fresh["event_id"] = "after-the-loss"
    out = rt.on_record(topic, 0, 10, orjson.dumps(fresh), lambda: None)
    assert out.status in ("accepted", "rejected") and out.status != "skipped"


def test_health_says_when_the_broker_or_the_assignment_is_missing() -> None:
    rt = runtime(MemoryCheckpoints(), 1)
    assert rt.views.health()["status"] == "ok"  # driven without a broker: nothing to say of it
    rt.broker.answered(0)  # the app asked: no input partition assigned
    rt.clock.t += 61  # type: ignore[attr-defined]
    assert any("no input partition" in p for p in rt.views.health()["problems"])  # type: ignore[attr-defined]
    rt.partition(0)
    rt.broker.failed("KafkaConnectionError: unreachable")
    rt.clock.t += 21  # type: ignore[attr-defined]
    problems = rt.views.health()["problems"]
    assert any("broker not answering" in p and "unreachable" in p for p in problems)  # type: ignore[attr-defined]
    rt.broker.answered(3)
    assert rt.views.health()["status"] == "ok"


@pytest.mark.slow
def test_records_on_the_wrong_partition_are_rerouted_to_theirs() -> None:
    """Issue 35: a producer not keyed by case (a null key, or the case's key sent to another
    partition) puts the day's last 40 events on partition 0. The worker does not ingest them
    there but sends each to the partition its case hashes to (header: where it arrived), so
    the KPIs are the replay's; counted, and /health names it."""
    lines = day()
    dec = Decoder()
    times = [dec.decode(raw)[1] for raw in lines]
    last = sorted(range(len(lines)), key=times.__getitem__)[-40:]
    moved = set(last)
    data = records_by_tp(tuple(raw for i, raw in enumerate(lines) if i not in moved), 3)
    wrong = 0
    for i in last:
        rec, _ = dec.decode(lines[i])
        data[(topic_for(orjson.loads(lines[i])["type"], rec.channel, TOPICS), 0)].append(lines[i])
        wrong += partition_of(key_of(rec), 3) != 0
    inputs = InputsTopic(data)
    rt = runtime(MemoryCheckpoints(), 3, forward=inputs)
    consumer = Consumer(data, {})
    consumer.run(rt, {0, 1, 2}, random.Random(5))
    consumer.quiesce(rt)
    counted = sum(rt.registry.get_sample_value("cc_records_rerouted_total", {"topic": t}) or 0
                  for t in INPUTS)  # fmt: skip
    print(f"\n{wrong} of the 40 on the wrong partition; rerouted {counted:.0f}, "
          f"sent {len(inputs.sent)}")  # fmt: skip
    assert 0 < wrong < 40 and counted == wrong and len(inputs.sent) == wrong
    assert all(p != 0 and h[0][0] == "cc-rerouted-from" and h[0][1].startswith(t.encode())
               for t, p, _, h in inputs.sent)  # fmt: skip
    assert view_of(rt) == expected_view(3)
    assert rt.registry.get_sample_value("cc_events_rejected_total", {"reason": "late"}) == 0
    assert all(not o.pe.rerouted for o in rt.owned.values())
    assert any("does not hash to" in p for p in rt.views.problems())


def test_a_rerouted_record_survives_a_restart_and_its_copy_counts_once() -> None:
    """Held in the checkpoint until the broker has the copy; a copy sent twice (a crash
    between the send and the next checkpoint) is a duplicate on its partition."""
    raw = day()[0]
    rec, _ = Decoder().decode(raw)
    right = partition_of(key_of(rec), 3)
    wrong = (right + 1) % 3
    pe = PartitionEngine(wrong, EngineConfig(), route=3)
    out = pe.process("calls", 0, raw)
    assert (out.status, out.reason, out.expected) == ("rerouted", "misrouted", right)
    assert pe.engine.max_ts == -float("inf")  # not ingested here
    again = PartitionEngine.from_checkpoint(wrong, EngineConfig(), pe.checkpoint(), route=3)
    assert again.rerouted == pe.rerouted and again.offsets == {"calls": 1}
    target = PartitionEngine(right, EngineConfig(), route=3)
    assert target.process("calls", 0, raw).status == "accepted"
    assert target.process("calls", 1, raw).reason == "duplicate"
