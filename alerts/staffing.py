"""The centre's staffing now and for the next interval, live: per queue, the current 15- or
30-minute interval so far (offered, answered, service level, ASA, AHT, agents staffed), the
agents it needs (Erlang C for the load so far, to the queue's service-level target), and the
next interval's expected offered load from the same weekday and interval of previous weeks (a
seasonal baseline), with the agents that load will need and the gap to the agents staffed now.

:class:`StaffingLogic` is fed by the alert stage (alerts.stage) at each evaluation tick with
the centre's merged counts, agents per queue and state, and contacts waiting: a replay and any
number of live workers feed it the same ticks, so its figures are the same. Its state (the
current interval and the baseline: per queue, weekday and interval of the day, at most
:data:`FORECAST_WEEKS` weeks) is part of the stage's snapshot, saved with the stage.

The replay report's ``intervals`` section (kpis.intervals) is the exact after-the-fact view
(staffed time from each agent's state changes); here staffed agents are sampled at each tick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from typing import Any

from kpis.catalogue import ALL, NO_LABEL
from kpis.interfaces import Labels
from kpis.rules.agents import STAFFED
from kpis.targets import DEFAULT_GOAL, DEFAULT_THRESHOLD, Target, Targets, agents_needed

VIEW_SERIES = frozenset(
    {"queued", "answered", "answered_in_sl", "abandoned", "answer_seconds", "handle_seconds"}
)
"""What the stage's intervals carry for this view (durations as a count and a ``:sum``)."""
FORECAST_WEEKS = 4
MAX_QUEUES = 10_000
"""Queues followed at most (labels are bounded by the sources; past this, new ones are not)."""
_FIELDS = ("queued", "answered", "answered_in_sl", "abandoned", "answer_seconds",
           "answer_seconds:sum", "handle_seconds", "handle_seconds:sum", "staffed")  # fmt: skip


class StaffingLogic:
    def __init__(self, tz: tzinfo, interval_seconds: float, targets: Targets | None) -> None:
        self.tz = tz
        self.width = interval_seconds
        self.targets = targets
        self.start: float | None = None  # the current interval's start
        self.last: float | None = None  # the last tick seen
        self.acc: dict[Labels, list[float]] = {}
        self.staff: dict[Labels, int] = {}  # agents staffed per queue at the last tick
        self.free: dict[Labels, int] = {}  # of them, available (the estimated wait's)
        self.waiting: dict[Labels, int] = {}
        self.known: set[Labels] = set()  # every queue seen: a wallboard lists them all
        # today (local day) per queue: the interval's fields summed since midnight
        self.day: int | None = None
        self.today: dict[Labels, list[float]] = {}
        # (queue, weekday, interval of the day) -> [(day ordinal, offered, handle n, handle s)]
        self.history: dict[tuple[Labels, int, int], list[list[float]]] = {}

    # --- time -----------------------------------------------------------------------------

    def _interval(self, at: float) -> tuple[float, int, int]:
        """(start, day ordinal, slot) of the interval holding ``at``; intervals start at local
        midnight (a daylight-saving day has 46 or 50 half hours), and the slot, which keys the
        baseline, is the interval of the local wall-clock day (10:00 is 10:00 on a DST day)."""
        d = datetime.fromtimestamp(at, self.tz).date()
        midnight = datetime.combine(d, time(0), self.tz).timestamp()
        start = midnight + int((at - midnight) // self.width) * self.width
        local = datetime.fromtimestamp(start, self.tz)
        slot = int((local.hour * 3600 + local.minute * 60) // self.width)
        return start, d.toordinal(), slot

    def on_tick(
        self,
        at: float,
        every: float,
        counts: Mapping[tuple[str, Labels], float],
        staff: Mapping[tuple[Labels, str], int],
        waiting: Mapping[Labels, tuple[int, float]],
    ) -> None:
        """The evaluation interval ``(at - every, at]`` with the centre's ``counts``, and the
        agents and contacts waiting at ``at``."""
        start, day, _ = self._interval(at - every)
        if self.start is not None and start != self.start:
            self._close()
        if day != self.day:
            self.day, self.today = day, {}
        if self.start != start:
            self.start = start
        span = every if self.last is None else min(at - self.last, at - start)
        self.last = at
        # staffed agent-seconds: the agents at this tick, since the last one (a quiet stretch
        # jumped over holds the same agents)
        for labels, n in self.staff.items():
            if n:
                self._row(labels)[8] += n * max(0.0, span)
        self.staff, self.free = {}, {}
        for (labels, state), n in staff.items():
            if labels[2] == NO_LABEL or not (len(self.known) < MAX_QUEUES or labels in self.known):
                continue
            self.known.add(labels)  # a queue with agents, staffed or not, is on the wallboard
            if state in STAFFED:
                self.staff[labels] = self.staff.get(labels, 0) + n
            if state == "available":
                self.free[labels] = self.free.get(labels, 0) + n
        self.waiting = {lb: n for lb, (n, _) in waiting.items() if n}
        for (name, labels), v in counts.items():
            if name in _INDEX and len(labels) == 3 and labels[2] != NO_LABEL:
                i = _INDEX[name]
                self._row(labels)[i] += v
                if labels in self.acc:  # a queue followed (bounded), today too
                    self.today.setdefault(labels, [0.0] * 8)[i] += v

    def _row(self, labels: Labels) -> list[float]:
        row = self.acc.get(labels)
        if row is None:
            row = [0.0] * len(_FIELDS)
            if len(self.known) < MAX_QUEUES or labels in self.known:
                self.acc[labels] = row
                self.known.add(labels)
        return row

    def _close(self) -> None:
        """The interval ended: its offered load joins the baseline of its weekday and slot."""
        assert self.start is not None
        _, day, idx = self._interval(self.start)
        weekday = date.fromordinal(day).weekday()
        for labels, row in self.acc.items():
            if not row[0]:
                continue  # the queue had nothing offered: not a week it was open
            past = self.history.setdefault((labels, weekday, idx), [])
            past.append([day, row[0], row[6], row[7]])
            del past[:-FORECAST_WEEKS]
        self.acc = {}

    # --- the view --------------------------------------------------------------------------

    def _of(self, labels: Labels) -> Target | None:
        tenant, channel, queue = labels
        return self.targets.of(tenant, channel, queue) if self.targets is not None else None

    def _target(self, labels: Labels) -> tuple[float, float]:
        t = self._of(labels)
        threshold = t.service_level_seconds if t is not None else DEFAULT_THRESHOLD
        return threshold, (t.service_level_goal if t is not None else None) or DEFAULT_GOAL

    def _need(self, labels: Labels, load: float, aht: float) -> int | None:
        return agents_needed(self._of(labels), load, aht)

    def forecast(self, labels: Labels) -> tuple[float | None, float | None]:
        """Expected offered contacts and handle time of the next interval: the mean of the same
        weekday and interval of up to FORECAST_WEEKS previous weeks that had the queue open;
        until a queue has such a week (the first week), the same interval of the previous
        days (fewer than a week of history says nothing about weekdays)."""
        if self.start is None:
            return None, None
        _, day, idx = self._interval(self.start + self.width)
        weekday = date.fromordinal(day).weekday()
        past = [p for p in self.history.get((labels, weekday, idx), ()) if p[0] < day]
        if not past:
            days = [p for wd in range(7) for p in self.history.get((labels, wd, idx), ())
                    if p[0] < day]  # fmt: skip
            past = sorted(days)[-FORECAST_WEEKS:]
        if not past:
            return None, None
        offered = sum(p[1] for p in past) / len(past)
        n, s = sum(p[2] for p in past), sum(p[3] for p in past)
        return offered, (s / n if n else None)

    def view(self) -> list[dict[str, Any]]:
        """Per queue (and over tenants, ``*``), the current interval and the next."""
        rows: dict[Labels, list[float]] = {}
        today: dict[Labels, list[float]] = {}
        staff: dict[Labels, int] = {}
        free: dict[Labels, int] = {}
        waiting: dict[Labels, int] = {}
        for labels in self.known | set(self.waiting):
            scopes: list[Labels] = [(ALL, labels[1], labels[2])]
            if labels[0] != NO_LABEL:
                scopes.append(labels)
            for scope in scopes:
                row = rows.setdefault(scope, [0.0] * len(_FIELDS))
                for i, v in enumerate(self.acc.get(labels, ())):
                    row[i] += v
                day_row = today.setdefault(scope, [0.0] * 8)
                for i, v in enumerate(self.today.get(labels, ())):
                    day_row[i] += v
                staff[scope] = staff.get(scope, 0) + self.staff.get(labels, 0)
                free[scope] = free.get(scope, 0) + self.free.get(labels, 0)
                waiting[scope] = waiting.get(scope, 0) + self.waiting.get(labels, 0)
        if self.start is None or self.last is None:
            return []
        elapsed = max(1.0, self.last - self.start)
        out = []
        for labels in sorted(rows):
            row = rows[labels]
            offered, answered, in_sl, abandoned = row[0], row[1], row[2], row[3]
            aht = row[7] / row[6] if row[6] else None
            # no contacts offered yet: none needed (not unknown); else Erlang C on the load so far
            need = (
                0
                if not offered
                else (self._need(labels, offered * aht / elapsed, aht) if aht else None)
            )
            f_offered, f_aht = self.forecast(labels)
            if f_offered is None and labels[0] == ALL:
                f_offered, f_aht = self._sum_forecast(labels)
            f_need = (
                self._need(labels, f_offered * f_aht / self.width, f_aht)
                if f_offered and f_aht else None
            )  # fmt: skip
            now = staff.get(labels, 0)
            tracked = now > 0 or row[8] > 0
            threshold, goal = self._target(labels)
            d = today.get(labels, [0.0] * 8)
            ewt = estimated_wait(
                waiting.get(labels, 0),
                free.get(labels, 0),
                now if tracked else 0,
                aht if aht else (d[7] / d[6] if d[6] else None),
            )
            out.append({
                "tenant": labels[0], "channel": labels[1], "queue": labels[2],
                "interval": datetime.fromtimestamp(self.start, self.tz).isoformat(),
                "offered": int(offered), "answered": int(answered), "abandoned": int(abandoned),
                "service_level": _ratio(in_sl, answered + abandoned),
                "asa_seconds": _round(row[5] / row[4]) if row[4] else None,
                "aht_seconds": _round(aht),
                "contacts_waiting": waiting.get(labels, 0),
                "estimated_wait_seconds": _round(ewt),
                "agents_staffed": now if tracked else None,
                "agents_available": free.get(labels, 0) if tracked else None,
                "staffed_agents_mean": _round(row[8] / elapsed) if tracked else None,
                "required_agents": need,
                "staffing_gap": (need - now) if need is not None and tracked else None,
                "next_interval": datetime.fromtimestamp(self.start + self.width,
                                                        self.tz).isoformat(),
                "forecast_offered": _round(f_offered),
                "forecast_required_agents": f_need,
                "forecast_staffing_gap": (f_need - now) if f_need is not None and tracked
                else None,
                "service_level_seconds": threshold, "service_level_goal": goal,
                # since local midnight: what a wallboard shows against the target
                "today": {
                    "offered": int(d[0]), "answered": int(d[1]), "answered_in_sl": int(d[2]),
                    "abandoned": int(d[3]), "service_level": _ratio(d[2], d[1] + d[3]),
                    "abandonment_rate": _ratio(d[3], d[1] + d[3]),
                    "asa_seconds": _round(d[5] / d[4]) if d[4] else None,
                },
            })  # fmt: skip
        return out

    def _sum_forecast(self, scope: Labels) -> tuple[float | None, float | None]:
        """A queue over tenants: the tenants' forecasts added."""
        offered, n, s = 0.0, 0.0, 0.0
        found = False
        for labels in {k[0] for k in self.history}:
            if labels[1:] == scope[1:] and labels[0] != ALL:
                o, a = self.forecast(labels)
                if o is not None:
                    found = True
                    offered += o
                    if a is not None:
                        n, s = n + o, s + o * a
        return (offered, s / n if n else None) if found else (None, None)

    # --- checkpoints -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "last": self.last,
            "acc": [[list(k), v] for k, v in sorted(self.acc.items())],
            "staff": [[list(k), v] for k, v in sorted(self.staff.items())],
            "free": [[list(k), v] for k, v in sorted(self.free.items())],
            "waiting": [[list(k), v] for k, v in sorted(self.waiting.items())],
            "known": sorted(list(k) for k in self.known),
            "day": self.day,
            "today": [[list(k), v] for k, v in sorted(self.today.items())],
            "history": [[list(k[0]), k[1], k[2], v] for k, v in sorted(self.history.items())],
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.start = snap["start"]
        self.last = snap["last"]
        self.acc = {tuple(k): [float(x) for x in v] for k, v in snap["acc"]}
        self.staff = {tuple(k): int(v) for k, v in snap["staff"]}
        self.free = {tuple(k): int(v) for k, v in snap.get("free", [])}
        self.waiting = {tuple(k): int(v) for k, v in snap["waiting"]}
        self.known = {tuple(k) for k in snap.get("known", [])}
        self.day = snap.get("day")
        self.today = {tuple(k): [float(x) for x in v] for k, v in snap.get("today", [])}
        self.history = {
            (tuple(lb), int(wd), int(idx)): [[float(x) for x in p] for p in v]
            for lb, wd, idx, v in snap["history"]
        }


_INDEX = {name: i for i, name in enumerate(_FIELDS[:8])}


def estimated_wait(waiting: int, available: int, staffed: int, aht: float | None) -> float | None:
    """The wait a contact joining the queue now can expect: the contacts ahead of it that no
    available agent takes at once, each taking the queue's handle time (this interval's, else
    today's) shared over the agents staffed, ``max(0, waiting + 1 - available) * aht /
    staffed`` (the queue-position estimate Google's CCAI Platform documents). None (not measured)
    with no agent staffed, agents not tracked, or no handle time yet."""
    if staffed <= 0 or aht is None:
        return None
    return max(0, waiting + 1 - available) * aht / staffed


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 6) if den else None


def _round(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 3)
