"""What a KPI rule module is: handlers per event type, timers, and the state it owns.

A rule sees records and event time only (never the wall clock, sockets or Faust) and reports
what it measures to a :class:`kpis.interfaces.KpiSink` by series name; the series themselves are
declared in :mod:`kpis.catalogue`. The engine (:mod:`kpis.engine`) builds the rules, registers
their handlers and timers with the event-time core (:mod:`kpis.core`), and asks each for its
part of a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kpis.config import EngineConfig
from kpis.core import Handler, Timer, TimerHandler
from kpis.interfaces import KpiSink
from kpis.targets import Targets

# Timer kinds, one owner each; the number also orders timers due at the same instant.
TIMER_CALLBACK = 0
TIMER_CONTACT = 1
TIMER_CASE = 2
TIMER_CASE_CLOSED = 3
TIMER_COMPLAINT = 4
TIMER_COMPLAINT_CLOSED = 5

Schedule = Callable[[float, int, str], None]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What every rule is given: thresholds, where observations go, and the core's timers."""

    config: EngineConfig
    sink: KpiSink
    schedule: Schedule
    targets: Targets


class Rule:
    """A KPI domain. Subclasses override what they use; the defaults do nothing."""

    name = "rule"

    # set by an engine given a tracer: which item a replay's end is settling (its counts belong
    # to that item: a contact, a case, a callback), as timers say it
    trace_item: Callable[[int, str], None] | None = None

    def __init__(self, ctx: RuleContext) -> None:
        self.config = ctx.config
        self.sink = ctx.sink
        self.schedule = ctx.schedule
        self.targets = ctx.targets

    def handlers(self) -> Mapping[str, Handler]:
        """Event type -> handler ``(record, event_time)``."""
        return {}

    def timers(self) -> Mapping[int, TimerHandler]:
        """Timer kind -> ``on_due(key, when)``, for the kinds this rule schedules."""
        return {}

    def pending_timers(self) -> Iterable[Timer]:
        """After a restore: one timer per open item at its current due time."""
        return ()

    def finish(self, at: float) -> None:
        """End of a replay at event time ``at``: report what is still open."""

    def snapshot(self, objects: bool) -> dict[str, Any]:
        """This rule's state, under keys of its own (see :meth:`kpis.engine.Engine.snapshot`)."""
        return {}

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Continue from :meth:`snapshot` (keys it did not write may be absent)."""
