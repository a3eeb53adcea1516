"""The event archive: chained segments, tamper detection, crash recovery, ranges, retention."""

from __future__ import annotations

import errno
import os
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from prometheus_client import CollectorRegistry

from cc_monitor.cli import main
from kpis.config import EngineConfig
from streams.audit.archive import (
    ArchiveWriter,
    LiveArchive,
    archived_records,
    read_manifest,
    sub_archives,
    verify,
)
from streams.kafka.checkpoint import MemoryCheckpoints
from streams.kafka.worker import LiveOptions, LiveRuntime
from streams.partitioned import partition_doc, replay_partitioned
from streams.replay import Replay, Source
from streams.sinks.readmodel import kpi_view
from tests.builders import day, kill
from tests.fakes import INPUTS, Clock, Consumer, records_by_tp
from tests.helpers import without_input


def archived(root: Path, lines: Any) -> Path:
    w = ArchiveWriter(root)
    for line in lines:
        w.append(line)
    w.close()
    return root


def report(path: Path, start: float | None = None, end: float | None = None) -> dict[str, Any]:
    rep = Replay(EngineConfig(), ZoneInfo("UTC")).run([Source(str(path), start, end)])
    return without_input(rep)


@pytest.mark.slow
def test_an_archive_verifies_and_replays_like_its_source(tmp_path: Path) -> None:
    root = archived(tmp_path / "a", day())
    entries = [e for e in read_manifest(root) if "segment" in e]
    assert len(entries) > 20  # hourly segments over the day and its tail
    assert sum(e["events"] for e in entries) == len(day())
    assert verify(root) == []
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in day()))
    assert report(root) == report(log)


def problems(root: Path) -> list[str]:
    return [str(p) for p in verify(root)]


def test_tampering_deleting_swapping_and_reordering_are_detected(tmp_path: Path) -> None:
    root = archived(tmp_path / "a", day())
    segs = sorted((root / "segments").iterdir())
    a, b, c = segs[3], segs[4], segs[5]

    data = bytearray(a.read_bytes())  # one byte
    data[len(data) // 2] ^= 0x01
    original = a.read_bytes()
    a.write_bytes(bytes(data))
    assert problems(root) == [f"{a.name}: altered (SHA-256 differs from manifest)"]
    a.write_bytes(original)

    moved = b.read_bytes()  # deleted
    b.unlink()
    assert problems(root) == [f"{b.name}: missing"]
    b.write_bytes(moved)

    ca, cc = b.read_bytes(), c.read_bytes()  # two swapped
    b.write_bytes(cc)
    c.write_bytes(ca)
    assert sorted(problems(root)) == sorted(
        [f"{b.name}: altered (SHA-256 differs from manifest)",
         f"{c.name}: altered (SHA-256 differs from manifest)"]
    )  # fmt: skip
    b.write_bytes(ca)
    c.write_bytes(cc)

    manifest = root / "manifest.jsonl"  # two entries reordered
    lines = manifest.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    manifest.write_text("\n".join(lines) + "\n")
    assert any("out of order" in p for p in problems(root))
    lines[3], lines[4] = lines[4], lines[3]
    manifest.write_text("\n".join(lines) + "\n")

    (root / "segments" / "20991231T23-999999.jsonl.gz").write_bytes(b"x")  # smuggled in
    assert problems(root) == ["20991231T23-999999.jsonl.gz: not in the manifest"]
    (root / "segments" / "20991231T23-999999.jsonl.gz").unlink()
    assert verify(root) == []


@pytest.mark.slow
def test_a_writer_killed_mid_segment_loses_nothing_and_archives_no_duplicate(
    tmp_path: Path,
) -> None:
    lines = list(day())
    root = tmp_path / "a"
    cut = len(lines) // 2
    first = ArchiveWriter(root)
    for line in lines[:cut]:
        first.append(line)
    # kill -9: no close; the last write was cut half way
    first._open.write(lines[cut][: len(lines[cut]) // 2])
    first._open.flush()
    del first
    second = ArchiveWriter(root)  # recovers open.jsonl, dropping the partial line
    for line in lines[cut - 200 :]:  # at-least-once: redelivered from the last commit
        second.append(line)
    second.close()
    assert verify(root) == []
    assert sum(e["events"] for e in read_manifest(root) if "segment" in e) == len(lines)
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    assert report(root) == report(log)


def test_range_replay_and_retention(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = archived(tmp_path / "a", day())
    start = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()
    end = datetime(2026, 11, 2, 12, tzinfo=UTC).timestamp()
    in_range = []
    for line in day():
        ts = datetime.fromisoformat(orjson.loads(line)["ts"]).timestamp()
        if start <= ts < end:
            in_range.append(line)
    log = tmp_path / "range.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in in_range))
    assert report(root, start, end) == report(log)

    assert main(["replay", str(root), "--from", "2026-11-02T09:00:00+00:00",
                 "--to", "2026-11-02T12:00:00Z", "--json", "-", "--quiet"]) == 0  # fmt: skip
    assert orjson.loads(capsys.readouterr().out)["events"]["accepted"] == len(in_range)

    w = ArchiveWriter(root)
    gone = w.expire(start)
    w.close()
    assert gone and verify(root) == []  # retention is recorded in the chain
    assert main(["audit", "verify", str(root)]) == 0
    assert all(not (root / "segments" / name).exists() for name in gone)


def test_audit_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in day()[:2000]) + day()[0] + b"\n")
    root = tmp_path / "arch"
    assert main(["audit", "archive", str(log), "--into", str(root)]) == 0
    assert "1 repeated ids left out" in capsys.readouterr().out
    assert main(["audit", "verify", str(root)]) == 0
    seg = sorted((root / "segments").iterdir())[0]
    seg.write_bytes(seg.read_bytes() + b"\0")
    assert main(["audit", "verify", str(root)]) == 1
    assert f"{seg.name}: altered" in capsys.readouterr().err


# --- the live archive: what the workers write ---------------------------------------------------


def live_runtime(root: Path, store: MemoryCheckpoints) -> LiveRuntime:
    return LiveRuntime(
        EngineConfig(),
        3,
        store,
        registry=CollectorRegistry(),
        clock=Clock(),
        archive=LiveArchive(root),
        options=LiveOptions(inputs=INPUTS, checkpoint_interval=0.05),
    )


@pytest.mark.parametrize("seed", [5, 6])
@pytest.mark.slow
def test_a_worker_killed_mid_segment_leaves_an_archive_that_replays_like_the_log(
    seed: int, tmp_path: Path
) -> None:
    """The worker archives what it consumes, by topic-partition; killed (buffers lost, a line
    cut half way) four times and restarted from its checkpoints, with the records it had not
    acknowledged delivered again: every record is archived exactly once, the chain verifies,
    and the archive's replay equals the original log's."""
    rng = random.Random(seed)
    lines = day()
    data = records_by_tp(lines, 3)
    root = tmp_path / "archive"
    store, committed = MemoryCheckpoints(), {}
    redelivered = 0
    for i in range(4):
        rt = live_runtime(root, store)
        consumer = Consumer(data, committed)
        before = sum(committed.values())
        n = consumer.run(rt, {0, 1, 2}, rng, stop_after=rng.randint(500, len(lines) // 3))
        redelivered += max(0, before + n - sum(committed.values()))
        assert rt.archive is not None
        kill(rt.archive, cut=b'%d {"type": "contact.st' % (10**9 + i))
    rt = live_runtime(root, store)
    consumer = Consumer(data, committed)
    consumer.run(rt, {0, 1, 2}, rng)
    assert rt.archive is not None
    rt.archive.flush()  # a live archive is read with its open segments
    assert redelivered > 0
    assert verify(root) == []
    for (topic, p), records in data.items():
        assert [raw for _, raw in archived_records(root, topic, p)] == records
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    assert report(root) == report(log)
    rt.close()  # released, unsealed: the next owner seals the open segments
    for _, _, sub in sub_archives(root):
        ArchiveWriter(sub, by_offset=True).close()
    assert verify(root) == [] and report(root) == report(log)


def test_a_topic_partition_archive_has_one_writer(tmp_path: Path) -> None:
    """A worker that got a partition waits while its previous owner still writes its archive:
    its records are not processed (it seeks back to the first one held back)."""
    a, b = LiveArchive(tmp_path), LiveArchive(tmp_path)
    assert a.ready("calls", 0)
    assert not b.ready("calls", 0) and b.ready("calls", 1)
    rt = LiveRuntime(
        EngineConfig(),
        3,
        MemoryCheckpoints(),
        archive=b,
        registry=CollectorRegistry(),
        clock=Clock(),
        options=LiveOptions(inputs=INPUTS),
    )
    line = day()[0]
    assert rt.on_record("calls", 0, 7, line, lambda: None).expected == 7
    assert rt.on_record("calls", 0, 8, line, lambda: None).expected == 7  # seek to the first
    assert not rt.owned  # nothing processed
    a.release(0)
    assert rt.on_record("calls", 0, 7, line, lambda: None).status == "accepted"
    assert [o for o, _ in archived_records(tmp_path, "calls", 0)] == []  # buffered
    b.flush()
    assert [o for o, _ in archived_records(tmp_path, "calls", 0)] == [7]


def test_a_live_archive_names_a_missing_topic_partition_segment_and_offsets(
    tmp_path: Path,
) -> None:
    lines = day()
    archive = LiveArchive(tmp_path)
    for (topic, p), records in sorted(records_by_tp(lines, 2).items()):
        assert archive.ready(topic, p)
        skip = 100 if (topic, p) == (INPUTS[0], 1) else -1
        for offset, raw in enumerate(records):
            if offset != skip:  # a record the worker never archived
                archive.append(topic, p, offset, raw, None)
    for w in archive.writers.values():
        w.close()
    assert archive.writers[(INPUTS[0], 0)].append(lines[0], 5, None) is False  # archived once
    found = problems(tmp_path)
    assert found == [f"topics/{INPUTS[0]}/1/" + found[0].split("/", 3)[3]]
    assert found[0].endswith("offsets 100-100 not archived")
    sub = tmp_path / "topics" / INPUTS[1] / "0"
    victim = sorted((sub / "segments").iterdir())[2]
    victim.unlink()
    assert f"topics/{INPUTS[1]}/0/{victim.name}: missing" in problems(tmp_path)
    shutil.rmtree(tmp_path / "topics" / INPUTS[2] / "1")
    assert f"topics/{INPUTS[2]}/1: missing (listed in index.jsonl)" in problems(tmp_path)


class FailingDisk(LiveArchive):
    """A live archive whose storage fails at chosen appends: what was buffered for that
    partition since its last flush is lost, and the append raises (ENOSPC)."""

    def __init__(self, root: Path, fail_at: set[int]) -> None:
        super().__init__(root)
        self.calls = 0
        self.fail_at = fail_at

    def append(self, topic: str, partition: int, offset: int, raw: bytes, ts: float | None) -> bool:
        self.calls += 1
        if self.calls in self.fail_at:
            for (_, p), w in self.writers.items():
                if p == partition:
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, w._open.fileno())
                    os.close(devnull)
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().append(topic, partition, offset, raw, ts)


@pytest.mark.slow
def test_an_archive_write_failure_sends_the_partition_back_to_its_checkpoint(
    tmp_path: Path,
) -> None:
    """The disk fills up twice mid-stream: the worker does not crash, says so on /health, goes
    back to the partition's last checkpoint and, once the archive takes records again, ends
    with every record archived exactly once and the replay's KPIs."""
    lines = day()
    data = records_by_tp(lines, 3)
    root = tmp_path / "archive"
    archive = FailingDisk(root, {700, 2500})
    rt = LiveRuntime(
        EngineConfig(),
        3,
        MemoryCheckpoints(),
        archive=archive,
        registry=CollectorRegistry(),
        clock=Clock(),
        options=LiveOptions(inputs=INPUTS, checkpoint_interval=0.05),
    )
    consumer = Consumer(data, {})
    pos = dict.fromkeys(data, 0)
    rng = random.Random(4)
    gaps, degraded = 0, False
    while live := [tp for tp, o in pos.items() if o < len(data[tp])]:
        tp = rng.choice(live)
        for _ in range(rng.randint(1, 100)):
            o = pos[tp]
            if o >= len(data[tp]):
                break
            out = rt.on_record(tp[0], tp[1], o, data[tp][o], consumer.ack(tp, o))
            if out.status == "gap":  # the caller seeks back
                gaps += 1
                degraded = degraded or rt.views.health()["status"] == "degraded"
                pos[tp] = out.expected
                break
            pos[tp] = o + 1
    assert archive.calls > 2500 and gaps > 2 and degraded
    consumer.quiesce(rt)
    assert rt.views.health()["status"] == "ok"  # a checkpoint wrote the archive again
    archive.flush()
    for (topic, p), records in data.items():
        assert [raw for _, raw in archived_records(root, topic, p)] == records, (topic, p)
    assert verify(root) == []
    engines = replay_partitioned(lines, 3, EngineConfig())
    want = kpi_view([partition_doc(pe) for pe in engines.values()], 3)
    assert kpi_view([partition_doc(o.pe) for o in rt.owned.values()], 3) == want


def test_a_recomputed_chain_passes_alone_and_fails_the_key(tmp_path: Path) -> None:
    """Someone who can rewrite the archive edits a segment and recomputes the chain: the
    unkeyed check cannot tell (what docs/audit.md says it proves), the archive key can."""
    import gzip
    import hashlib

    from streams.audit.archive import _entry_hash

    key = b"archive-key"
    root = tmp_path / "a"
    w = ArchiveWriter(root, key=key)
    for line in day():
        w.append(line)
    w.close()
    assert verify(root) == [] and verify(root, key) == []
    assert verify(root, b"another key") != []
    # the forgery: one event dropped from a segment, its entry and every later hash recomputed
    manifest = read_manifest(root)
    first = next(e for e in manifest if "segment" in e)
    seg = root / "segments" / first["segment"]
    lines = gzip.decompress(seg.read_bytes()).split(b"\n")
    packed = gzip.compress(b"\n".join(lines[1:]), mtime=0)
    seg.write_bytes(packed)
    first["sha256"] = hashlib.sha256(packed).hexdigest()
    first["events"] -= 1
    prev = "0" * 64
    for entry in manifest:
        entry["prev"] = prev
        entry["hash"] = prev = _entry_hash(entry)
    (root / "manifest.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in manifest))
    assert verify(root) == []  # self-consistent again
    sealed = [str(p) for p in verify(root, key)]
    assert sealed and all("not sealed with the archive key" in p for p in sealed)
