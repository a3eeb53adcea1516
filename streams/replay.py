"""Replay driver: reads event logs (JSON Lines, gzip, stdin), feeds the engine, builds the report.

The same :class:`kpis.engine.Engine` runs here as in the live workers; only the source (files)
and the sink (:class:`kpis.report.ReportSink`) differ.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import IO, Any

from kpis.config import EngineConfig
from kpis.decode import FAST_DECODE, NOT_FAST, REJECT_REASONS, Decoder, Rejection, iso
from kpis.engine import Engine
from kpis.events import SCHEMA_VERSION
from kpis.report import ReportSink, build_sections
from kpis.wire import Rec

REPORT_VERSION = 1
CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Source:
    """One input: a file path (plain or gzip, detected by content) or ``-`` for standard input."""

    name: str

    def open(self) -> tuple[IO[bytes], int | None]:
        """The decompressed byte stream and, for a plain file, its size (for progress)."""
        if self.name == "-":
            raw: IO[bytes] = sys.stdin.buffer
            size = None
        else:
            raw = open(self.name, "rb")  # noqa: SIM115 - closed by the caller
            size = os.fstat(raw.fileno()).st_size
        head = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
        if head == GZIP_MAGIC:
            return gzip.GzipFile(fileobj=raw, mode="rb"), None  # type: ignore[return-value]
        return raw, size


@dataclass
class SourceStats:
    name: str
    sha256: str = ""
    bytes: int = 0
    lines: int = 0


@dataclass
class RejectedLine:
    source: str
    line: int
    reason: str
    detail: str


@dataclass
class ReplayResult:
    sources: list[SourceStats] = field(default_factory=list)
    read: int = 0
    blank: int = 0
    accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejected: list[RejectedLine] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected_by_reason.values())


def iter_lines(stream: IO[bytes], stats: SourceStats, max_line: int) -> Iterator[bytes | None]:
    """Yield each line once, without its line ending, hashing the bytes as they pass; ``None``
    stands for a line longer than ``max_line``.

    Memory stays bounded by the chunk size plus ``max_line``: an over-long line is not kept, only
    reported once and skipped to its end.
    """
    sha = hashlib.sha256()
    carry = b""  # start of a line that continues in the next chunk
    skipping = False  # inside an oversized line that was already reported
    while chunk := stream.read(CHUNK):
        sha.update(chunk)
        stats.bytes += len(chunk)
        parts = chunk.split(b"\n")
        tail = parts.pop()  # the unfinished last line (b"" when the chunk ends with a newline)
        if parts:
            if skipping:
                skipping = False
                del parts[0]  # the end of the oversized line
            else:
                parts[0] = carry + parts[0]
            carry = b""
            for part in parts:
                yield part if len(part) <= max_line else None
            if len(tail) > max_line:
                yield None
                skipping = True
            else:
                carry = tail
        elif not skipping:
            if len(carry) + len(tail) > max_line:
                yield None
                skipping = True
                carry = b""
            else:
                carry += tail
    if carry:
        yield carry
    stats.sha256 = sha.hexdigest()


class Progress:
    """A one-line progress indicator on a terminal's standard error; silent elsewhere."""

    def __init__(self, enabled: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, name: str, lines: int, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        rate = lines / max(now - self.started, 1e-9)
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 30)
            head = f"[{bar:<30}] {frac:6.1%}"
        else:
            head = f"{done / 1e6:8.1f} MB"
        self.stream.write(f"\r{head} {lines:>12,} events {rate:>10,.0f}/s  {name[-40:]}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


class Replay:
    """Runs the engine over event logs and collects what a report needs."""

    def __init__(
        self,
        config: EngineConfig,
        tz: tzinfo,
        *,
        max_line_bytes: int = 65_536,
        rejected_listing_limit: int = 1000,
        evidence_limit: int = 5,
    ) -> None:
        self.config = config
        self.tz = tz
        self.sink = ReportSink(tz, evidence_limit)
        self.engine = Engine(config, self.sink)
        self.decoder = Decoder(max_line_bytes)
        self.max_line_bytes = max_line_bytes
        self.rejected_listing_limit = rejected_listing_limit
        self.result = ReplayResult()

    def _reject(self, source: str, line: int, reason: str, detail: str) -> None:
        res = self.result
        res.rejected_by_reason[reason] = res.rejected_by_reason.get(reason, 0) + 1
        if len(res.rejected) < self.rejected_listing_limit:
            res.rejected.append(RejectedLine(source, line, reason, detail))

    def feed(self, source: Source, progress: Progress | None = None) -> None:
        stats = SourceStats(source.name)
        self.result.sources.append(stats)
        stream, size = source.open()
        # The decoder's fast path, inlined: this loop runs once per event.
        fast_decode = FAST_DECODE
        rec: Rec
        slow_decode = self.decoder.validate_slow
        not_fast = NOT_FAST
        ingest = self.engine.ingest
        res = self.result
        name = source.name
        accepted = blank = 0
        lineno = 0
        try:
            for lineno, raw in enumerate(iter_lines(stream, stats, self.max_line_bytes), 1):
                if raw is None:
                    self._reject(name, lineno, "oversized", f"over {self.max_line_bytes} bytes")
                    continue
                try:
                    try:
                        rec = fast_decode(raw)
                    except not_fast:
                        if not raw.strip():
                            blank += 1
                            continue
                        rec, ts = slow_decode(raw)
                    else:
                        if rec.case_id is None:
                            rec.case_id = rec.contact_id
                        ts = rec.ts.timestamp()
                    ingest(rec, ts)
                    accepted += 1
                except Rejection as rej:
                    self._reject(name, lineno, rej.reason, rej.detail)
                if progress is not None and not lineno & 0xFFFF:
                    progress.update(name, res.read + lineno, stats.bytes, size)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        stats.lines = lineno
        res.read += lineno
        res.blank += blank
        res.accepted += accepted

    def run(self, sources: Sequence[Source], show_progress: bool = False) -> dict[str, Any]:
        progress = Progress(show_progress)
        try:
            for src in sources:
                self.feed(src, progress)
        finally:
            progress.close()
        self.engine.finish()
        return self.report()

    def report(self) -> dict[str, Any]:
        """The report document (see docs/report.md for its schema)."""
        res = self.result
        digest = hashlib.sha256()
        for s in res.sources:
            digest.update(s.sha256.encode() + b"\n")
        engine = self.engine
        doc: dict[str, Any] = {
            "report_version": REPORT_VERSION,
            "event_schema_version": SCHEMA_VERSION,
            "input": {
                "digest": digest.hexdigest(),
                "sources": [
                    {"name": s.name, "sha256": s.sha256, "bytes": s.bytes, "lines": s.lines}
                    for s in res.sources
                ],
            },
            "config": {
                "timezone": str(self.tz),
                "max_line_bytes": self.max_line_bytes,
                "rejected_listing_limit": self.rejected_listing_limit,
                "engine": self.config.model_dump(mode="json"),
            },
            "events": {
                "lines": res.read,
                "blank_lines": res.blank,
                "accepted": res.accepted,
                "rejected": res.rejected_total,
                "last_event_time": iso(engine.max_ts, self.tz) if res.accepted else None,
            },
            "queues_at_end": [
                {
                    "tenant": labels[0],
                    "channel": labels[1],
                    "queue": labels[2],
                    "waiting": n,
                    "oldest_wait_seconds": round(oldest, 3),
                }
                for labels, (n, oldest) in sorted(engine.waiting_now().items())
            ],
        }
        doc.update(build_sections(self.sink))
        doc["rejected"] = {
            "total": res.rejected_total,
            "by_reason": {r: res.rejected_by_reason.get(r, 0) for r in REJECT_REASONS},
            "listed": len(res.rejected),
            "events": [
                {"source": r.source, "line": r.line, "reason": r.reason, "detail": r.detail}
                for r in res.rejected
            ],
        }
        return doc


def replay_paths(
    paths: Sequence[str],
    config: EngineConfig,
    tz: tzinfo,
    *,
    show_progress: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Replay files (``-`` = stdin) and return the report document."""
    return Replay(config, tz, **kwargs).run([Source(p) for p in paths], show_progress)
