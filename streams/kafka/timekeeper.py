"""The live time policy: the one place, apart from a partition's own records, that moves a
live partition's watermark.

Invariants:

* A partition's watermark follows the slowest of its input topics (a topic read ahead cannot
  make another's records late): a topic read to its end is idle and holds nothing back.
* On real-time input (records arrive within the allowed lateness of their event time) the
  wall clock also moves caught-up partitions, to now minus the allowed lateness, so deadlines
  pass in quiet hours: anything older is late by definition.
* On historical input (a replay through Kafka, a backlog) the wall clock says nothing about
  event time: when the input has been quiet for ``idle_flush_seconds`` and every owned
  partition has read everything, they are flushed to the centre's latest event time, as a
  replay is at the end of its input; again whenever the centre's clock moved on.

The wall clock is injected (``wall``); event time "now" is read from it through an
:class:`kpis.clock.EventClock` (a simulated clock in the live demo).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from kpis.clock import EventClock, TimePolicy
from streams.kafka.checkpoint import Owned

log = logging.getLogger("cc_monitor.worker")


class LiveClock:
    def __init__(
        self,
        policy: TimePolicy,
        inputs: tuple[str, ...],
        *,
        idle_flush_seconds: float,
        event_clock: EventClock | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.inputs = inputs
        self.idle_flush_seconds = idle_flush_seconds
        self.event_clock = event_clock if event_clock is not None else EventClock()
        self.wall = wall
        self.realtime = False
        self.last_record = wall()
        self.flushed_to: float | None = None

    def event_now(self, wall: float) -> float:
        return self.event_clock.at(wall)

    def record(self, wall: float) -> None:
        """A record was read: the input is not idle."""
        self.last_record = wall
        self.flushed_to = None

    def accepted(self, event_now: float, o: Owned) -> None:
        """An input record was accepted: is the input real time?"""
        self.realtime = self.policy.realtime(event_now, o.pe.max_ts)

    def restored(self) -> None:
        """A partition was restored: its state may hold back what a flush processes."""
        self.flushed_to = None

    def caught_up(self, o: Owned, topics: Mapping[str, bool]) -> None:
        """Which of the partition's input topics have been read to their end (the agents
        topic's time is its sources' marks, not its own end: it is not among ``inputs``)."""
        before = o.pe.engine.watermark
        for topic, done in topics.items():
            if topic in self.inputs:
                o.pe.set_idle(topic, done)
        o.caught_up = all(topics.get(t, False) for t in self.inputs)
        o.dirty = o.dirty or o.pe.engine.watermark != before

    def move(self, owned: Iterable[Owned], centre: float, wall: float) -> None:
        """Move quiet partitions' time (see the module docstring); ``centre``: the latest
        event time of the whole centre (every worker's partitions)."""
        parts = list(owned)
        if self.realtime:
            mark = self.policy.wall(self.event_now(wall))
            for o in parts:
                if o.caught_up and mark > o.pe.engine.watermark:
                    o.pe.engine.advance(mark)
                    o.dirty = True
            return
        idle = wall - self.last_record >= self.idle_flush_seconds
        flushed = self.flushed_to is not None and self.flushed_to >= centre
        if idle and not flushed and all(o.caught_up for o in parts):
            for o in parts:
                o.pe.flush(centre)
                o.dirty = True
            self.flushed_to = centre
            log.info("input idle for %.0f s: flushed to the latest event time",
                     wall - self.last_record)  # fmt: skip
