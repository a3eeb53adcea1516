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
import fcntl
import gzip
import hashlib
import hmac
import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kpis.decode import event_meta
from streams.inputs.lines import filtered, in_time_order, one_line

GENESIS = "0" * 64


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _mac(key: bytes, entry_hash: str) -> str:
    """The seal of a manifest entry: HMAC-SHA256 of its hash with the archive key. Whoever can
    rewrite the archive but has not the key can recompute the chain, not the seals."""
    return hmac.new(key, entry_hash.encode(), hashlib.sha256).hexdigest()


def _close_entry(entry: dict[str, Any], key: bytes | None) -> None:
    entry["hash"] = _entry_hash(entry)
    if key:
        entry["mac"] = _mac(key, entry["hash"])


def _hour(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H")


def event_time(raw: bytes) -> float | None:
    """The event time of a line, if it has a readable, offset-carrying ``ts`` (the decoder's
    own parser: :func:`kpis.decode.event_meta`)."""
    return event_meta(raw)[1]


def read_manifest(root: Path) -> list[dict[str, Any]]:
    path = root / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


HOUR = 3600.0


class ArchiveWriter:
    """One archive: of a file log (``cc-monitor audit archive``), or, with ``by_offset``, of
    one input topic-partition as the live worker consumes it.

    By offset, each record is archived once whatever the redeliveries: the writer knows the
    next offset due from its manifest and open segment, and leaves out anything below it.
    Otherwise a repeated ``event_id`` within the dedupe horizon is left out.
    """

    def __init__(
        self,
        root: Path,
        dedupe: int = 100_000,
        *,
        by_offset: bool = False,
        key: bytes | None = None,
    ) -> None:
        """``key``: seal every manifest entry with it (``worker.archive.key``), so that a
        chain recomputed without it is detected by :func:`verify` given the key."""
        self.root = root
        self.by_offset = by_offset
        self.key = key
        (root / "segments").mkdir(parents=True, exist_ok=True)
        self.manifest = read_manifest(root)
        self._recent: deque[str] = deque(maxlen=dedupe)
        self._recent_set: set[str] = set()
        self._open_path = root / (OPEN_BY_OFFSET if by_offset else OPEN_PLAIN)
        # the open segment: offset runs [start, count], event-time range, end of its hour
        self._runs: list[list[int]] = []
        self._first: float | None = None
        self._last: float | None = None
        self._hour_end: float | None = None
        self._events = 0
        self.next_offset: int | None = _manifest_next_offset(self.manifest)
        self._recover()
        self._open = open(self._open_path, "ab")  # noqa: SIM115 - closed by close()

    def _recover(self) -> None:
        """Seal what a previous (crashed) writer left, dropping a partial last line."""
        if not self._open_path.exists():
            return
        complete = self._open_path.read_bytes().split(b"\n")[:-1]  # a cut line has no newline
        if complete:
            if self.by_offset:
                pairs = [_split_offset(line) for line in complete]
                for offset, _ in pairs:
                    self._run(offset)
                self._seal_lines([raw for _, raw in pairs])
            else:
                self._seal_lines(complete)
        self._open_path.unlink()

    def _run(self, offset: int) -> None:
        runs = self._runs
        if runs and runs[-1][0] + runs[-1][1] == offset:
            runs[-1][1] += 1
        else:
            runs.append([offset, 1])
        self.next_offset = offset + 1

    def append(self, raw: bytes, offset: int | None = None, ts: float | None = None) -> bool:
        """Archive one consumed record (valid or not); False if it is already archived (an
        offset below the next one due, or a recent event_id). ``ts``: its event time if the
        caller has decoded it."""
        if self.by_offset:
            assert offset is not None
            if self.next_offset is not None and offset < self.next_offset:
                return False
            if ts is None:
                ts = event_meta(raw)[1]
        else:
            eid, ts = event_meta(raw)
            if eid is not None:
                if eid in self._recent_set:
                    return False
                self._remember(eid)
        if ts is not None:
            # a new event-time hour seals the segment (late events stay in the current one)
            if self._hour_end is None or ts >= self._hour_end:
                if self._hour_end is not None and self._events:
                    self.seal()
                self._hour_end = (ts // HOUR + 1) * HOUR
            if self._first is None or ts < self._first:
                self._first = ts
            if self._last is None or ts > self._last:
                self._last = ts
        line = one_line(raw.rstrip(b"\n"))
        if self.by_offset:
            assert offset is not None
            self._open.write(b"%d %s\n" % (offset, line))
            self._run(offset)
        else:
            self._open.write(line + b"\n")
            self._open.flush()
        self._events += 1
        return True

    def _remember(self, eid: str) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(eid)
        self._recent_set.add(eid)

    def flush(self, sync: bool = False) -> None:
        """Hand buffered lines to the OS (a killed process loses nothing flushed); ``sync``:
        to the disk (a machine crash neither)."""
        self._open.flush()
        if sync:
            os.fsync(self._open.fileno())

    def seal(self) -> None:
        """Close the current segment: compress it, hash it, chain it into the manifest."""
        self._open.close()
        lines = self._open_path.read_bytes().split(b"\n")[:-1]
        if lines:
            if self.by_offset:
                lines = [_split_offset(line)[1] for line in lines]
            self._seal_lines(lines, tracked=True)
        self._open_path.unlink(missing_ok=True)
        self._open = open(self._open_path, "ab")  # noqa: SIM115 - closed by close()

    def _seal_lines(self, lines: list[bytes], tracked: bool = False) -> None:
        """Seal ``lines`` as the next segment. ``tracked``: the event-time range is the one
        appends tracked (else, recovering, it is read from the lines)."""
        if tracked:
            first, last = self._first, self._last
        else:
            metas = [event_meta(raw) for raw in lines]
            stamps = [ts for _, ts in metas if ts is not None]
            first, last = (min(stamps), max(stamps)) if stamps else (None, None)
            for eid, _ in metas:  # a recovered segment's ids must not be archived again
                if eid is not None and not self.by_offset and eid not in self._recent_set:
                    self._remember(eid)
        seq = len([e for e in self.manifest if "segment" in e]) + 1
        hour = _hour(first) if first is not None else "unknown"
        name = f"{hour}-{seq:06d}.jsonl.gz"
        body = b"".join(raw + b"\n" for raw in lines)
        # mtime=0 and no file name: the same lines give the same compressed bytes
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        tmp = self.root / "segments" / (name + ".tmp")
        tmp.write_bytes(packed)
        os.replace(tmp, self.root / "segments" / name)
        entry: dict[str, Any] = {
            "seq": seq,
            "segment": name,
            "sha256": hashlib.sha256(packed).hexdigest(),
            "events": len(lines),
            "first_ts": first,
            "last_ts": last,
        }
        if self.by_offset:
            entry["offsets"] = self._runs
        entry["prev"] = self.manifest[-1]["hash"] if self.manifest else GENESIS
        _close_entry(entry, self.key)
        self._append_manifest(entry)
        self._runs = []
        self._first = self._last = None
        self._events = 0

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
        _close_entry(entry, self.key)
        self._append_manifest(entry)
        for name in victims:
            (self.root / "segments" / name).unlink(missing_ok=True)
        return victims

    def release(self) -> None:
        """Stop writing without sealing (another owner takes the topic-partition over and
        seals the open segment when it starts)."""
        self._open.flush()
        self._open.close()

    def close(self) -> None:
        self.seal()
        self._open.close()
        self._open_path.unlink(missing_ok=True)


OPEN_PLAIN = "open.jsonl"
#: the open segment of a topic-partition archive: one ``<offset> <record>`` line per record
OPEN_BY_OFFSET = "open.log"


def _split_offset(line: bytes) -> tuple[int, bytes]:
    offset, _, raw = line.partition(b" ")
    return int(offset), raw


def _manifest_next_offset(manifest: list[dict[str, Any]]) -> int | None:
    for entry in reversed(manifest):
        runs = entry.get("offsets")
        if runs:
            return int(runs[-1][0]) + int(runs[-1][1])
    return None


@dataclass
class Problem:
    segment: str
    problem: str

    def __str__(self) -> str:
        return f"{self.segment}: {self.problem}"


def verify(root: Path, key: bytes | None = None) -> list[Problem]:
    """Every problem with an archive: broken chain, missing, altered or unlisted segments; in
    a live archive also topic-partitions missing or unlisted, and offsets not archived. With
    ``key``, every manifest entry must also carry its seal (a chain recomputed by someone
    without the key fails here; without the key, verify proves only self-consistency)."""
    if not (root / TOPICS).is_dir():
        return _verify_one(root, "", key)
    problems: list[Problem] = []
    listed = _index(root)
    present = _sub_dirs(root)
    for topic, partition in sorted(listed | present):
        where = f"{TOPICS}/{topic}/{partition}"
        if (topic, partition) not in present:
            problems.append(Problem(where, "missing (listed in index.jsonl)"))
        elif (topic, partition) not in listed:
            problems.append(Problem(where, "not in index.jsonl"))
        else:
            problems += _verify_one(root / TOPICS / topic / str(partition), where + "/", key)
    return problems


def _verify_one(root: Path, where: str, key: bytes | None = None) -> list[Problem]:
    problems: list[Problem] = []
    manifest_path = root / "manifest.jsonl"
    if not manifest_path.exists():
        return [Problem(where + "manifest.jsonl", "missing")]
    prev = GENESIS
    listed: set[str] = set()
    expired: set[str] = set()
    next_offset: int | None = None
    for line in manifest_path.read_text().splitlines():  # retention is recorded later on
        with contextlib.suppress(json.JSONDecodeError):  # reported in the second pass
            expired.update(json.loads(line).get("expired", []))
    for n, line in enumerate(manifest_path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            problems.append(Problem(f"{where}manifest line {n}", "not JSON"))
            continue
        name = where + (entry.get("segment") or f"manifest line {n}")
        if entry.get("prev") != prev:
            why = "out of order: the chain does not continue here (an entry removed or moved)"
            problems.append(Problem(name, why))
        if _entry_hash(entry) != entry.get("hash"):
            problems.append(Problem(name, "manifest entry altered (its hash does not match)"))
        if key:
            mac = entry.get("mac")
            if not isinstance(mac, str) or not hmac.compare_digest(
                mac, _mac(key, str(entry.get("hash", "")))
            ):
                why = "not sealed with the archive key (the chain was recomputed, or written "
                problems.append(Problem(name, why + "without or with another key)"))
        prev = entry.get("hash", "")
        if "expired" in entry:
            continue
        # offsets of a topic-partition archive: each record once, none left out
        for start, count in entry.get("offsets") or ():
            if next_offset is not None and start > next_offset:
                problems.append(Problem(name, f"offsets {next_offset}-{start - 1} not archived"))
            elif next_offset is not None and start < next_offset:
                problems.append(Problem(name, f"offsets from {start} archived twice"))
            next_offset = start + count
        listed.add(entry["segment"])
        path = root / "segments" / entry["segment"]
        if not path.exists():
            if entry["segment"] not in expired:
                problems.append(Problem(name, "missing"))
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            problems.append(Problem(name, "altered (SHA-256 differs from manifest)"))
    for path in sorted((root / "segments").glob("*.jsonl.gz")):
        if path.name not in listed:
            problems.append(Problem(where + path.name, "not in the manifest"))
    for name in sorted(expired):
        if (root / "segments" / name).exists():
            problems.append(Problem(where + name, "expired by retention but still present"))
    return problems


def archive_lines(
    root: Path, start: float | None = None, end: float | None = None
) -> Iterator[bytes]:
    """The archived events in ``[start, end)`` (lines without a readable time are kept).

    A file archive: its sealed segments, in archive order. A live archive: each
    topic-partition's sealed segments and the complete lines of its open one, merged by event
    time as :func:`streams.kafka.settings.read_range` merges the topics' partitions, so the two give
    the same replay."""
    if not (root / TOPICS).is_dir():
        return filtered(_segment_lines(root, start, end), start, end)
    streams = [_segment_lines(sub, start, end, open_too=True) for _, _, sub in sub_archives(root)]
    return in_time_order(streams, start, end)


def _segment_lines(
    root: Path, start: float | None, end: float | None, open_too: bool = False
) -> Iterator[bytes]:
    """Lines of the sealed segments that may hold events in ``[start, end)``, in archive order
    (and, ``open_too``, the complete lines of the open segment of a topic-partition archive)."""
    for _, raw in _records(root, start, end, open_too):
        yield raw


def _records(
    root: Path, start: float | None = None, end: float | None = None, open_too: bool = True
) -> Iterator[tuple[int | None, bytes]]:
    manifest = read_manifest(root)
    expired = {s for e in manifest if "expired" in e for s in e["expired"]}
    for entry in manifest:
        if "segment" not in entry or entry["segment"] in expired:
            continue
        first, last = entry["first_ts"], entry["last_ts"]
        if first is not None and ((end is not None and first >= end)
                                  or (start is not None and last < start)):  # fmt: skip
            continue
        offsets = (o for a, n in entry.get("offsets") or () for o in range(a, a + n))
        with gzip.open(root / "segments" / entry["segment"], "rb") as f:
            for raw in f:
                yield next(offsets, None), raw.rstrip(b"\n")
    path = root / OPEN_BY_OFFSET
    if open_too and path.exists():
        for line in path.read_bytes().split(b"\n")[:-1]:  # the last one may be cut
            offset, raw = _split_offset(line)
            yield offset, raw


def archived_records(root: Path, topic: str, partition: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, record)`` of one topic-partition of a live archive, in offset order."""
    for offset, raw in _records(root / TOPICS / topic / str(partition)):
        if offset is not None:
            yield offset, raw


# --- the live archive: one topic-partition archive per input topic-partition -----------------

TOPICS = "topics"
INDEX = "index.jsonl"


def _index(root: Path) -> set[tuple[str, int]]:
    path = root / INDEX
    if not path.exists():
        return set()
    out: set[tuple[str, int]] = set()
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError, ValueError):
            d = json.loads(line)
            out.add((str(d["topic"]), int(d["partition"])))
    return out


def _sub_dirs(root: Path) -> set[tuple[str, int]]:
    return {
        (t.name, int(p.name))
        for t in (root / TOPICS).iterdir() if t.is_dir()
        for p in t.iterdir() if p.is_dir() and p.name.isdigit()
    }  # fmt: skip


def sub_archives(root: Path) -> list[tuple[str, int, Path]]:
    """The topic-partition archives of a live archive, by (topic, partition)."""
    return [(t, p, root / TOPICS / t / str(p)) for t, p in sorted(_index(root) | _sub_dirs(root))
            if (root / TOPICS / t / str(p)).is_dir()]  # fmt: skip


class LiveArchive:
    """What a live worker archives: ``<root>/topics/<topic>/<partition>/``, one
    :class:`ArchiveWriter` by offset per input topic-partition it owns, and ``index.jsonl``
    naming every topic-partition archive ever started (so a deleted one is noticed).

    Single writer: a topic-partition archive is written under an exclusive lock
    (``flock`` on its ``.lock``), taken when the worker first gets one of its records and
    released when the partition is revoked; a killed process's lock goes with it. The
    directory must be shared by the workers (partitions move between them).
    """

    def __init__(self, root: Path, key: bytes | None = None) -> None:
        self.root = root
        self.key = key
        (root / TOPICS).mkdir(parents=True, exist_ok=True)
        self.writers: dict[tuple[str, int], ArchiveWriter] = {}
        self._locks: dict[tuple[str, int], int] = {}
        self._listed = _index(root)

    def ready(self, topic: str, partition: int) -> bool:
        """Whether records of this topic-partition can be archived now (its lock taken)."""
        key = (topic, partition)
        if key in self.writers:
            return True
        path = self.root / TOPICS / topic / str(partition)
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            if key not in self._listed:
                with open(self.root / INDEX, "ab") as f:  # O_APPEND: one small write, atomic
                    f.write(orjson.dumps({"topic": topic, "partition": partition}) + b"\n")
                self._listed.add(key)
            self.writers[key] = ArchiveWriter(path, by_offset=True, key=self.key)
        except OSError:  # storage failing: let go, so that a later attempt can take it again
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._locks[key] = fd
        return True

    def append(self, topic: str, partition: int, offset: int, raw: bytes, ts: float | None) -> bool:
        """Archive a record (after :meth:`ready`); False if it is archived already."""
        return self.writers[(topic, partition)].append(raw, offset, ts)

    def flush(self, partition: int | None = None, sync: bool = False) -> None:
        for (_, p), w in self.writers.items():
            if partition is None or p == partition:
                w.flush(sync)

    def release(self, partition: int) -> None:
        """The partition moves to another worker: hand its archives over, unsealed."""
        for key in [k for k in self.writers if k[1] == partition]:
            try:
                self.writers.pop(key).release()
            finally:  # even when the storage fails: the lock goes, the next owner recovers
                fd = self._locks.pop(key)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def expire(self, before_ts: float) -> list[str]:
        """Retention over the topic-partitions this worker writes."""
        return [f"{t}/{p}/{name}" for (t, p), w in sorted(self.writers.items())
                for name in w.expire(before_ts)]  # fmt: skip

    def close(self) -> None:
        for p in sorted({p for _, p in self.writers}):
            self.release(p)
