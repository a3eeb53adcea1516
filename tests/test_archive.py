"""The event archive: chained segments, tamper detection, crash recovery, ranges, retention."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from cc_monitor.cli import main
from cc_monitor.simulator import SimConfig, simulate
from kpis.config import EngineConfig
from streams.archive import ArchiveWriter, read_manifest, verify
from streams.replay import Replay, Source
from tests.helpers import without_input


@lru_cache(maxsize=1)
def day() -> tuple[bytes, ...]:
    return tuple(orjson.dumps(e) for e in simulate(SimConfig(contacts_per_day=600)))


def archived(root: Path, lines: Any) -> Path:
    w = ArchiveWriter(root)
    for line in lines:
        w.append(line)
    w.close()
    return root


def report(path: Path, start: float | None = None, end: float | None = None) -> dict[str, Any]:
    rep = Replay(EngineConfig(), ZoneInfo("UTC")).run([Source(str(path), start, end)])
    return without_input(rep)


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
