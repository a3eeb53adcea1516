"""Complaints tracked to the end (KS S 1006 다.(1), 8.1, 9): opened under a unique id on the
channel they came in on, acknowledged, escalated, compensated, closed with an outcome,
reopened.

A complaint is counted on (tenant, channel of receipt, category), the COMPLAINT family of
:mod:`kpis.catalogue`; its category is a code of the tenant's bounded list, folded by
:mod:`kpis.rules.labels` (``unknown`` outside the list, ``other`` past the cap). Its opening is
also counted on the contact it came from (``complaints``, KPI family), so complaints per
contact sit beside the other KPIs of a queue.

Times (event time, calendar): to acknowledge, from the opening to its first update (or its
close, if it closes unacknowledged); to close, from the opening (a reopened complaint keeps
the first closing's time and gets a new deadline from the reopen). The targets are the most
specific of ``engine.complaint_targets`` for its tenant, category and severity; one timer per
open complaint, at its next deadline, counts ``complaints_ack_overdue`` and
``complaints_overdue`` (the alert's series) when it passes unmet.

Bad input changes nothing and is counted: an opening with an id already known
(``complaint_id_reused``), any other event for an id not known (``complaint_unknown``), a
complaint past ``max_open_complaints`` (``complaint_over_cap``). Memory: the open complaints,
and the closed ones for ``complaint_reopen_window_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kpis import wire as w
from kpis.config import ComplaintTarget
from kpis.core import Handler, Timer, TimerHandler
from kpis.interfaces import Labels
from kpis.rules.base import TIMER_COMPLAINT, TIMER_COMPLAINT_CLOSED, Rule, RuleContext
from kpis.rules.cases import record_labels
from kpis.state import NO_LABEL, ComplaintState

ComplaintRec = (
    w.ComplaintUpdated
    | w.ComplaintEscalated
    | w.ComplaintCompensated
    | w.ComplaintClosed
    | w.ComplaintReopened
)


def _matches(t: ComplaintTarget, tenant: str, category: str, severity: str | None) -> bool:
    return ((t.tenant is None or t.tenant == tenant)
            and (t.category is None or t.category == category)
            and (t.severity is None or t.severity == severity))  # fmt: skip


def _specificity(t: ComplaintTarget) -> int:
    return (t.tenant is not None) + (t.category is not None) + (t.severity is not None)


def _next_due(k: ComplaintState) -> float | None:
    """The complaint's next deadline still to judge: to acknowledge, then to close."""
    ack = k.ack_deadline if k.acknowledged is None and not k.ack_overdue else None
    close = k.close_deadline if not k.overdue else None
    due = [d for d in (ack, close) if d is not None]
    return min(due) if due else None


class ComplaintRules(Rule):
    name = "complaints"

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.open: dict[str, ComplaintState] = {}
        self.closed: dict[str, ComplaintState] = {}
        # most specific first, then in the configured order (sorted is stable)
        self._targets = sorted(ctx.config.complaint_targets, key=lambda t: -_specificity(t))
        self._open_now: dict[Labels, int] = {}

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "complaint.opened": self._on_opened,
            "complaint.updated": self._on_updated,
            "complaint.escalated": self._on_escalated,
            "complaint.compensated": self._on_compensated,
            "complaint.closed": self._on_closed,
            "complaint.reopened": self._on_reopened,
        }

    def timers(self) -> Mapping[int, TimerHandler]:
        return {TIMER_COMPLAINT: self._due, TIMER_COMPLAINT_CLOSED: self._forget}

    # --- targets and the open gauge --------------------------------------------------------------

    def _target(self, tenant: str, category: str, severity: str | None) -> tuple[float | None, ...]:
        ack = close = None
        for t in self._targets:  # the first match sets each time it names
            if _matches(t, tenant, category, severity):
                ack = t.acknowledge_seconds if ack is None else ack
                close = t.close_seconds if close is None else close
                if ack is not None and close is not None:
                    break
        return ack, close

    def _gauge(self, labels: Labels, ts: float, step: int) -> None:
        n = self._open_now[labels] = self._open_now.get(labels, 0) + step
        self.sink.gauge("complaints_open", labels, ts, n)

    def _schedule(self, k: ComplaintState) -> None:
        due = _next_due(k)
        if due is not None:
            self.schedule(due, TIMER_COMPLAINT, k.complaint_id)

    # --- events ------------------------------------------------------------------------------

    def _on_opened(self, rec: w.ComplaintOpened, ts: float) -> None:
        cid = rec.complaint_id
        if cid in self.open or cid in self.closed:
            self.sink.count("dq_complaint_id_reused", record_labels(rec), ts)
            return
        if len(self.open) >= self.config.max_open_complaints:
            self.sink.count("dq_complaint_over_cap", record_labels(rec), ts)
            return
        tenant = rec.tenant or NO_LABEL
        labels = (tenant, rec.channel, rec.category)
        ack, close = self._target(tenant, rec.category, rec.severity)
        k = ComplaintState(cid, labels, ts, rec.severity, None if ack is None else ts + ack,
                           None if close is None else ts + close, rec.contact_id)  # fmt: skip
        self.open[cid] = k
        count = self.sink.count
        count("complaints", record_labels(rec), ts, rec.contact_id)
        count("complaints_opened", labels, ts, rec.contact_id)
        if rec.remedy is None:
            count("complaints_without_remedy", labels, ts, rec.contact_id)
        if rec.severity is None:
            count("complaints_unrated", labels, ts, rec.contact_id)
        self._gauge(labels, ts, 1)
        self._schedule(k)

    def _known(self, rec: ComplaintRec, ts: float) -> ComplaintState | None:
        k = self.open.get(rec.complaint_id)
        if k is None:
            self.sink.count("dq_complaint_unknown", record_labels(rec), ts)
        return k

    def _acknowledge(self, k: ComplaintState, ts: float) -> None:
        if k.acknowledged is not None:
            return
        k.acknowledged = ts
        self.sink.count("complaints_acknowledged", k.labels, ts, k.evidence)
        self.sink.observe("complaint_ack_seconds", k.labels, ts, ts - k.opened)
        if k.ack_deadline is not None:
            self.sink.count("complaints_ack_targeted", k.labels, ts, k.evidence)
            if ts <= k.ack_deadline:
                self.sink.count("complaints_ack_in_target", k.labels, ts, k.evidence)

    def _on_updated(self, rec: w.ComplaintUpdated, ts: float) -> None:
        k = self._known(rec, ts)
        if k is not None:
            self._acknowledge(k, ts)

    def _on_escalated(self, rec: w.ComplaintEscalated, ts: float) -> None:
        k = self._known(rec, ts)
        if k is not None and not k.escalated:
            k.escalated = True
            self.sink.count("complaints_escalated", k.labels, ts, k.evidence)

    def _on_compensated(self, rec: w.ComplaintCompensated, ts: float) -> None:
        k = self._known(rec, ts)
        if k is not None and not k.compensated and rec.amount_class != "none":
            k.compensated = True
            self.sink.count("complaints_compensated", k.labels, ts, k.evidence)

    def _on_closed(self, rec: w.ComplaintClosed, ts: float) -> None:
        k = self._known(rec, ts)
        if k is None:
            return
        self._acknowledge(k, ts)  # closing is a response too
        count = self.sink.count
        count("complaints_closed", k.labels, ts, k.evidence)
        self.sink.observe("complaint_close_seconds", k.labels, ts, ts - k.opened)
        if k.close_deadline is not None:
            count("complaints_close_targeted", k.labels, ts, k.evidence)
            if ts <= k.close_deadline:
                count("complaints_closed_in_target", k.labels, ts, k.evidence)
        if rec.outcome in ("upheld", "partly_upheld"):
            count("complaints_upheld", k.labels, ts, k.evidence)
        k.closed = ts
        del self.open[k.complaint_id]
        self._gauge(k.labels, ts, -1)
        if self.config.complaint_reopen_window_seconds:
            self.closed[k.complaint_id] = k
            window = self.config.complaint_reopen_window_seconds
            self.schedule(ts + window, TIMER_COMPLAINT_CLOSED, k.complaint_id)

    def _on_reopened(self, rec: w.ComplaintReopened, ts: float) -> None:
        k = self.closed.pop(rec.complaint_id, None)
        if k is None:
            # still open (a reopen of what never closed) or not known: changes nothing
            self.sink.count("dq_complaint_unknown", record_labels(rec), ts)
            return
        self.sink.count("complaints_reopened", k.labels, ts, k.evidence)
        _, close = self._target(k.labels[0], k.labels[2], k.severity)
        k.closed = None
        k.close_deadline = None if close is None else ts + close
        k.overdue = False
        self.open[k.complaint_id] = k
        self._gauge(k.labels, ts, 1)
        self._schedule(k)

    # --- timers ----------------------------------------------------------------------------

    def _due(self, cid: str, when: float) -> None:
        k = self.open.get(cid)
        if k is None:
            return
        if (k.acknowledged is None and not k.ack_overdue and k.ack_deadline is not None
                and when >= k.ack_deadline):  # fmt: skip
            k.ack_overdue = True
            self.sink.count("complaints_ack_overdue", k.labels, when, k.evidence)
        if not k.overdue and k.close_deadline is not None and when >= k.close_deadline:
            k.overdue = True
            self.sink.count("complaints_overdue", k.labels, when, k.evidence)
        self._schedule(k)

    def _forget(self, cid: str, when: float) -> None:
        k = self.closed.get(cid)
        window = self.config.complaint_reopen_window_seconds
        if k is not None and k.closed is not None and when >= k.closed + window:
            del self.closed[cid]

    # --- end and checkpoints -------------------------------------------------------------------

    def finish(self, at: float) -> None:
        for cid in sorted(self.open):
            if self.trace_item is not None:
                self.trace_item(TIMER_COMPLAINT, cid)
            k = self.open[cid]
            self.sink.count("complaints_open_at_end", k.labels, at, k.evidence)

    def pending_timers(self) -> Iterable[Timer]:
        for cid, k in self.open.items():
            due = _next_due(k)
            if due is not None:
                yield (due, TIMER_COMPLAINT, cid)
        window = self.config.complaint_reopen_window_seconds
        for cid, k in self.closed.items():
            assert k.closed is not None
            yield (k.closed + window, TIMER_COMPLAINT_CLOSED, cid)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        if objects:
            return {"complaints": dict(self.open), "complaints_closed": dict(self.closed)}
        return {"complaints": {k: v.to_dict() for k, v in self.open.items()},
                "complaints_closed": {k: v.to_dict() for k, v in self.closed.items()}}  # fmt: skip

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.open = {k: ComplaintState.from_dict(v) for k, v in snap.get("complaints", {}).items()}
        self.closed = {
            k: ComplaintState.from_dict(v) for k, v in snap.get("complaints_closed", {}).items()
        }
        self._open_now = {}
        for k in self.open.values():
            self._open_now[k.labels] = self._open_now.get(k.labels, 0) + 1
