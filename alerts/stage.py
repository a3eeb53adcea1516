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

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.evaluator import AlertLogic, AlertSink, QueueView
from alerts.rules import RulesConfig
from kpis.interfaces import Labels


@dataclass
class Interval:
    """What one engine saw of the rules' series in the evaluation interval ending at ``at``."""

    at: float
    partition: int = 0
    counts: dict[tuple[str, Labels], float] = field(default_factory=dict)
    evidence: list[tuple[float, str, Labels, str]] = field(default_factory=list)
    status: list[tuple[float, Labels, float]] = field(default_factory=list)
    waiting: dict[Labels, tuple[int, float]] = field(default_factory=dict)
    # the plain form of a closed interval, kept: live workers publish it every tick until the
    # centre has evaluated it (a closed interval never changes)
    _plain: list[Any] | None = field(default=None, compare=False, repr=False)

    def frozen(self) -> list[Any]:
        """:meth:`to_list` of a closed interval, computed once."""
        if self._plain is None:
            self._plain = self.to_list()
        return self._plain

    def to_list(self) -> list[Any]:
        return [
            self.at,
            self.partition,
            [[s, list(lb), n] for (s, lb), n in sorted(self.counts.items())],
            [[ts, s, list(lb), ev] for ts, s, lb, ev in self.evidence],
            [[ts, list(lb), v] for ts, lb, v in self.status],
            [[list(lb), n, age] for lb, (n, age) in sorted(self.waiting.items())],
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> Interval:
        at, partition, counts, evidence, status, waiting = data
        return cls(
            float(at),
            int(partition),
            {(str(s), tuple(lb)): float(n) for s, lb, n in counts},
            [(float(ts), str(s), tuple(lb), str(ev)) for ts, s, lb, ev in evidence],
            [(float(ts), tuple(lb), float(v)) for ts, lb, v in status],
            {tuple(lb): (int(n), float(age)) for lb, n, age in waiting},
        )


class IntervalRecorder:
    """Per engine: the rules' observations summed per evaluation interval (see module doc)."""

    def __init__(
        self, series: frozenset[str], partition: int = 0, queue_view: QueueView | None = None
    ) -> None:
        self.series = series
        self.partition = partition
        self.queue_view = queue_view
        self.closed: list[Interval] = []
        self._cur = Interval(0.0, partition)
        self.last_tick: float | None = None

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        # behind a kpis.interfaces.Tee that passes only ``series``: no filter on this hot path
        counts = self._cur.counts
        key = (name, labels)
        counts[key] = counts.get(key, 0.0) + 1.0
        if evidence is not None:
            self._cur.evidence.append((ts, name, labels, evidence))

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        return None

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if name == "system_status":
            self._cur.status.append((ts, labels, value))

    def on_tick(self, at: float) -> None:
        cur = self._cur
        cur.at = at
        if self.queue_view is not None:
            cur.waiting = self.queue_view(at)
        self.closed.append(cur)
        self.last_tick = at
        self._cur = Interval(0.0, self.partition)

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
    return AlertLogic(config, _Nowhere()).series


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
        self, config: RulesConfig, sink: AlertSink, partitions: Iterable[int] = (0,)
    ) -> None:
        self.config = config
        self.every = config.evaluation_interval_seconds
        self.partitions = frozenset(partitions)
        self.logic = AlertLogic(config, sink, self._view)
        self.series = self.logic.series
        self.evaluated_to: float | None = None
        self._pending: dict[float, dict[int, Interval]] = {}
        self._waiting: dict[Labels, tuple[int, float]] = {}

    def _view(self, at: float) -> dict[Labels, tuple[int, float]]:
        return self._waiting

    def recorder(self, partition: int, queue_view: QueueView | None = None) -> IntervalRecorder:
        return IntervalRecorder(self.series, partition, queue_view)

    def offer(self, intervals: Iterable[Interval]) -> None:
        """Intervals from any partition, in any order, repeated or not."""
        done = self.evaluated_to
        for i in intervals:
            if done is not None and i.at <= done:
                continue  # evaluated already (a partition restored from an older checkpoint)
            self._pending.setdefault(i.at, {})[i.partition] = i

    def offer_plain(self, plain: Iterable[list[Any]]) -> None:
        """Intervals in their plain form (:meth:`Interval.to_list`), as published: the same
        ones come again every tick until evaluated, and only new ones are decoded."""
        done = self.evaluated_to
        pending = self._pending
        for data in plain:
            at, partition = data[0], data[1]
            if (done is not None and at <= done) or partition in pending.get(at, ()):
                continue
            pending.setdefault(at, {})[partition] = Interval.from_list(data)

    def release(self, progress: Mapping[int, float]) -> int:
        """Evaluate every tick all partitions have passed (``progress``: partition -> last
        closed tick, see :func:`passed`); returns how many were evaluated."""
        if any(p not in progress for p in self.partitions):
            return 0
        upto = min(progress[p] for p in self.partitions)
        if self.evaluated_to is not None:
            start = self.evaluated_to + self.every
        elif self._pending:
            start = min(self._pending)
        else:
            return 0
        n = 0
        b = start
        while b <= upto:
            self._evaluate(b, self._pending.pop(b, {}))
            self.evaluated_to = b
            n += 1
            b = start + n * self.every  # multiples, not running sums: no float drift
        return n

    def _evaluate(self, at: float, parts: dict[int, Interval]) -> None:
        logic = self.logic
        if len(parts) == 1:
            # one engine (a replay, a single partition): its interval is the merge
            (one,) = parts.values()
            counts = one.counts
            evidence = one.evidence
            status = one.status
            self._waiting = one.waiting
        else:
            intervals = [parts[p] for p in sorted(parts)]
            counts = {}
            for i in intervals:
                for k, n in i.counts.items():
                    counts[k] = counts.get(k, 0.0) + n
            evidence = [e for i in intervals for e in i.evidence]
            status = [s for i in intervals for s in i.status]
            waiting: dict[Labels, tuple[int, float]] = {}
            for i in intervals:
                for labels, (nw, age) in i.waiting.items():
                    cur = waiting.get(labels)
                    waiting[labels] = (nw, age) if cur is None else (cur[0] + nw, max(cur[1], age))
            self._waiting = waiting
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

    def snapshot(self) -> dict[str, Any]:
        return {
            "logic": self.logic.snapshot(),
            "evaluated_to": self.evaluated_to,
            "pending": [i.to_list() for i in self.pending()],
        }

    def pending(self) -> list[Interval]:
        """Intervals offered and not evaluated yet, by tick and partition."""
        return [i for _, ps in sorted(self._pending.items()) for _, i in sorted(ps.items())]

    def restore(self, snap: dict[str, Any]) -> None:
        self.logic.restore(snap["logic"])
        self.evaluated_to = snap["evaluated_to"]
        self._pending = {}
        self.offer(Interval.from_list(i) for i in snap["pending"])
