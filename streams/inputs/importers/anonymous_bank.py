"""The "Anonymous Bank" call-centre records (Technion; Guedj & Mandelbaum, 2000).

One tab-separated line per call: ``vru+line, call_id, customer_id, priority, type, date (YYMMDD),
vru_entry, vru_exit, vru_time, q_start, q_exit, q_time, outcome, ser_start, ser_exit, ser_time,
server``. Mapping (see docs/importers.md), so that results compare with published analyses:

* PHANTOM calls are skipped and counted as skipped.
* Every call starts in the IVR (the VRU, flow ``vru``) at ``vru_entry`` and leaves it at
  ``vru_exit``.
* ``q_start`` other than ``0:00:00``: the call enters queue ``type`` then; a call served without
  queueing enters it at ``vru_exit`` and is answered with zero wait.
* AGENT: answered at ``ser_start`` by ``server``, ends at ``ser_exit``; the data records no hold,
  after-contact work or transfers (``not_recorded``: a report shows them "not measured"), so
  wrap-up ends when the call ends. ``NO_SERVER`` (the source's marker of a served call whose
  agent it does not name) is no agent: the call is handled by nobody named, counted as the
  ``served_by_no_named_agent`` warning.
* HANG after queueing: abandoned at ``q_exit``. HANG without queueing: the customer hung up in
  the IVR at ``vru_exit``.
* Times are the date plus the clock time. A step more than 6 hours earlier than the step before
  it crossed midnight (next day); a smaller negative gap is a clock skew of the source: the event
  order is kept, the step takes the previous step's time (durations clamped at zero) and a
  ``clock_skew`` warning is counted.
* Channel voice, queue ``type``, contact id ``{vru+line}-{call_id}-{date}``; a non-zero
  ``customer_id`` is pseudonymized.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any

from kpis.state import NO_LABEL
from streams.inputs.files import CHUNK, ImportStats, Source, SourceStats, scan_lines
from streams.inputs.importers.base import InOrder, RowProblem, Timeline
from streams.inputs.privacy import Pseudonymizer

MAX_GROUPS = 256  # VRU lines read side by side, one open file each

FIELDS = (
    "vru+line", "call_id", "customer_id", "priority", "type", "date", "vru_entry", "vru_exit",
    "vru_time", "q_start", "q_exit", "q_time", "outcome", "ser_start", "ser_exit", "ser_time",
    "server",
)  # fmt: skip
MIDNIGHT_GAP = timedelta(hours=6)
NOT_HAPPENED = "0:00:00"
NO_SERVER = "NO_SERVER"
FLOW = "vru"
_CACHE_LIMIT = 4096


def _clock(text: str) -> time:
    h, m, s = text.split(":")
    return time(int(h), int(m), int(s))


class AnonymousBank:
    """Streams the calls in time order although the file is grouped by VRU line: one pass
    finds where each group starts, then the groups (each in time order) are merged by entry time,
    one cursor per group, and each call's events are released once no later call can precede
    them. Memory holds one line per group and the calls in progress, whatever the file's size.
    A source that cannot seek (standard input, gzip) is sorted in memory instead."""

    name = "anonymous-bank"
    not_recorded: tuple[str, ...] = ("hold", "after_contact_work", "transfers", "who_ended",
                                     "offers")  # fmt: skip
    agent_states = False

    def __init__(self, tz: tzinfo, pseudonymizer: Pseudonymizer, tenant: str | None = None):
        self.tz = tz
        self.pseudonymize = pseudonymizer
        self.tenant = tenant
        # Caches of what repeats across calls (strptime and an aware isoformat were a quarter of
        # a month's import): days by their text, and zone offsets by local minute. A zone's
        # offset changes only at whole local minutes, so an offset found for one second of a
        # minute holds for all of it. Bounded: cleared when full.
        self._days: dict[str, date] = {}
        self._offsets: dict[tuple[int, ...], tzinfo] = {}

    def events(
        self, source: Source, sstats: SourceStats, stats: ImportStats, max_line: int
    ) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
        stream, size = source.open()
        try:
            seekable = size is not None
            groups: list[tuple[int, int]] = []  # (first line number, byte offset)
            rows: list[tuple[tuple[str, int], int, list[str]]] = []
            previous = None
            header_ok = False
            # a file already in time order is read in one pass whatever its groups (a file
            # sorted by time has a "group" per row: one open file each would run out)
            in_order = True
            last_key = ("", -1)
            body: tuple[int, int] | None = None
            for lineno, offset, raw in scan_lines(stream, sstats, max_line):
                if raw is None:
                    yield lineno, RowProblem("oversized", f"over {max_line} bytes")
                    continue
                cells = raw.decode("utf-8", "replace").rstrip("\r").split("\t")
                if lineno == 1:
                    header_ok = tuple(cells) == FIELDS
                    if not header_ok:
                        yield (
                            lineno,
                            RowProblem(
                                "malformed_record",
                                f"unexpected header; expected {', '.join(FIELDS)}",
                            ),
                        )
                    continue
                if not header_ok or not raw.strip():
                    continue
                if seekable:
                    if body is None:
                        body = (lineno, offset)
                    if cells[0] != previous:
                        groups.append((lineno, offset))
                        previous = cells[0]
                    if in_order:
                        key = _order(cells)
                        if key < last_key and key != ("", -1):
                            in_order = False
                        last_key = max(last_key, key)
                else:
                    rows.append((_order(cells), lineno, cells))
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        if not header_ok or (seekable and body is None):
            return  # no header, or nothing after it
        ordered: Iterator[tuple[int, list[str]]]
        if seekable and body is not None and (in_order or len(groups) > MAX_GROUPS):
            if not in_order:  # bounded open files: sort in memory instead (documented)
                rows = [(k, n, c) for k, n, c in _group_rows(source.name, *body, -1, max_line)]
                rows.sort(key=lambda r: (r[0], r[1]))
                ordered = ((lineno, cells) for _, lineno, cells in rows)
            else:
                whole = _group_rows(source.name, *body, -1, max_line)
                ordered = ((lineno, cells) for _, lineno, cells in whole)
        elif seekable:
            ordered = _merge_groups(source.name, groups, max_line)
        else:
            rows.sort(key=lambda r: (r[0], r[1]))
            ordered = ((lineno, cells) for _, lineno, cells in rows)
        yield from self._timeline(ordered, stats)

    def _timeline(
        self, rows: Iterator[tuple[int, list[str]]], stats: ImportStats
    ) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
        in_order = InOrder()
        for lineno, cells in rows:
            stats.records += 1
            if len(cells) != len(FIELDS):
                yield (
                    lineno,
                    RowProblem("malformed_record", f"{len(cells)} fields, expected {len(FIELDS)}"),
                )
                continue
            row = dict(zip(FIELDS, cells, strict=True))
            if row["outcome"] == "PHANTOM":
                stats.skip("phantom")
                continue
            try:
                events = self._call(row, stats)
            except (ValueError, KeyError) as exc:
                yield lineno, RowProblem("malformed_record", f"{type(exc).__name__}: {exc}")
                continue
            stats.events += len(events)
            yield from in_order.push(lineno, events)
        yield from in_order.drain()

    def _call(
        self, row: dict[str, str], stats: ImportStats
    ) -> list[tuple[datetime, dict[str, Any]]]:
        text = row["date"]
        day = self._days.get(text)
        if day is None:
            if len(self._days) >= _CACHE_LIMIT:
                self._days.clear()
            parsed = datetime.strptime(text, "%y%m%d")  # noqa: DTZ007 - a local date, see below
            day = self._days[text] = parsed.date()
        contact = f"{row['vru+line']}-{row['call_id']}-{row['date']}"
        queue = row["type"]
        outcome = row["outcome"]
        if outcome not in ("AGENT", "HANG"):
            raise ValueError(f"unknown outcome {outcome!r}")
        steps = _Steps(day, stats)
        entered = steps.at(row["vru_entry"])
        left_ivr = steps.at(row["vru_exit"])
        queued = row["q_start"] != NOT_HAPPENED
        base: dict[str, Any] = {"channel": "voice", "contact_id": contact, "queue": queue}
        if self.tenant:
            base["tenant"] = self.tenant
        customer = row["customer_id"]
        if customer and customer != "0":
            base["customer_id"] = self.pseudonymize(customer)
        # the source's priority (0 unidentified, 1 regular, 2 high) picks targets
        prio = row["priority"]
        priority = int(prio) if prio.isdigit() and int(prio) <= 9 else None
        timeline = Timeline(contact, base, self._aware)
        emit = timeline.emit
        out = timeline.events

        emit(entered, "contact.started", direction="inbound", initiation="inbound",
             priority=priority)  # fmt: skip
        emit(entered, "ivr.entered", flow=FLOW)
        if outcome == "HANG" and not queued:
            emit(left_ivr, "ivr.exited", flow=FLOW, outcome="hang_up")
            emit(left_ivr, "contact.ended", ended_by="customer")
            return out
        emit(left_ivr, "ivr.exited", flow=FLOW, outcome="queue")
        in_queue = steps.at(row["q_start"]) if queued else left_ivr
        emit(in_queue, "queue.entered", priority=priority)
        if outcome == "HANG":
            gone = steps.at(row["q_exit"])
            emit(gone, "queue.abandoned")
            emit(gone, "contact.ended", ended_by="customer")
            return out
        # NO_SERVER on a served call: served, by no agent the source names. The engine's "no
        # agent" id (kpis.state.NO_LABEL): handled, but no agent's row, state or figures
        server = row["server"]
        if not server or server == NO_SERVER:
            server = NO_LABEL
            stats.warn("served_by_no_named_agent")
        who = {"agent_id": server}
        if row["ser_start"] == NOT_HAPPENED:
            # Served, but the service was not timed: answered when the queue let it go, with a
            # handle time nobody knows (no wrap-up, so it counts as handle_incomplete).
            stats.warn("service_times_missing")
            answered = steps.at(row["q_exit"]) if queued else left_ivr
            emit(answered, "agent.connected", **who)
            emit(answered, "contact.ended", ended_by="customer", **who)
            return out
        answered = steps.at(row["ser_start"]) if queued else left_ivr  # unqueued: zero wait
        ended = steps.at(row["ser_exit"])
        emit(answered, "agent.connected", **who)
        emit(ended, "contact.ended", ended_by="customer", **who)
        emit(ended, "wrapup.ended", **who)
        return out

    def _aware(self, local: datetime) -> datetime:
        """A local clock time with its zone's offset, as a fixed-offset aware datetime: the
        event's ``ts`` handed to the decoder as it is (no text made here to be parsed there)."""
        minute = (local.year, local.month, local.day, local.hour, local.minute)
        tz = self._offsets.get(minute)
        if tz is None:
            if len(self._offsets) >= _CACHE_LIMIT:
                self._offsets.clear()
            offset = local.replace(tzinfo=self.tz).utcoffset()
            assert offset is not None  # an IANA zone always has one
            tz = self._offsets[minute] = timezone(offset)
        return local.replace(tzinfo=tz)


class _Steps:
    """Turns clock times into a monotonic timeline: midnight crossings and clock skews."""

    def __init__(self, day: date, stats: ImportStats) -> None:
        self.day = day
        self.stats = stats
        self.last: datetime | None = None

    def at(self, clock: str) -> datetime:
        prev = self.last
        t = datetime.combine(self.day if prev is None else prev.date(), _clock(clock))
        if prev is not None and t < prev:
            if prev - t > MIDNIGHT_GAP:
                t += timedelta(days=1)  # crossed midnight
            else:
                self.stats.warn("clock_skew")
                t = prev
        self.last = t
        return t


def _order(cells: list[str]) -> tuple[str, int]:
    """Sort key of a row: its date and entry clock time. A row whose date or time does not
    read sorts first, wherever it stands: it becomes a counted problem at once and cannot hold
    back the rows after it (a bad key sorting last stalled its whole group until the end, and
    everything of the group then came late)."""
    try:
        text = cells[5]
        if not _day_ok(text):
            return "", -1
        clock = _clock(cells[6])
        return text, clock.hour * 3600 + clock.minute * 60 + clock.second
    except (ValueError, IndexError):
        return "", -1


@lru_cache(maxsize=4096)
def _day_ok(text: str) -> bool:
    """Whether a YYMMDD date reads (a month has few distinct ones: cached)."""
    try:
        datetime.strptime(text, "%y%m%d")  # noqa: DTZ007 - only whether it reads
    except ValueError:
        return False
    return len(text) == 6


def _merge_groups(
    path: str, groups: list[tuple[int, int]], max_line: int
) -> Iterator[tuple[int, list[str]]]:
    """Rows of all groups by entry time, reading each group with its own cursor."""
    ends = [offset for _, offset in groups[1:]] + [-1]
    cursors = [_group_rows(path, first, offset, end, max_line)
               for (first, offset), end in zip(groups, ends, strict=True)]  # fmt: skip
    merged = heapq.merge(*cursors, key=lambda r: (r[0], r[1]))
    for _, lineno, cells in merged:
        yield lineno, cells


def _group_rows(
    path: str, first: int, offset: int, end: int, max_line: int
) -> Iterator[tuple[tuple[str, int], int, list[str]]]:
    with open(path, "rb") as f:
        f.seek(offset)
        lineno = first
        pos = offset
        while end < 0 or pos < end:
            raw = f.readline(max_line + 1)
            if not raw:
                return
            pos += len(raw)
            if len(raw) > max_line and not raw.endswith(b"\n"):  # reported in the first pass
                while more := f.readline(CHUNK):
                    pos += len(more)
                    if more.endswith(b"\n"):
                        break
                lineno += 1
                continue
            if not raw.strip():
                lineno += 1
                continue
            cells = raw.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
            yield _order(cells), lineno, cells
            lineno += 1
