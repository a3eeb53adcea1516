"""Line utilities shared by every line source: one record as one line, lines merged by event
time, a time-range filter, and a readable stream over lines (what the replay driver reads).

Event time comes from :func:`kpis.decode.event_meta`, the decoder's own parser, so a line sorts
and filters by the same instant the engine will give it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from operator import itemgetter

import orjson

from kpis.decode import event_meta


def one_line(raw: bytes) -> bytes:
    """A record as one archive line. A Kafka record may hold newlines (pretty-printed JSON):
    valid JSON is re-serialized compactly (the same event), anything else has its newlines
    escaped (it was not an event either way)."""
    if b"\n" not in raw:
        return raw
    try:
        return orjson.dumps(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return raw.replace(b"\n", b"\\n")


def in_range(raw: bytes, start: float | None, end: float | None) -> bool:
    """Whether a line's event time is in ``[start, end)`` (a line without one: kept)."""
    if start is None and end is None:
        return True
    _, ts = event_meta(raw)
    return ts is None or ((start is None or ts >= start) and (end is None or ts < end))


def filtered(lines: Iterator[bytes], start: float | None, end: float | None) -> Iterator[bytes]:
    return (line for line in lines if in_range(line, start, end))


def in_time_order(
    streams: Iterable[Iterable[bytes]], start: float | None = None, end: float | None = None
) -> Iterator[bytes]:
    """Streams (each in its own order, e.g. one topic-partition) merged by event time, keeping
    only events in ``[start, end)``; a line without a readable time sorts as the earliest
    where it stands in its stream."""

    def keyed(stream: Iterable[bytes]) -> Iterator[tuple[float, bytes]]:
        for raw in stream:
            ts = event_meta(raw)[1]
            if ts is None or ((start is None or ts >= start) and (end is None or ts < end)):
                yield timed(ts, raw)

    return merge_timed(keyed(s) for s in streams)


def timed(ts: float | None, raw: bytes) -> tuple[float, bytes]:
    """A line keyed for :func:`merge_timed` (a line without a time sorts as the earliest)."""
    return (-math.inf if ts is None else ts, raw)


def merge_timed(streams: Iterable[Iterable[tuple[float, bytes]]]) -> Iterator[bytes]:
    """Streams of keyed lines (:func:`timed`), each in its own order, merged by time."""
    for _, raw in heapq.merge(*streams, key=itemgetter(0)):
        yield raw


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
