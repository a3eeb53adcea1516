"""Callbacks: KS S 1006's "callback within 24 h or at the reserved time".

A request is compliant when a ``reached`` attempt falls in its window (from the request to
``callback_deadline_seconds`` later, or the reserved slot plus or minus the tolerance); its
breach is counted the moment the watermark passes the deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler, Timer, TimerHandler
from kpis.rules.base import TIMER_CALLBACK, Rule, RuleContext
from kpis.rules.cases import record_labels
from kpis.state import CallbackState, ContactState


class CallbackRules(Rule):
    name = "callbacks"

    def __init__(self, ctx: RuleContext, contacts: dict[str, ContactState]) -> None:
        super().__init__(ctx)
        self.callbacks: dict[str, CallbackState] = {}
        self._contacts = contacts  # the contact rules': a request is counted on its queue

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "callback.requested": self._on_requested,
            "callback.attempted": self._on_attempted,
            "callback.cancelled": self._on_cancelled,
        }

    def timers(self) -> Mapping[int, TimerHandler]:
        return {TIMER_CALLBACK: self._due}

    def _on_requested(self, rec: w.CallbackRequested, ts: float) -> None:
        cb_id = rec.callback_id or ""  # required on callback events
        c = self._contacts.get(rec.contact_id)
        labels = c.labels if c is not None else record_labels(rec)
        if c is not None:
            c.last = ts
        if cb_id in self.callbacks:
            self.sink.count("dq_callback_requested_twice", labels, ts)
            return
        if len(self.callbacks) >= self.config.max_open_callbacks:
            self.sink.count("dq_callback_over_cap", labels, ts)
            return
        reserved = None if rec.reserved_for is None else rec.reserved_for.timestamp()
        if reserved is not None:
            tol = self.config.callback_reserved_tolerance_seconds
            start, deadline = reserved - tol, reserved + tol
        else:
            start, deadline = ts, self._deadline(ts)
        self.callbacks[cb_id] = CallbackState(cb_id, labels, ts, start, deadline, rec.contact_id)
        self.sink.count("callbacks_requested", labels, ts)
        self.schedule(deadline, TIMER_CALLBACK, cb_id)

    def _deadline(self, ts: float) -> float:
        """24 h on the wall clock (KS S 1006), or of business hours with ``callback_calendar``."""
        within = self.config.callback_deadline_seconds
        name = self.config.callback_calendar
        if name is not None:
            deadline = self.targets.clocks[name].add(ts, within)
            if deadline != float("inf"):
                return deadline
        return ts + within

    def _on_attempted(self, rec: w.CallbackAttempted, ts: float) -> None:
        cb = self.callbacks.get(rec.callback_id or "")
        if cb is None:
            self.sink.count("dq_unmatched_callback_attempted", record_labels(rec), ts)
            return
        self.sink.count("callback_attempts", cb.labels, ts)
        if rec.outcome == "reached" and cb.window_start <= ts <= cb.deadline:
            self.sink.count("callbacks_compliant", cb.labels, ts)
            self.sink.observe("callback_delay_seconds", cb.labels, ts, ts - cb.requested)
            del self.callbacks[cb.callback_id]

    def _on_cancelled(self, rec: w.CallbackCancelled, ts: float) -> None:
        cb = self.callbacks.pop(rec.callback_id or "", None)
        if cb is not None:
            self.sink.count("callbacks_cancelled", cb.labels, ts)

    def _due(self, cb_id: str, when: float) -> None:
        cb = self.callbacks.get(cb_id)
        if cb is None or when < cb.deadline:
            return
        self.sink.count("callbacks_breached", cb.labels, cb.deadline, cb.contact_id)
        del self.callbacks[cb_id]

    def finish(self, at: float) -> None:
        for key in sorted(self.callbacks):
            if self.trace_item is not None:
                self.trace_item(TIMER_CALLBACK, key)
            self.sink.count("callbacks_pending", self.callbacks[key].labels, at)

    def pending_timers(self) -> Iterable[Timer]:
        for cb_id, cb in self.callbacks.items():
            yield (cb.deadline, TIMER_CALLBACK, cb_id)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        if objects:
            return {"callbacks": dict(self.callbacks)}
        return {"callbacks": {k: v.to_dict() for k, v in self.callbacks.items()}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "callbacks" in snap:
            self.callbacks = {k: CallbackState.from_dict(v) for k, v in snap["callbacks"].items()}
