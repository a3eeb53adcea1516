"""Where events come from: files (plain or gzip, detected by content) and standard input, read
line by line with bounded memory while their bytes are hashed for the report."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Source:
    """One input: a file path (plain or gzip, detected by content) or ``-`` for standard input.
    (The replay driver's :class:`streams.replay.Source` adds archives and Kafka ranges.)"""

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
class ImportStats:
    """What an importer made of a source: records read, events made, rows skipped and why."""

    format: str
    records: int = 0
    events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    not_recorded: tuple[str, ...] = ()  # fields the source never carries (NOT_RECORDED_FIELDS)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def warn(self, what: str) -> None:
        self.warnings[what] = self.warnings.get(what, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "records": self.records,
            "events": self.events,
            "skipped": dict(sorted(self.skipped.items())),
            "warnings": dict(sorted(self.warnings.items())),
            "not_recorded": list(self.not_recorded),
        }


@dataclass
class SourceStats:
    name: str
    sha256: str = ""
    bytes: int = 0
    lines: int = 0
    imported: ImportStats | None = None


def iter_lines(stream: IO[bytes], stats: SourceStats, max_line: int) -> Iterator[bytes | None]:
    """Yield each line once, without its line ending, hashing the bytes as they pass; ``None``
    stands for a line longer than ``max_line``.

    Memory stays bounded by the chunk size plus ``max_line``: an over-long line is not kept, only
    reported once and skipped to its end.
    """
    sha = hashlib.sha256()
    carry = b""  # start of a line that continues in the next chunk
    skipping = False  # inside an oversized line that was already reported
    first = True
    # read1: a gzip member cut short gives what it decompressed before the error is raised
    read = getattr(stream, "read1", stream.read)
    while chunk := read(CHUNK):
        sha.update(chunk)
        stats.bytes += len(chunk)
        if first:
            first = False
            if chunk.startswith(BOM):  # a UTF-8 byte-order mark is no part of the first event
                chunk = chunk[len(BOM) :]
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


def scan_lines(
    stream: IO[bytes], stats: SourceStats, max_line: int
) -> Iterator[tuple[int, int, bytes | None]]:
    """Yield ``(line number, byte offset, line)`` (``None`` for a line over ``max_line``),
    hashing the bytes and counting lines: for importers that come back to a line by offset."""
    sha = hashlib.sha256()
    offset = 0
    lineno = 0
    while raw := stream.readline(max_line + 1):
        lineno += 1
        start = offset
        sha.update(raw)
        offset += len(raw)
        if len(raw) > max_line and not raw.endswith(b"\n"):
            while more := stream.readline(CHUNK):  # the rest of the oversized line
                sha.update(more)
                offset += len(more)
                if more.endswith(b"\n"):
                    break
            yield lineno, start, None
            continue
        yield lineno, start, raw.rstrip(b"\n")
    stats.bytes = offset
    stats.sha256 = sha.hexdigest()
    stats.lines = lineno
