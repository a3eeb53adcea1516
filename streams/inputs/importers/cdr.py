"""Per-call records (CDR) in CSV / TSV, through a declarative column mapping (a TOML file).

One row per interaction. The mapping names the columns that hold its times (start, queue
entry, answer, end, end of wrap-up), its ids, queue and agent, and how the source's outcome
values map to answered / abandoned / dropped by the system / handled without an agent. See
docs/importers.md for the file format and an example.
"""

from __future__ import annotations

import csv
import io
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streams.inputs.files import ImportStats, Source, SourceStats, scan_lines
from streams.inputs.importers.base import InOrder, RowProblem, Timeline, reason_codes
from streams.inputs.privacy import Pseudonymizer

Outcome = Literal["answered", "abandoned", "system", "self_served", "skip"]


class Columns(BaseModel):
    """Canonical field -> column name in the source (only ``contact_id``, ``started`` and
    ``ended`` are required)."""

    model_config = ConfigDict(extra="forbid")

    contact_id: str
    started: str
    ended: str
    case_id: str | None = None
    customer_id: str | None = None
    tenant: str | None = None
    channel: str | None = None
    queue: str | None = None
    agent_id: str | None = None
    queued: str | None = Field(None, description="Time the contact entered the queue.")
    answered: str | None = Field(None, description="Time an agent answered.")
    wrapup_ended: str | None = Field(None, description="Time after-contact work ended.")
    hold_seconds: str | None = Field(None, description="Total hold, in seconds.")
    priority: str | None = Field(
        None, description="The source's priority, a whole number 0-9 (target rules match it)."
    )
    outcome: str | None = None
    survey_score: str | None = Field(
        None, description="A post-contact survey score (the mapping's survey kind and scale)."
    )
    reasons: str | None = Field(
        None,
        description="Contact reason (wrap-up) codes, separated by ',', ';' or '|' (docs/kpis.md).",
    )


class CdrMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = Field(",", min_length=1, max_length=1)
    time_format: str = Field(
        "iso", description="'iso' (RFC 3339 / ISO 8601), 'epoch' (seconds) or a strptime format."
    )
    timezone: str = Field("UTC", description="Zone of times that carry no offset.")
    channel: str = Field("voice", description="Channel when no column gives it.")
    empty: list[str] = Field(
        default_factory=lambda: ["", "0", "NULL", "null", "None"],
        description="Values that mean 'did not happen'.",
    )
    order: Literal["start", "any"] = Field(
        "start",
        description="'start': rows are in order of their start time, streamed with flat "
        "memory; 'any': rows are sorted in memory first.",
    )
    columns: Columns
    outcomes: dict[str, Outcome] = Field(
        default_factory=dict,
        description="Source outcome value -> answered | abandoned | system | self_served | "
        "skip. Without an outcome column (or for a value not listed), a row with an answer time "
        "is answered, one with a queue time abandoned, and any other self-served.",
    )
    channels: dict[str, str] = Field(
        default_factory=dict, description="Source channel value -> canonical channel."
    )
    survey: Literal["csat", "ces", "nps"] = Field(
        "csat", description="What columns.survey_score holds (docs/kpis.md)."
    )
    survey_scale: Literal[5, 7, 10] = Field(
        5, description="Its highest score: CSAT / CES 1..5 or 1..7, NPS 0..10."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        ZoneInfo(v)
        return v

    @classmethod
    def load(cls, path: Path) -> CdrMapping:
        with open(path, "rb") as f:
            return cls.model_validate(tomllib.load(f))


class Cdr:
    name = "cdr"
    agent_states = False  # a row per interaction, no agent states

    def __init__(self, mapping: CdrMapping, pseudonymizer: Pseudonymizer) -> None:
        self.m = mapping
        self.tz: tzinfo = ZoneInfo(mapping.timezone)
        self.pseudonymize = pseudonymizer
        self.empty = frozenset(mapping.empty)
        # one row per interaction: no transfers; hold and wrap-up only where a column has them
        cols = mapping.columns
        self.not_recorded = tuple(f for f, missing in (
            ("hold", cols.hold_seconds is None), ("after_contact_work", cols.wrapup_ended is None),
            ("transfers", True), ("who_ended", True), ("offers", True)) if missing)  # fmt: skip

    def events(
        self, source: Source, sstats: SourceStats, stats: ImportStats, max_line: int
    ) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
        stream, _ = source.open()
        header: list[str] | None = None
        rows: list[tuple[datetime, int, list[tuple[datetime, dict[str, Any]]]]] = []
        in_order = InOrder()
        last_start: datetime | None = None
        try:
            for lineno, _, raw in scan_lines(stream, sstats, max_line):
                if raw is None:
                    yield lineno, RowProblem("oversized", f"over {max_line} bytes")
                    continue
                text = raw.decode("utf-8-sig", "replace").rstrip("\r")
                if not text.strip():
                    continue
                cells = next(csv.reader(io.StringIO(text), delimiter=self.m.delimiter))
                if header is None:
                    header = cells
                    missing = sorted(
                        c for c in self.m.columns.model_dump().values() if c and c not in header
                    )
                    if missing:
                        yield (
                            lineno,
                            RowProblem(
                                "malformed_record",
                                f"columns not in the header: {', '.join(missing)}",
                            ),
                        )
                        return
                    continue
                stats.records += 1
                if len(cells) != len(header):
                    yield (
                        lineno,
                        RowProblem(
                            "malformed_record", f"{len(cells)} fields, header has {len(header)}"
                        ),
                    )
                    continue
                try:
                    events = self._row(dict(zip(header, cells, strict=True)), stats)
                except (ValueError, KeyError) as exc:
                    yield lineno, RowProblem("malformed_record", f"{type(exc).__name__}: {exc}")
                    continue
                if not events:
                    continue
                stats.events += len(events)
                start = events[0][0]
                if self.m.order == "any":
                    rows.append((start, lineno, events))
                    continue
                if last_start is not None and start < last_start:
                    stats.warn("row_out_of_start_order")
                last_start = max(start, last_start) if last_start else start
                yield from in_order.push(lineno, events)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        rows.sort(key=lambda r: (r[0], r[1]))
        for _, lineno, events in rows:
            yield from in_order.push(lineno, events)
        yield from in_order.drain()

    def _value(self, row: dict[str, str], column: str | None) -> str | None:
        if column is None:
            return None
        value = row[column].strip()
        return None if value in self.empty else value

    def _reasons(self, row: dict[str, str], stats: ImportStats) -> dict[str, list[str]]:
        """The ``reasons`` field of the row's last event, if its column has codes."""
        codes = reason_codes(self._value(row, self.m.columns.reasons), stats)
        return {"reasons": codes} if codes else {}

    def _time(self, row: dict[str, str], column: str | None) -> datetime | None:
        text = self._value(row, column)
        if text is None:
            return None
        fmt = self.m.time_format
        if fmt == "epoch":
            return datetime.fromtimestamp(float(text), UTC)
        dt = datetime.fromisoformat(text) if fmt == "iso" else datetime.strptime(text, fmt)  # noqa: DTZ007
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=self.tz)

    def _row(
        self, row: dict[str, str], stats: ImportStats
    ) -> list[tuple[datetime, dict[str, Any]]]:
        col = self.m.columns
        contact = self._value(row, col.contact_id)
        started = self._time(row, col.started)
        ended = self._time(row, col.ended)
        if contact is None or started is None or ended is None:
            raise ValueError("contact id, start and end are required")
        queued = self._time(row, col.queued)
        answered = self._time(row, col.answered)
        wrapped = self._time(row, col.wrapup_ended)
        agent = self._value(row, col.agent_id)
        raw_outcome = self._value(row, col.outcome)
        outcome: Outcome
        if raw_outcome is not None and raw_outcome in self.m.outcomes:
            outcome = self.m.outcomes[raw_outcome]
        elif answered is not None:
            outcome = "answered"
        elif queued is not None:
            outcome = "abandoned"
        else:
            outcome = "self_served"
        if outcome == "skip":
            stats.skip(f"outcome_{raw_outcome}".lower())
            return []
        channel_value = self._value(row, col.channel)
        channel = self.m.channels.get(channel_value or "", channel_value or self.m.channel)
        base: dict[str, Any] = {"channel": channel, "contact_id": contact}
        for field in ("case_id", "tenant", "queue"):
            value = self._value(row, getattr(col, field))
            if value is not None:
                base[field] = value
        customer = self._value(row, col.customer_id)
        if customer is not None:
            base["customer_id"] = self.pseudonymize(customer)
        timeline = Timeline(contact, base)
        emit = timeline.emit
        out = timeline.events

        def after(t: datetime | None, floor: datetime) -> datetime | None:
            if t is not None and t < floor:
                stats.warn("time_before_previous_step")
                return floor
            return t

        prio = self._value(row, col.priority)
        priority = int(prio) if prio is not None and prio.isdigit() and int(prio) <= 9 else None
        if prio is not None and priority is None:
            stats.warn("priority_not_0_to_9")
        emit(started, "contact.started", direction="inbound", initiation="inbound",
             priority=priority)  # fmt: skip
        queued = after(queued, started)
        if queued is not None:
            emit(queued, "queue.entered", priority=priority)
        last = queued or started
        if outcome == "answered":
            if agent is None:
                raise ValueError("an answered contact needs an agent column value")
            answered = after(answered or last, last) or last
            emit(answered, "agent.connected", agent_id=agent)
            hold = self._value(row, col.hold_seconds)
            if hold is not None and float(hold) > 0:
                emit(answered, "hold.started", agent_id=agent)
                emit(answered + timedelta(seconds=float(hold)), "hold.ended", agent_id=agent)
            ended = after(ended, answered) or answered
            emit(ended, "contact.ended", agent_id=agent, ended_by="customer")
            done = after(wrapped, ended) or ended
            emit(done, "wrapup.ended", agent_id=agent, **self._reasons(row, stats))
            score = self._value(row, col.survey_score)
            if score is not None:
                if score.isdigit() and int(score) <= 10:
                    emit(done, "survey.answered", agent_id=agent, survey=self.m.survey,
                         score=int(score), scale=self.m.survey_scale)  # fmt: skip
                else:
                    stats.warn("survey_score_not_0_to_10")
            return out
        ended = after(ended, last) or last
        if outcome == "abandoned" and queued is not None:
            emit(ended, "queue.abandoned")
        emit(ended, "contact.ended", ended_by="system" if outcome == "system" else "customer",
             **self._reasons(row, stats))  # fmt: skip
        return out
