"""The supervisor's day: per queue and 15- or 30-minute interval, the traffic, the speed, the
agents busy, and the agents the interval needed (Erlang C, and Erlang A where customers
abandon), beside a forecast made from the same weekday and interval of the weeks before.

:class:`IntervalSink` is a :class:`kpis.interfaces.KpiSink` for the few series an interval
needs (:data:`INTERVAL_SERIES`, passed through a :class:`kpis.interfaces.FanOut`); it keys them by
local day and interval. A contact's counts fall in the interval of their event (an answer in
the interval it was answered); handle time is spread over the intervals it spans (from the
agent's connect to the end of after-contact work), so ``busy_agents`` is the mean number of
agents on the queue's contacts during the interval. Intervals start at local midnight; a
daylight-saving day has 46 or 50 half hours. Cost follows work: only intervals with activity
have an entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from kpis.catalogue import ALL, KPI, NO_LABEL, ratio_value, ratio_values
from kpis.interfaces import Labels
from kpis.targets import DEFAULT_GOAL, Target, Targets, agents_needed

INTERVAL_SERIES = frozenset(
    {"queued", "answered", "answered_in_sl", "abandoned", "answer_seconds", "abandon_wait_seconds",
     "handle_seconds", "agent_staffed_seconds", "survey_csat_answers", "survey_csat_satisfied"}
)  # fmt: skip
MIN_ABANDONED = 3
"""Erlang A is computed for an interval with at least this many abandonments."""
FORECAST_WEEKS = 4
"""The forecast of an interval is the mean of the same weekday and interval of up to this many
previous weeks that had the queue open."""

Key = tuple[int, int]  # (local day ordinal, interval of the day)


class IntervalSink:
    def __init__(self, tz: tzinfo, interval_seconds: float) -> None:
        self.tz = tz
        self.width = interval_seconds
        self.counts: dict[tuple[str, Labels, Key], int] = {}
        self.sums: dict[tuple[str, Labels, Key], float] = {}
        self.busy: dict[tuple[Labels, Key], float] = {}
        self.staffed: dict[tuple[Labels, Key], float] = {}
        self._day_start = 0.0
        self._day_end = -1.0
        self._day = 0
        self._days: dict[int, tuple[float, float, int]] = {}

    def _key(self, ts: float) -> Key:
        if not self._day_start <= ts < self._day_end:
            # counts arrive for several days at once (late outcomes, survey answers): the day
            # of each quarter hour (every zone's offset is a multiple of 15 min) is kept
            slot = int(ts // 900)
            day = self._days.get(slot)
            if day is None:
                d = datetime.fromtimestamp(ts, self.tz).date()
                start = datetime.combine(d, time(0), self.tz).timestamp()
                end = datetime.combine(d + timedelta(days=1), time(0), self.tz).timestamp()
                if len(self._days) > 100_000:
                    self._days.clear()
                day = self._days[slot] = (start, end, d.toordinal())
            self._day_start, self._day_end, self._day = day
        return (self._day, int((ts - self._day_start) // self.width))

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        if self._day_start <= ts < self._day_end:  # _key, inlined for the usual case
            key = (name, labels, (self._day, int((ts - self._day_start) // self.width)))
        else:
            key = (name, labels, self._key(ts))
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if self._day_start <= ts < self._day_end:
            key = (name, labels, (self._day, int((ts - self._day_start) // self.width)))
        else:
            key = (name, labels, self._key(ts))
        sums = self.sums
        sums[key] = sums.get(key, 0.0) + value
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1  # observations (e.g. handled parts)
        if name == "handle_seconds":
            self._spread(self.busy, labels, ts - value, ts)
        elif name == "agent_staffed_seconds":
            self._spread(self.staffed, labels, ts - value, ts)

    def _spread(
        self, into: dict[tuple[Labels, Key], float], labels: Labels, start: float, end: float
    ) -> None:
        """Seconds of one span (an agent part, a staffed stretch) over the intervals it spans
        (cost: the intervals)."""
        t = start
        while t < end:
            day, idx = self._key(t)
            boundary = min(self._day_start + (idx + 1) * self.width, self._day_end)
            stop = min(end, boundary)
            key = (labels, (day, idx))
            into[key] = into.get(key, 0.0) + (stop - t)
            t = stop if stop > t else end  # a malformed span never loops

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        pass


def _scopes(labels: Labels) -> Iterator[Labels]:
    tenant, channel, queue = labels
    if queue == NO_LABEL:
        return
    yield (ALL, channel, queue)
    if tenant != NO_LABEL:
        yield labels


def build_intervals(sink: IntervalSink, targets: Targets) -> list[dict[str, Any]]:
    """The report's ``intervals`` rows, per queue (tenant-wide, and per tenant) and interval."""
    width = sink.width
    staffing: dict[tuple[float | None, ...], int | None] = {}  # a tenant's row repeats the queue's

    def need(
        load: float | None, aht: float | None, target: Target, patience: float = 0
    ) -> int | None:
        """kpis.targets.agents_needed, once per distinct question (a tenant's row repeats the
        queue's)."""
        if not load or not aht:
            return None
        key = (load, aht, target.service_level_seconds, target.service_level_goal, patience)
        if key not in staffing:
            staffing[key] = agents_needed(target, load, aht, patience)
        return staffing[key]

    acc: dict[tuple[Labels, Key], dict[str, float]] = {}
    for (name, labels, key), n in sink.counts.items():
        for scope in _scopes(labels):
            d = acc.setdefault((scope, key), {})
            d[name] = d.get(name, 0) + n
    for (name, labels, key), total in sink.sums.items():
        for scope in _scopes(labels):
            d = acc.setdefault((scope, key), {})
            d[name + ".sum"] = d.get(name + ".sum", 0.0) + total
    for what, spans in (("busy", sink.busy), ("staffed", sink.staffed)):
        for (labels, key), seconds in spans.items():
            for scope in _scopes(labels):
                d = acc.setdefault((scope, key), {})
                d[what] = d.get(what, 0.0) + seconds
    any_staffed = bool(sink.staffed)  # the source reports agent states at all
    # offered per (scope, weekday, interval of the day), by week, for the forecast
    history: dict[tuple[Labels, int, int], list[tuple[int, float, float]]] = {}
    today: dict[Labels, list[float]] = {}  # per scope: day, offered and seasonal so far
    rows = []
    for scope, (day, idx) in sorted(acc, key=lambda k: (k[1], k[0])):
        d = acc[(scope, (day, idx))]
        tenant, channel, queue = scope
        target = targets.of(NO_LABEL if tenant == ALL else tenant, channel, queue)
        goal = target.service_level_goal or DEFAULT_GOAL
        threshold = target.service_level_seconds
        offered = int(d.get("queued", 0))
        answered = int(d.get("answered", 0))
        abandoned = int(d.get("abandoned", 0))
        handled = int(d.get("handle_seconds", 0))
        aht = d.get("handle_seconds.sum", 0.0) / handled if handled else None
        asa = d.get("answer_seconds.sum", 0.0) / answered if answered else None
        waited = d.get("answer_seconds.sum", 0.0) + d.get("abandon_wait_seconds.sum", 0.0)
        # exponential patience, censored by answers: mean = all waiting time / abandonments
        # (from fewer than MIN_ABANDONED the estimate is noise, and Erlang A is left out)
        patience = waited / abandoned if abandoned >= MIN_ABANDONED and waited > 0 else None
        load = offered * aht / width if aht else None
        staffed = any_staffed and d.get("staffed", 0.0) > 0
        # elapsed time from local midnight, not wall-clock arithmetic (a DST day)
        midnight = datetime.combine(date.fromordinal(day), time(0), sink.tz).timestamp()
        start = datetime.fromtimestamp(midnight + idx * width, sink.tz)
        weekday = date.fromordinal(day).weekday()
        # the history is keyed by the local wall-clock interval (10:00 is 10:00 on a DST day,
        # though it is the 18th half hour after midnight there, not the 20th)
        past = history.setdefault((scope, weekday, _wall_slot(start, width)), [])
        before = [p for p in past if p[0] < day][-FORECAST_WEEKS:]
        seasonal = sum(p[1] for p in before) / len(before) if before else None
        so_far = today.get(scope)
        if so_far is None or so_far[0] != day:
            so_far = today[scope] = [day, 0.0, 0.0]
        # the interval before, where it tells the level: not the first of the day, and not
        # one the queue is usually quiet in (its opening: then the seasonal figure alone)
        prev: float | None = None
        if idx:
            slot_before = _wall_slot(start - timedelta(seconds=width), width)
            usual = [p for p in history.get((scope, weekday, slot_before), ()) if p[0] < day]
            if any(p[1] for p in usual[-FORECAST_WEEKS:]):
                prev = acc.get((scope, (day, idx - 1)), {}).get("queued", 0)
        forecast = blend(seasonal, so_far[1], so_far[2], prev)
        if seasonal is not None:  # today's volume so far against the same intervals' usual
            so_far[1] += offered
            so_far[2] += seasonal
        f_aht = [p[2] for p in before if p[2] > 0]
        f_load = forecast * (sum(f_aht) / len(f_aht)) / width if forecast and f_aht else None
        past.append((day, float(offered), aht or 0.0))
        required = need(load, aht, target)
        ratios = ratio_values(KPI, d)  # the catalogue's formulas, on the interval's counts
        rows.append({
            "interval": start.isoformat(),
            "tenant": tenant, "channel": channel, "queue": queue,
            "offered": offered, "answered": answered, "abandoned": abandoned,
            "answered_in_sl": int(d.get("answered_in_sl", 0)),
            "service_level": ratios["service_level"],
            "asa_seconds": _round(asa), "aht_seconds": _round(aht),
            "busy_agents": round(d.get("busy", 0.0) / width, 3),
            # from agent states; None where the source has none (not measured)
            "staffed_agents": round(d["staffed"] / width, 3) if staffed else None,
            "occupancy": ratio_value(d.get("busy", 0.0), d["staffed"]) if staffed else None,
            "service_level_seconds": threshold, "service_level_goal": goal,
            "required_agents": required,
            "required_agents_erlang_a": need(load, aht, target, patience) if patience
            else None,
            "staffing_gap": (
                round(required - d["staffed"] / width, 3)
                if staffed and required is not None else None
            ),
            # survey answers about the interval's contacts (on the contact's start, however late)
            "csat": ratios["csat"],
            "forecast_offered": _round(forecast),
            "forecast_required_agents": (
                need(f_load, sum(f_aht) / len(f_aht), target) if f_aht else None
            ),
        })  # fmt: skip
    return rows


BLEND_SEASONAL = 0.5
"""The forecast's weight of the scaled seasonal figure (the rest: the interval before)."""
SCALE_LIMITS = (0.5, 2.0)
"""Today's volume so far scales the seasonal figure, within these bounds."""
SCALE_MIN = 20.0
"""Contacts the same intervals usually have before today's volume may scale (fewer: noise)."""


def blend(seasonal: float | None, today: float, usual: float, prev: float | None) -> float | None:
    """The next interval's offered contacts: the mean of the same weekday and interval of the
    weeks before (``seasonal``), scaled by today's volume so far against what those weeks had
    by now (``today`` / ``usual``, bounded), mixed half and half with the interval before
    (``prev``; None for the first interval of a day). Without history: None (the first week).

    Measured on the real February (docs/kpis.md, scripts/interval_profile.py): it beats both
    naive forecasts, the interval before and the plain seasonal mean."""
    if seasonal is None:
        return None
    scale = 1.0
    if usual >= SCALE_MIN:
        scale = min(max(today / usual, SCALE_LIMITS[0]), SCALE_LIMITS[1])
    scaled = seasonal * scale
    if prev is None:
        return scaled
    return BLEND_SEASONAL * scaled + (1 - BLEND_SEASONAL) * prev


def _wall_slot(start: datetime, width: float) -> int:
    """The interval of the local wall-clock day that ``start`` (local) falls in."""
    return int((start.hour * 3600 + start.minute * 60 + start.second) // width)


def _round(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 3)
