"""Targets per queue and priority, and business-hours calendars (pure, no wall clock).

Centres set their service-level threshold and goal, first-response and resolution targets per
queue and often per priority, measured in business hours. Configuration (``[engine]``):

* ``calendars``: named calendars, each a time zone, intervals per weekday (split shifts
  allowed) and holidays by date;
* ``targets``: ordered rules matched on tenant / channel / queue / priority. For each value
  (threshold, goal, first response, resolution, calendar) the most specific matching rule that
  sets it wins (naming the queue counts most, then the priority, the channel, the tenant:
  :attr:`TargetRule.specificity`); between equally specific rules the earlier one in the file
  wins. A value no rule sets falls back to the channel's default
  (``service_level_seconds``) or to none (no goal, no target, wall-clock time).

The engine asks :meth:`Targets.of` per contact or case; answers are cached per key (bounded).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kpis.erlang import agents_a, agents_c


class TargetSettings(Protocol):
    """What :class:`Targets` reads of the engine's settings (:class:`kpis.config.EngineConfig`,
    which imports this module's models: the settings are passed in, not imported)."""

    @property
    def targets(self) -> Sequence[TargetRule]: ...

    @property
    def calendars(self) -> Mapping[str, Calendar]: ...

    def service_level(self, channel: str) -> float: ...


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Priority = Annotated[int, Field(ge=0, le=9)]

Spans = tuple[tuple[float, float], ...]


def known_zone(v: str) -> str:
    """An IANA zone name that this machine knows."""
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r}") from exc
    return v


def _spans(v: Sequence[str]) -> tuple[str, ...]:
    """``"HH:MM-HH:MM"`` intervals of one weekday, in order and not overlapping."""
    out: list[tuple[int, int]] = []
    for text in v:
        m = _SPAN.match(text)
        if m is None:
            raise ValueError(f"{text!r} is not an interval like '09:00-18:00'")
        h0, m0, h1, m1 = (int(g) for g in m.groups())
        start, end = h0 * 60 + m0, h1 * 60 + m1
        if end > 24 * 60 or end <= start:
            raise ValueError(f"{text!r}: the end must be after the start, at most 24:00")
        if out and start < out[-1][1]:
            raise ValueError(f"{text!r} overlaps or precedes the interval before it")
        out.append((start, end))
    return tuple(v)


class Calendar(BaseModel):
    """Business hours: a time zone, intervals per weekday, holidays (closed all day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field("UTC", description="IANA zone of the intervals and holidays.")
    monday: tuple[str, ...] = ()
    tuesday: tuple[str, ...] = ()
    wednesday: tuple[str, ...] = ()
    thursday: tuple[str, ...] = ()
    friday: tuple[str, ...] = ()
    saturday: tuple[str, ...] = ()
    sunday: tuple[str, ...] = ()
    holidays: tuple[date, ...] = ()

    _check_spans = field_validator(*WEEKDAYS)(_spans)

    _zone = field_validator("timezone")(known_zone)

    @model_validator(mode="after")
    def _open_sometime(self) -> Calendar:
        if not any(getattr(self, d) for d in WEEKDAYS):
            raise ValueError("a calendar needs at least one open interval in the week")
        return self


class TargetRule(BaseModel):
    """One target rule: what it matches (omitted = any) and the targets it sets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str | None = None
    channel: Literal["voice", "chat", "email", "sms", "social", "video"] | None = None
    queue: str | None = None
    priority: Priority | None = None
    service_level_seconds: float | None = Field(
        None, gt=0, description="Answered within this counts as within service level."
    )
    service_level_goal: float | None = Field(
        None, gt=0, le=1, description="The share to answer within it (service_level_low alert)."
    )
    first_response_seconds: float | None = Field(None, gt=0)
    resolution_seconds: float | None = Field(None, gt=0)
    calendar: str | None = Field(
        None, description="Business hours of the first-response and resolution targets."
    )

    @property
    def specificity(self) -> int:
        """Naming the queue counts most, then the priority, the channel, the tenant: a queue's
        rule beats a channel-wide one, and a queue-and-priority rule beats the queue's."""
        return (
            8 * (self.queue is not None)
            + 4 * (self.priority is not None)
            + 2 * (self.channel is not None)
            + (self.tenant is not None)
        )

    def matches(self, tenant: str, channel: str, queue: str, priority: int | None) -> bool:
        return (
            (self.tenant is None or self.tenant == tenant)
            and (self.channel is None or self.channel == channel)
            and (self.queue is None or self.queue == queue)
            and (self.priority is None or self.priority == priority)
        )


class BusinessClock:
    """Business seconds between two instants, and an instant a number of business seconds
    later. Cost follows the days spanned (each open day's intervals are worked out once)."""

    MAX_DAYS = 4000  # an add() that finds no open time in this many days gives up (inf)

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.zone = ZoneInfo(calendar.timezone)
        self._minutes = [
            [_minutes(s) for s in getattr(calendar, d)] for d in WEEKDAYS
        ]  # per weekday: (start, end) minutes
        self._holidays = frozenset(calendar.holidays)
        self._days: dict[date, Spans] = {}

    def _day(self, d: date) -> Spans:
        spans = self._days.get(d)
        if spans is None:
            if d in self._holidays:
                spans = ()
            else:
                spans = tuple(
                    (self._at(d, a), self._at(d, b)) for a, b in self._minutes[d.weekday()]
                )
            if len(self._days) > 4096:
                self._days.clear()
            self._days[d] = spans
        return spans

    def _at(self, d: date, minute: int) -> float:
        if minute >= 24 * 60:
            d, minute = d + timedelta(days=1), minute - 24 * 60
        local = datetime.combine(d, time(minute // 60, minute % 60), self.zone)
        return local.timestamp()

    def _date(self, ts: float) -> date:
        return datetime.fromtimestamp(ts, self.zone).date()

    def _days_from(self, ts: float) -> Iterator[Spans]:
        d = self._date(ts) - timedelta(days=1)  # an interval of the day before may reach in
        for _ in range(self.MAX_DAYS):
            yield self._day(d)
            d += timedelta(days=1)

    def seconds(self, t0: float, t1: float) -> float:
        """Business seconds in ``[t0, t1]`` (0 if t1 <= t0)."""
        if t1 <= t0:
            return 0.0
        total = 0.0
        last = self._date(t1) + timedelta(days=1)
        d = self._date(t0) - timedelta(days=1)
        while d <= last:
            for a, b in self._day(d):
                lo, hi = max(a, t0), min(b, t1)
                if hi > lo:
                    total += hi - lo
            d += timedelta(days=1)
        return total

    def add(self, t0: float, seconds: float) -> float:
        """The instant at which ``seconds`` of business time after ``t0`` have passed."""
        left = seconds
        for spans in self._days_from(t0):
            for a, b in spans:
                lo = max(a, t0)
                if b <= lo:
                    continue
                if lo + left <= b:
                    return lo + left
                left -= b - lo
        return float("inf")


def _minutes(span: str) -> tuple[int, int]:
    m = _SPAN.match(span)
    assert m is not None  # validated by Calendar
    h0, m0, h1, m1 = (int(g) for g in m.groups())
    return h0 * 60 + m0, h1 * 60 + m1


@dataclass(frozen=True, slots=True)
class Target:
    """The targets of one (tenant, channel, queue, priority)."""

    service_level_seconds: float
    service_level_goal: float | None = None
    first_response_seconds: float | None = None
    resolution_seconds: float | None = None
    calendar: BusinessClock | None = None
    calendar_name: str | None = None


DEFAULT_GOAL = 0.8
"""The share answered within the threshold that staffing aims at when a target names none."""
DEFAULT_THRESHOLD = 20.0  # seconds: the service-level threshold without any target


def agents_needed(
    target: Target | None, load: float, aht: float, patience: float = 0.0
) -> int | None:
    """Agents a queue needs to meet its service-level target (its threshold and goal, else
    the defaults) for ``load`` erlangs at handle time ``aht``: Erlang A with a ``patience``,
    else Erlang C. None without a load or a handle time, or for a load no queue has
    (kpis.erlang refuses it rather than compute without end). The one formula of the report's
    intervals, the live staffing view and the staffing alert rule."""
    if not (load > 0 and aht > 0):
        return None
    threshold = target.service_level_seconds if target is not None else DEFAULT_THRESHOLD
    goal = (target.service_level_goal if target is not None else None) or DEFAULT_GOAL
    try:
        if patience:
            return agents_a(load, aht, patience, threshold, goal)
        return agents_c(load, aht, threshold, goal)
    except ValueError:
        return None


class Targets:
    """Resolves the targets of a key from the rules (see the module docstring)."""

    MAX_CACHED = 4096

    def __init__(self, config: TargetSettings) -> None:
        self.config = config
        # most specific first; stable, so the file's order breaks ties
        self.rules = sorted(config.targets, key=lambda r: -r.specificity)
        self.clocks = {name: BusinessClock(cal) for name, cal in config.calendars.items()}
        self.active = bool(self.rules)
        """Whether any target rule is configured (without: channel defaults, no targets, no
        business time, and the report has no targets section)."""
        self._cache: dict[tuple[str, str, str, int | None], Target] = {}

    def of(self, tenant: str, channel: str, queue: str, priority: int | None = None) -> Target:
        key = (tenant, channel, queue, priority)
        t = self._cache.get(key)
        if t is None:
            t = self._resolve(*key)
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[key] = t
        return t

    def _resolve(self, tenant: str, channel: str, queue: str, priority: int | None) -> Target:
        matching = [r for r in self.rules if r.matches(tenant, channel, queue, priority)]

        def first(name: str) -> object:
            for r in matching:
                v = getattr(r, name)
                if v is not None:
                    return v
            return None

        sl = first("service_level_seconds")
        cal = first("calendar")
        return Target(
            service_level_seconds=(
                float(sl) if isinstance(sl, float | int) else self.config.service_level(channel)
            ),
            service_level_goal=_float(first("service_level_goal")),
            first_response_seconds=_float(first("first_response_seconds")),
            resolution_seconds=_float(first("resolution_seconds")),
            calendar=self.clocks.get(cal) if isinstance(cal, str) else None,
            calendar_name=cal if isinstance(cal, str) else None,
        )


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, float | int) else None
