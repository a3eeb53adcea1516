"""What every importer shares: how it reports a row it cannot use, its interface, and the
ordering of the events it builds (:class:`ImportStats` lives with the sources' statistics)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from streams.inputs.files import ImportStats, Source, SourceStats

NOT_RECORDED_FIELDS = ("hold", "after_contact_work", "transfers", "who_ended", "offers")
"""Handling facts a source may not carry: a source without hold records makes every hold
figure of a report of its data "not measured", not 0 s (streams.replay)."""


@dataclass(frozen=True)
class RowProblem:
    """A source row that yields no event; reported like a rejected event (line, reason)."""

    reason: str
    detail: str


class Importer(Protocol):
    """Turns a source into canonical events (dicts) in event-time order, streaming.

    Yields ``(line number, event or problem)``; several events may share a line number. It reads
    the source itself (some formats need more than one pass) and fills ``source_stats`` (bytes,
    SHA-256, lines) and ``stats``.
    """

    name: str
    not_recorded: tuple[str, ...]
    """What the source never records, of NOT_RECORDED_FIELDS: its figures are "not measured"
    in a report of its data, never a measured zero."""
    agent_states: bool
    """Whether the source records agents' states (logins, pauses): without them a replay of
    it keeps no agent states at all (an agent seen only on contacts has none to keep), so the
    agent domain costs nothing per contact."""

    def events(
        self, source: Source, source_stats: SourceStats, stats: ImportStats, max_line: int
    ) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]: ...


class Timeline:
    """The events of one interaction as an importer builds them: numbered ``{contact}:{n}``,
    sharing the interaction's fields, each with its time for ordering."""

    def __init__(
        self, contact: str, base: dict[str, Any],
        iso: Callable[[datetime], str | datetime] = datetime.isoformat,
    ) -> None:  # fmt: skip
        """``iso``: the event time as it goes into the event: RFC 3339 text, or an aware
        datetime (the decoder takes either; orjson writes a datetime as RFC 3339)."""
        self.contact = contact
        self.base = base
        self.iso = iso
        self.events: list[tuple[datetime, dict[str, Any]]] = []

    def emit(self, when: datetime, etype: str, **fields: Any) -> None:
        ev = {"event_id": f"{self.contact}:{len(self.events) + 1}", "type": etype,
              "ts": self.iso(when)}  # fmt: skip
        ev.update(self.base)
        ev.update(fields)
        self.events.append((when, ev))


class InOrder:
    """Releases the events of interactions that arrive in order of their start, in event-time
    order: an event is released once no later interaction can start before it. Memory holds
    the interactions in progress only."""

    def __init__(self) -> None:
        self._pending: list[tuple[datetime, int, int, dict[str, Any]]] = []
        self._seq = 0

    def push(
        self, lineno: int, events: list[tuple[datetime, dict[str, Any]]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Add one interaction's events (its first is its start); yield what can go out."""
        if not events:
            return
        start = events[0][0]
        pending = self._pending
        while pending and pending[0][0] < start:
            _, _, line, ev = heapq.heappop(pending)
            yield line, ev
        for when, ev in events:
            self._seq += 1
            heapq.heappush(pending, (when, self._seq, lineno, ev))

    def drain(self) -> Iterator[tuple[int, dict[str, Any]]]:
        while self._pending:
            _, _, line, ev = heapq.heappop(self._pending)
            yield line, ev


MAX_CODES = 10  # kpis.events.MAX_REASONS
MAX_CODE_CHARS = 64
_SEPARATORS = str.maketrans({";": ",", "|": ","})


def reason_codes(value: Any, stats: ImportStats) -> list[str] | None:
    """Contact reason codes from a source's field: a text of codes separated by ``,``, ``;`` or
    ``|``, or a list of texts. What an event cannot carry is dropped and counted as a warning
    (a code over 64 characters: ``reason_code_too_long``; past 10 codes: ``reasons_over_10``;
    a value that is no text: ``reasons_not_text``), so the contact keeps its other events."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = value.translate(_SEPARATORS).split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = value
    else:
        stats.warn("reasons_not_text")
        return None
    out: list[str] = []
    for part in parts:
        code = part.strip()
        if not code or code in out:
            continue
        if len(code) > MAX_CODE_CHARS:
            stats.warn("reason_code_too_long")
            continue
        if len(out) == MAX_CODES:
            stats.warn("reasons_over_10")
            break
        out.append(code)
    return out or None
