"""Alert rules over a centre whose events are split across engines (one per Kafka partition).

Rules are about a centre, not a partition: abandonment per queue, silence per channel, a
component's status. Live workers run one engine per input partition, each with its own
watermark, so rule evaluation is split in two pure halves:

* :class:`IntervalRecorder`, one per engine (a :class:`kpis.interfaces.KpiSink` and tick
  listener): it sums the observations the rules read over each evaluation interval, in the
  engine's processing order, and closes an :class:`Interval` at each tick ``B`` with the queue
  view at ``B``. Its state goes into the partition's checkpoint.
* :class:`AlertStage`, one per centre: it collects the partitions' intervals and evaluates tick
  ``B`` once every partition has passed ``B`` (its watermark is beyond ``B``: nothing more can
  arrive for it), feeding :class:`alerts.evaluator.AlertLogic` the merged interval.

Invariant: the merge does not depend on how cases are spread over engines. Counts add; the
queue view adds waiting contacts and takes the oldest wait; evidence ids and status changes are
applied in (event time, value) order. A replay (one engine) therefore gives the same alerts, with
the same start and end times, as any number of live partitions, and a partition that is
restored from a checkpoint and processes its records again produces the same intervals, which
the stage takes once (by partition and ``B``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any

from alerts.evaluator import AlertLogic, AlertSink, QueueView
from alerts.rules import RulesConfig
from alerts.staffing import VIEW_SERIES, StaffingLogic
from kpis.interfaces import Labels
from kpis.targets import Targets

if TYPE_CHECKING:
    from kpis.engine import Engine
    from kpis.rules.agents import AgentRules


@dataclass
class Interval:
    """What one engine saw of the rules' series in the evaluation interval ending at ``at``."""

    at: float
    partition: int = 0
    counts: dict[tuple[str, Labels], float] = field(default_factory=dict)
    evidence: list[tuple[float, str, Labels, str]] = field(default_factory=list)
    status: list[tuple[float, Labels, float]] = field(default_factory=list)
    waiting: dict[Labels, tuple[int, float]] = field(default_factory=dict)
    # A quiet run: every tick after ``quiet_after`` up to ``at`` passed with nothing processed
    # (the engine jumped over empty event time). ``entered``: contacts waiting throughout and
    # the oldest one's queue entry, per queue, so the view at any tick of the run is exact.
    quiet_after: float | None = None
    entered: dict[Labels, tuple[int, float]] = field(default_factory=dict)
    # agents per queue and state at ``at`` (an agent engine's; the same through a quiet run)
    staff: dict[tuple[Labels, str], int] = field(default_factory=dict)
    # the plain form of a closed interval, kept: live workers publish it every tick until the
    # centre has evaluated it (a closed interval never changes)
    _plain: list[Any] | None = field(default=None, compare=False, repr=False)

    def frozen(self) -> list[Any]:
        """:meth:`to_list` of a closed interval, computed once."""
        if self._plain is None:
            self._plain = self.to_list()
        return self._plain

    def to_list(self) -> list[Any]:
        plain = [
            self.at,
            self.partition,
            [[s, list(lb), n] for (s, lb), n in sorted(self.counts.items())],
            [[ts, s, list(lb), ev] for ts, s, lb, ev in self.evidence],
            [[ts, list(lb), v] for ts, lb, v in self.status],
            [[list(lb), n, age] for lb, (n, age) in sorted(self.waiting.items())],
        ]
        if self.quiet_after is not None or self.staff:
            plain.append(self.quiet_after)
            plain.append([[list(lb), n, e] for lb, (n, e) in sorted(self.entered.items())])
        if self.staff:
            plain.append([[list(lb), st, n] for (lb, st), n in sorted(self.staff.items())])
        return plain

    @classmethod
    def from_list(cls, data: list[Any]) -> Interval:
        at, partition, counts, evidence, status, waiting = data[:6]
        interval = cls(
            float(at),
            int(partition),
            {(str(s), tuple(lb)): float(n) for s, lb, n in counts},
            [(float(ts), str(s), tuple(lb), str(ev)) for ts, s, lb, ev in evidence],
            [(float(ts), tuple(lb), float(v)) for ts, lb, v in status],
            {tuple(lb): (int(n), float(age)) for lb, n, age in waiting},
        )
        if len(data) > 6 and data[6] is not None:  # a quiet run
            interval.quiet_after = float(data[6])
            interval.entered = {tuple(lb): (int(n), float(e)) for lb, n, e in data[7]}
        if len(data) > 8:
            interval.staff = {(tuple(lb), str(st)): int(n) for lb, st, n in data[8]}
        return interval

    def view_at(self, at: float) -> dict[Labels, tuple[int, float]]:
        """A quiet run's queue view at one of its ticks: as the engine's
        (:meth:`kpis.engine.Engine.waiting_now`) would have given it there."""
        return {lb: (n, max(0.0, at - e)) for lb, (n, e) in self.entered.items()}


class IntervalRecorder:
    """Per engine: the rules' observations summed per evaluation interval (see module doc)."""

    def __init__(
        self, series: frozenset[str], partition: int = 0, queue_view: QueueView | None = None
    ) -> None:
        self.series = series
        self.partition = partition
        self.queue_view = queue_view
        # contacts waiting and the oldest entry per queue (kpis.engine.Engine.waiting_entries),
        # for quiet runs
        self.queue_entries: Callable[[], dict[Labels, tuple[int, float]]] | None = None
        # agents per (queue, state) now (kpis.rules.agents.AgentRules.in_state), for staffing rules
        self.staff_view: Callable[[], dict[tuple[Labels, str], int]] | None = None
        self.closed: list[Interval] = []
        self._cur = Interval(0.0, partition)
        self.last_tick: float | None = None

    def watch(self, queues: Engine | None = None, agents: AgentRules | None = None) -> None:
        """What the recorder reads of the engine it is the sink of (so given once that engine
        is built): its queues' waiting contacts, and its agents per queue and state."""
        if queues is not None:
            self.queue_view = queues.waiting_now
            self.queue_entries = queues.waiting_entries
        if agents is not None:
            self.staff_view = lambda: agents.in_state

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        # behind a kpis.interfaces.FanOut that passes only ``series``: no filter on this hot path
        counts = self._cur.counts
        key = (name, labels)
        counts[key] = counts.get(key, 0.0) + 1.0
        if evidence is not None:
            self._cur.evidence.append((ts, name, labels, evidence))

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        # durations a rule reads (staffing: handle time): how many, and their sum
        counts = self._cur.counts
        key = (name, labels)
        counts[key] = counts.get(key, 0.0) + 1.0
        key = (name + ":sum", labels)
        counts[key] = counts.get(key, 0.0) + value

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if name == "system_status":
            self._cur.status.append((ts, labels, value))

    def on_tick(self, at: float, last: float | None = None) -> None:
        """Close the interval ending at tick ``at``; with ``last``, every further tick up to
        ``last`` passed with nothing processed: one quiet run stands for all of them, so a
        jump over empty event time costs one object, not one per tick."""
        cur = self._cur
        cur.at = at
        if self.queue_view is not None:
            cur.waiting = self.queue_view(at)
        staff = self._staff()
        cur.staff = staff
        self.closed.append(cur)
        self.last_tick = at
        self._cur = Interval(0.0, self.partition)
        if last is not None and last > at:
            entries = self.queue_entries() if self.queue_entries is not None else {}
            self.closed.append(
                Interval(last, self.partition, quiet_after=at, entered=entries, staff=staff)
            )
            self.last_tick = last

    def _staff(self) -> dict[tuple[Labels, str], int]:
        if self.staff_view is None:
            return {}
        return {k: n for k, n in self.staff_view().items() if n}

    def take(self) -> list[Interval]:
        """The intervals closed since the last call."""
        out, self.closed = self.closed, []
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "current": self._cur.to_list(),
            "closed": [i.frozen() for i in self.closed],
            "last_tick": self.last_tick,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self._cur = Interval.from_list(snap["current"])
        self._cur.partition = self.partition
        self.closed = [Interval.from_list(i) for i in snap["closed"]]
        self.last_tick = snap.get("last_tick")


class _Nowhere:
    def alert(self, event: Any) -> None:
        return None


def series_of(config: RulesConfig) -> frozenset[str]:
    """The engine series the rules of ``config`` read (what a recorder keeps)."""
    return AlertLogic(config, _Nowhere()).series | VIEW_SERIES


def merged_waiting(intervals: Iterable[Interval]) -> dict[Labels, tuple[int, float]]:
    """The centre's queue view from the partitions' (waiting contacts add, the oldest wait is
    the longest of any partition)."""
    waiting: dict[Labels, tuple[int, float]] = {}
    for i in intervals:
        for labels, (nw, age) in i.waiting.items():
            cur = waiting.get(labels)
            waiting[labels] = (nw, age) if cur is None else (cur[0] + nw, max(cur[1], age))
    return waiting


def merged_staff(
    parts: Iterable[Mapping[tuple[Labels, str], int]],
) -> dict[tuple[Labels, str], int]:
    """The centre's agents per queue and state: each agent engine holds its own agents."""
    staff: dict[tuple[Labels, str], int] = {}
    for one in parts:
        for key, n in one.items():
            staff[key] = staff.get(key, 0) + n
    return staff


def passed(watermark: float, every: float) -> float:
    """The last tick an engine at ``watermark`` has closed (or would have, had it seen events):
    ticks fire once the watermark is beyond them, so every multiple of ``every`` below it."""
    if watermark == -math.inf:
        return -math.inf
    return (math.ceil(watermark / every) - 1) * every


class AlertStage:
    """Per centre: merges the partitions' intervals and evaluates each tick once all partitions
    have passed it (see module doc). ``partitions``: every partition of the input topics."""

    def __init__(
        self,
        config: RulesConfig,
        sink: AlertSink,
        partitions: Iterable[int] = (0,),
        targets: Targets | None = None,
        tz: tzinfo = UTC,
        interval_seconds: float = 1800.0,
        staff_from: Iterable[int] | None = None,
        staffing_view: bool = True,
    ) -> None:
        """``tz`` and ``interval_seconds``: the zone and width of the staffing view's intervals
        (alerts.staffing). ``staff_from``: the partitions whose engines keep agent states (all
        by default); the staffing rules wait until each has reported its agents.
        ``staffing_view=False``: no staffing view (a replay's report does not show it: it
        costs per tick and its series cost per contact)."""
        self.config = config
        self.every = config.evaluation_interval_seconds
        self.partitions = frozenset(partitions)
        self.staff_from = frozenset(staff_from) if staff_from is not None else self.partitions
        self.logic = AlertLogic(config, sink, self._view, targets, self._staff_view)
        self.staffing = StaffingLogic(tz, interval_seconds, targets) if staffing_view else None
        self.series = self.logic.series | (VIEW_SERIES if staffing_view else frozenset())
        self.evaluated_to: float | None = None
        self.jump = True  # over a quiet stretch once steady (False: evaluate every tick)
        self._pending: dict[float, dict[int, Interval]] = {}
        # quiet runs per partition, by their last tick (see Interval.quiet_after)
        self._quiet: dict[int, dict[float, Interval]] = {}
        self._quiet_ends: dict[int, list[float]] = {}  # sorted keys of _quiet, per partition
        self._waiting: dict[Labels, tuple[int, float]] = {}
        self._staff: dict[tuple[Labels, str], int] = {}
        # each partition's agents at the last tick it had an interval for: agents are a state,
        # so a partition without an interval at a tick still has the agents it had
        self._staff_of: dict[int, dict[tuple[Labels, str], int]] = {}

    def _view(self, at: float) -> dict[Labels, tuple[int, float]]:
        return self._waiting

    def _staff_view(self) -> dict[tuple[Labels, str], int] | None:
        """None until every agent engine's agents are known (a stage that took over without
        its predecessor's state): no staffing rule decides on part of the agents."""
        if not self.staff_from <= self._staff_of.keys():
            return None
        return self._staff

    def recorder(self, partition: int, queue_view: QueueView | None = None) -> IntervalRecorder:
        return IntervalRecorder(self.series, partition, queue_view)

    def offer(self, intervals: Iterable[Interval]) -> None:
        """Intervals from any partition, in any order, repeated or not."""
        done = self.evaluated_to
        for i in intervals:
            if done is not None and i.at <= done:
                continue  # evaluated already (a partition restored from an older checkpoint)
            if i.quiet_after is not None:
                self._quiet.setdefault(i.partition, {})[i.at] = i
            else:
                self._pending.setdefault(i.at, {})[i.partition] = i

    def offer_plain(self, plain: Iterable[list[Any]]) -> None:
        """Intervals in their plain form (:meth:`Interval.to_list`), as published: the same
        ones come again every tick until evaluated, and only new ones are decoded."""
        done = self.evaluated_to
        pending = self._pending
        quiet = self._quiet
        for data in plain:
            at, partition = data[0], data[1]
            if done is not None and at <= done:
                continue
            if len(data) > 6 and data[6] is not None:  # a quiet run
                if at not in quiet.get(partition, ()):
                    quiet.setdefault(partition, {})[at] = Interval.from_list(data)
            elif partition not in pending.get(at, ()):
                pending.setdefault(at, {})[partition] = Interval.from_list(data)

    def release(self, progress: Mapping[int, float], limit: int | None = None) -> int:
        """Evaluate every tick all partitions have passed (``progress``: partition -> last
        closed tick, see :func:`passed`); returns how many were evaluated. ``limit``: at most
        this many now (a live worker's event loop must not stop for a backlog's days of
        ticks); the next call goes on from the last one evaluated, with the same results."""
        if any(p not in progress for p in self.partitions):
            return 0
        upto = min(progress[p] for p in self.partitions)
        if self.evaluated_to is not None:
            start = self.evaluated_to + self.every
        elif self._pending:
            start = min(self._pending)
        else:
            return 0
        every = self.every
        n = 0
        k = 0  # b = start + k * every: multiples, not running sums (no float drift)
        b = start
        while b <= upto:
            if limit is not None and n >= limit:
                break
            parts = self._pending.pop(b, None)
            if parts is not None:
                self._evaluate(b, {**self._quiet_at(b), **parts})
                self.evaluated_to = b
                n += 1
                k += 1
                b = start + k * every
                continue
            # Nothing happened at b in any partition: a quiet stretch up to the next tick that
            # has an interval. Evaluate tick by tick until an empty tick would change nothing
            # (AlertLogic.steady), then jump to the stretch's end or to the tick before a
            # queue's oldest wait crosses a threshold, whichever is first: the same alerts,
            # with the same times, as evaluating every tick, at a cost that follows the rules'
            # windows, not the length of the gap.
            nxt = min(self._pending, default=math.inf)
            stop = min(upto, nxt)
            end_k = max(k, math.floor((stop - start) / every))
            while end_k > k and (start + end_k * every > upto or start + end_k * every >= nxt):
                end_k -= 1
            while True:
                self._evaluate(b, self._quiet_at(b))
                self.evaluated_to = b
                n += 1
                if k >= end_k or (limit is not None and n >= limit):
                    break
                if self.jump and self.logic.steady():
                    target = self._before_wait_flip(start, k, end_k)
                    if target > k + 1:
                        k = target
                        b = start + k * every
                        continue
                k += 1
                b = start + k * every
            k += 1
            b = start + k * every
        self._drop_quiet()
        return n

    def _before_wait_flip(self, start: float, k: int, end_k: int) -> int:
        """The last tick index up to ``end_k`` before a queue's oldest wait makes an
        oldest-wait condition change (ages grow through a quiet stretch; nothing else does)."""
        every = self.every
        logic = self.logic

        def held(j: int) -> frozenset[tuple[str, Labels]]:
            at = start + j * every
            return logic.wait_conditions(merged_waiting(self._quiet_at(at).values()))

        now = held(k)
        if held(end_k) == now:
            return end_k
        lo, hi = k, end_k  # held(lo) == now != held(hi): conditions only turn true
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if held(mid) == now:
                lo = mid
            else:
                hi = mid
        return lo

    def _quiet_at(self, at: float) -> dict[int, Interval]:
        """Empty intervals at tick ``at`` of the partitions in a quiet run there. A partition's
        runs do not overlap: the one that can hold ``at`` is the first ending at or after it
        (found by bisection: an engine that is often quiet has many runs pending)."""
        out: dict[int, Interval] = {}
        for partition, runs in self._quiet.items():
            if not runs:
                continue
            ends = self._quiet_ends.get(partition)
            if ends is None or len(ends) != len(runs):
                ends = self._quiet_ends[partition] = sorted(runs)
            k = bisect.bisect_left(ends, at)
            if k == len(ends):
                continue
            run = runs.get(ends[k])
            if run is None:  # a run replaced since the keys were sorted
                ends = self._quiet_ends[partition] = sorted(runs)
                run = runs[ends[k]] if k < len(ends) else None
                if run is None:
                    continue
            after = run.quiet_after
            if after is not None and after < at <= run.at:
                out[partition] = Interval(at, partition, waiting=run.view_at(at), staff=run.staff)
        return out

    def _drop_quiet(self) -> None:
        done = self.evaluated_to
        if done is None:
            return
        for partition, runs in self._quiet.items():
            gone = [t for t in runs if t <= done]
            for last in gone:
                del runs[last]
            if gone:
                self._quiet_ends.pop(partition, None)

    def _evaluate(self, at: float, parts: dict[int, Interval]) -> None:
        logic = self.logic
        if len(parts) == 1:
            # one engine (a replay, a single partition): its interval is the merge
            (one,) = parts.values()
            counts = one.counts
            evidence = one.evidence
            status = one.status
            self._waiting = one.waiting
            self._staff_of[one.partition] = one.staff
            self._staff = merged_staff(self._staff_of.values())
        else:
            intervals = [parts[p] for p in sorted(parts)]
            counts = {}
            for i in intervals:
                for k, n in i.counts.items():
                    counts[k] = counts.get(k, 0.0) + n
            evidence = [e for i in intervals for e in i.evidence]
            status = [s for i in intervals for s in i.status]
            waiting = merged_waiting(intervals)
            self._waiting = waiting
            for i in intervals:
                self._staff_of[i.partition] = i.staff
            self._staff = merged_staff(self._staff_of.values())
        if counts:
            for (name, labels), n in sorted(counts.items()):
                logic.add(name, labels, n)
        if evidence:
            for _, name, labels, ev in sorted(evidence):
                logic.note(name, labels, ev)
        if status:
            for ts, labels, value in sorted(status):
                logic.gauge("system_status", labels, ts, value)
        logic.on_tick(at)
        if self.staffing is not None:
            self.staffing.on_tick(at, self.every, counts, self._staff, self._waiting)

    def snapshot(self) -> dict[str, Any]:
        return {
            "staff": [
                [p, [[list(lb), st, n] for (lb, st), n in sorted(staff.items())]]
                for p, staff in sorted(self._staff_of.items())
            ],
            **({"staffing": self.staffing.snapshot()} if self.staffing is not None else {}),
            "logic": self.logic.snapshot(),
            "evaluated_to": self.evaluated_to,
            "pending": [i.to_list() for i in self.pending()],
        }

    def pending(self) -> list[Interval]:
        """Intervals (and quiet runs) offered and not evaluated yet, by tick and partition."""
        real = [i for _, ps in sorted(self._pending.items()) for _, i in sorted(ps.items())]
        quiet = [r for _, runs in sorted(self._quiet.items()) for _, r in sorted(runs.items())]
        return real + quiet

    def restore(self, snap: dict[str, Any]) -> None:
        self.logic.restore(snap["logic"])
        if "staffing" in snap and self.staffing is not None:
            self.staffing.restore(snap["staffing"])
        self._staff_of = {
            int(p): {(tuple(lb), str(st)): int(n) for lb, st, n in staff}
            for p, staff in snap.get("staff", [])
        }
        self.evaluated_to = snap["evaluated_to"]
        self._pending = {}
        self._quiet = {}
        self._quiet_ends = {}
        self.offer(Interval.from_list(i) for i in snap["pending"])
