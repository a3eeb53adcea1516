"""The event archive: every consumed event, valid or not, in append-only compressed segments
whose SHA-256s are chained in a manifest, so that a missing, altered or reordered segment is
detected (``cc-monitor audit verify``).

Layout of an archive directory:

* ``segments/<first event hour>-<seq>.jsonl.gz``: sealed segments, lines in consumption order;
* ``open.jsonl``: the segment being written (plain, flushed per append, so a crash loses at
  most a partial last line, which recovery drops);
* ``manifest.jsonl``: one entry per sealed segment, ``{"seq", "segment", "sha256", "events",
  "first_ts", "last_ts", "prev", "hash"}``, where ``hash`` is the SHA-256 of the entry's other
  fields including ``prev`` (the previous entry's ``hash``): a chain. Retention appends an
  entry ``{"expired": [...]}`` to the chain instead of silently removing files.

A segment is sealed when the event-time hour of the archive's latest event changes, or on
:meth:`ArchiveWriter.close`. Invariants: a sealed segment is never rewritten; an event is in
exactly one segment; a restarted writer first seals what the previous one left in
``open.jsonl``; a repeated ``event_id`` within the dedupe horizon is not archived twice (the
redelivery of at-least-once consumption), so a replay of the archive equals one of the source.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

GENESIS = "0" * 64


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _hour(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H")


def _event_meta(raw: bytes) -> tuple[str | None, float | None]:
    """(event_id, event time) of a line if it is readable enough to have them."""
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(d, dict):
        return None, None
    eid = d.get("event_id") if isinstance(d.get("event_id"), str) else None
    ts: float | None = None
    if isinstance(d.get("ts"), str):
        try:
            dt = datetime.fromisoformat(d["ts"])
            ts = dt.timestamp() if dt.tzinfo is not None else None
        except ValueError:
            ts = None
    return eid, ts


def read_manifest(root: Path) -> list[dict[str, Any]]:
    path = root / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ArchiveWriter:
    def __init__(self, root: Path, dedupe: int = 100_000) -> None:
        self.root = root
        (root / "segments").mkdir(parents=True, exist_ok=True)
        self.manifest = read_manifest(root)
        self._recent: deque[str] = deque(maxlen=dedupe)
        self._recent_set: set[str] = set()
        self._hour: str | None = None
        self._max_ts: float | None = None
        self._open_path = root / "open.jsonl"
        self._recover()
        self._open = open(self._open_path, "ab")  # noqa: SIM115 - closed by close()
        self._events = 0
        self._first: float | None = None
        self._last: float | None = None

    def _recover(self) -> None:
        """Seal what a previous (crashed) writer left, dropping a partial last line."""
        if not self._open_path.exists():
            return
        data = self._open_path.read_bytes()
        lines = data.split(b"\n")
        complete = lines[:-1]  # a line without its newline was cut by the crash
        if complete:
            self._seal_lines(complete)
        self._open_path.unlink()

    def append(self, raw: bytes) -> bool:
        """Archive one consumed line (valid or not). False if it repeats a recent event_id."""
        eid, ts = _event_meta(raw)
        if eid is not None:
            if eid in self._recent_set:
                return False
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(eid)
            self._recent_set.add(eid)
        if ts is not None and (self._max_ts is None or ts > self._max_ts):
            self._max_ts = ts
            hour = _hour(ts)
            if self._hour is not None and hour != self._hour and self._events:
                self.seal()
            self._hour = hour
        self._open.write(raw.rstrip(b"\n") + b"\n")
        self._open.flush()
        self._events += 1
        return True

    def seal(self) -> None:
        """Close the current segment: compress it, hash it, chain it into the manifest."""
        self._open.close()
        lines = self._open_path.read_bytes().split(b"\n")[:-1]
        if lines:
            self._seal_lines(lines)
        self._open_path.unlink(missing_ok=True)
        self._open = open(self._open_path, "ab")  # noqa: SIM115 - closed by close()
        self._events = 0

    def _seal_lines(self, lines: list[bytes]) -> None:
        stamps = [ts for ts in (_event_meta(raw)[1] for raw in lines) if ts is not None]
        for raw in lines:  # a recovered segment's ids must not be archived again
            eid = _event_meta(raw)[0]
            if eid is not None and eid not in self._recent_set:
                self._recent.append(eid)
                self._recent_set.add(eid)
        seq = len([e for e in self.manifest if "segment" in e]) + 1
        hour = _hour(min(stamps)) if stamps else "unknown"
        name = f"{hour}-{seq:06d}.jsonl.gz"
        body = b"".join(raw + b"\n" for raw in lines)
        # mtime=0 and no file name: the same lines give the same compressed bytes
        packed = gzip.compress(body, mtime=0)
        tmp = self.root / "segments" / (name + ".tmp")
        tmp.write_bytes(packed)
        os.replace(tmp, self.root / "segments" / name)
        entry: dict[str, Any] = {
            "seq": seq,
            "segment": name,
            "sha256": hashlib.sha256(packed).hexdigest(),
            "events": len(lines),
            "first_ts": min(stamps) if stamps else None,
            "last_ts": max(stamps) if stamps else None,
            "prev": self.manifest[-1]["hash"] if self.manifest else GENESIS,
        }
        entry["hash"] = _entry_hash(entry)
        self._append_manifest(entry)

    def _append_manifest(self, entry: dict[str, Any]) -> None:
        with open(self.root / "manifest.jsonl", "ab") as f:
            f.write(orjson.dumps(entry) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self.manifest.append(entry)

    def expire(self, before_ts: float) -> list[str]:
        """Retention: delete sealed segments whose last event is before ``before_ts``,
        recording it in the chain."""
        expired_already = {s for e in self.manifest if "expired" in e for s in e["expired"]}
        victims = [
            e["segment"] for e in self.manifest
            if "segment" in e and e["segment"] not in expired_already
            and e["last_ts"] is not None and e["last_ts"] < before_ts
        ]  # fmt: skip
        if not victims:
            return []
        entry: dict[str, Any] = {"expired": victims, "before_ts": before_ts,
                                 "prev": self.manifest[-1]["hash"]}  # fmt: skip
        entry["hash"] = _entry_hash(entry)
        self._append_manifest(entry)
        for name in victims:
            (self.root / "segments" / name).unlink(missing_ok=True)
        return victims

    def close(self) -> None:
        self.seal()
        self._open.close()
        self._open_path.unlink(missing_ok=True)


@dataclass
class Problem:
    segment: str
    problem: str

    def __str__(self) -> str:
        return f"{self.segment}: {self.problem}"


def verify(root: Path) -> list[Problem]:
    """Every problem with an archive: broken chain, missing, altered or unlisted segments."""
    problems: list[Problem] = []
    manifest_path = root / "manifest.jsonl"
    if not manifest_path.exists():
        return [Problem("manifest.jsonl", "missing")]
    prev = GENESIS
    listed: set[str] = set()
    expired: set[str] = set()
    for line in manifest_path.read_text().splitlines():  # retention is recorded later on
        with contextlib.suppress(json.JSONDecodeError):  # reported in the second pass
            expired.update(json.loads(line).get("expired", []))
    for n, line in enumerate(manifest_path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            problems.append(Problem(f"manifest line {n}", "not JSON"))
            continue
        name = entry.get("segment") or f"manifest line {n}"
        if entry.get("prev") != prev:
            why = "out of order: the chain does not continue here (an entry removed or moved)"
            problems.append(Problem(name, why))
        if _entry_hash(entry) != entry.get("hash"):
            problems.append(Problem(name, "manifest entry altered (its hash does not match)"))
        prev = entry.get("hash", "")
        if "expired" in entry:
            continue
        listed.add(entry["segment"])
        path = root / "segments" / entry["segment"]
        if not path.exists():
            if entry["segment"] not in expired:
                problems.append(Problem(entry["segment"], "missing"))
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            problems.append(Problem(entry["segment"], "altered (SHA-256 differs from manifest)"))
    for path in sorted((root / "segments").glob("*.jsonl.gz")):
        if path.name not in listed:
            problems.append(Problem(path.name, "not in the manifest"))
    for name in sorted(expired):
        if (root / "segments" / name).exists():
            problems.append(Problem(name, "expired by retention but still present"))
    return problems


def archive_lines(
    root: Path, start: float | None = None, end: float | None = None
) -> Iterator[bytes]:
    """Lines of the sealed segments that may hold events in ``[start, end)``, in archive order;
    lines outside the range are left out (lines without a readable time are kept)."""
    expired = {s for e in read_manifest(root) if "expired" in e for s in e["expired"]}
    for entry in read_manifest(root):
        if "segment" not in entry or entry["segment"] in expired:
            continue
        first, last = entry["first_ts"], entry["last_ts"]
        if first is not None and ((end is not None and first >= end)
                                  or (start is not None and last < start)):  # fmt: skip
            continue
        with gzip.open(root / "segments" / entry["segment"], "rb") as f:
            for raw in f:
                line = raw.rstrip(b"\n")
                if start is not None or end is not None:
                    _, ts = _event_meta(line)
                    if ts is not None and (
                        (start is not None and ts < start) or (end is not None and ts >= end)
                    ):
                        continue
                yield line


class LineStream:
    """A read()-able stream over lines (for the replay driver's chunked reader)."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        parts = [self._buf]
        size = len(self._buf)
        for line in self._lines:
            parts.append(line + b"\n")
            size += len(line) + 1
            if 0 <= n <= size:
                break
        data = b"".join(parts)
        if n < 0:
            self._buf = b""
            return data
        self._buf = data[n:]
        return data[:n]

    def close(self) -> None:
        return None
