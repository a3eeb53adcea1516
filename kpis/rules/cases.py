"""Cases and resolution: first response, total resolution, one-touch resolution, reopens.

A case is what a customer came about (``case_id``, else the contact's id). Its KPIs belong to
the channel of the contact that opened it and the first queue it entered. Resolution is final
only when the reopen window passes without a reopen (a late reopen starts a new episode);
until then it is *provisional* (:func:`provisional`). A closed case's labels are kept for
``case_idle_timeout_seconds`` after it closed (one small entry a case; the bound is that
setting), so that a late reopen, on whatever channel it arrives, counts its new episode where
the case belongs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler, Timer, TimerHandler
from kpis.interfaces import Labels
from kpis.rules.base import TIMER_CASE, TIMER_CASE_CLOSED, Rule, RuleContext
from kpis.state import NO_LABEL, CaseState, ContactState
from kpis.wire import Rec


def is_one_touch(k: CaseState) -> bool:
    """Resolved in one agent interaction: one contact/agent pair, no transfer, no reopen."""
    return len(k.handled) == 1 and not k.transferred and not k.reopened


def provisional(cases: Iterable[CaseState]) -> dict[Labels, list[float]]:
    """Per (tenant, channel, queue): [resolved, one-touch, resolution seconds] of the cases
    resolved inside their reopen window (what a replay ending now would report)."""
    out: dict[Labels, list[float]] = {}
    for k in cases:
        if k.resolved_at is None:
            continue
        row = out.setdefault(tuple(k.labels), [0.0, 0.0, 0.0])
        row[0] += 1
        if is_one_touch(k):
            row[1] += 1
        row[2] += k.resolved_at - k.started
    return out


def record_labels(rec: Rec) -> tuple[str, str, str]:
    """The (tenant, channel, queue) an event names itself."""
    return (rec.tenant or NO_LABEL, rec.channel, rec.queue or NO_LABEL)


class CaseRules(Rule):
    name = "cases"

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.cases: dict[str, CaseState] = {}
        # closed cases: labels and when they closed, for a late reopen's new episode
        self.closed: dict[str, tuple[tuple[str, str, str], float]] = {}
        # told when a case with reasons is final ("resolved", "unresolved": closed idle) or
        # still open at a replay's end ("open")
        self.on_final: Callable[[CaseState, str, float], None] | None = None

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "case.resolved": self._on_case_resolved,
            "case.reopened": self._on_case_reopened,
        }

    def timers(self) -> Mapping[int, TimerHandler]:
        return {TIMER_CASE: self._case_due, TIMER_CASE_CLOSED: self._closed_due}

    # --- used by the contact rules -----------------------------------------------------------

    def opened_by(self, c: ContactState, ts: float) -> None:
        """A contact started: its case opens, or, if the customer came back about a case marked
        resolved, that case was not resolved."""
        k = self.cases.get(c.case_id)
        if k is None and len(self.cases) >= self.config.max_open_cases:
            self.sink.count("dq_case_over_cap", c.labels, ts)
            return
        if k is None:
            k = CaseState(c.case_id, c.labels, ts, ts, c.inbound, evidence=c.contact_id)
            k.priority = c.priority
            self.sink.count("cases_opened", c.labels, ts)
            self.schedule(ts + self.config.case_idle_timeout_seconds, TIMER_CASE, c.case_id)
            self.cases[c.case_id] = k
        else:
            if k.resolved_at is not None and c.inbound:
                k.resolved_at = None
                k.reopened = True
                self.sink.count("cases_reopened", k.labels, ts, k.evidence)
            elif k.resolved_at is None and not c.inbound and not k.followed_up:
                # KS S 1006 나.(4) 2): the centre called back about a case still unresolved
                k.followed_up = True
                self.sink.count("cases_followed_up", k.labels, ts, k.evidence)
            k.last = ts

    def case_of(self, c: ContactState) -> CaseState:
        """The case of an open contact. If the case was closed while the contact stayed open, a
        new one, not yet kept: the caller keeps it (``self.cases[...] = k``) only if it changes
        something that must be counted later."""
        k = self.cases.get(c.case_id)
        if k is None:
            k = CaseState(c.case_id, c.labels, c.started, c.last, False, responded=True)
            self.schedule(c.last + self.config.case_idle_timeout_seconds, TIMER_CASE, c.case_id)
        return k

    def keep(self, k: CaseState, ts: float) -> None:
        """Keep ``k`` (it changed something to count later), within ``max_open_cases``: past
        it a case not kept yet is counted as case_over_cap and left out (memory follows the
        setting; its contacts still count)."""
        cases = self.cases
        if k.case_id in cases or len(cases) < self.config.max_open_cases:
            cases[k.case_id] = k
        else:
            self.sink.count("dq_case_over_cap", k.labels, ts)

    def first_response(self, c: ContactState, ts: float) -> None:
        k = self.case_of(c)
        if not k.responded:
            k.responded = True
            if k.inbound:
                since = k.first_asked if k.first_asked is not None else k.started
                self.sink.observe("first_response_seconds", k.labels, ts, ts - since)
                if not c.callback:
                    self.sink.observe("first_response_direct_seconds", k.labels, ts, ts - since)
                self._against_target(k, "first_response", since, ts)
            self.keep(k, ts)

    def _against_target(self, k: CaseState, what: str, since: float, ts: float) -> None:
        """A case's first response or resolution against its target (kpis.targets): in
        business time, also observed as such, when the target names a calendar."""
        if not self.targets.active:
            return  # no target rule: no target and no calendar anywhere
        labels = k.labels
        target = self.targets.of(labels[0], labels[1], labels[2], k.priority)
        took = ts - since
        if target.calendar is not None:
            took = target.calendar.seconds(since, ts)
            self.sink.observe(what + "_business_seconds", labels, ts, took)
        limit = target.first_response_seconds if what == "first_response" else (
            target.resolution_seconds)  # fmt: skip
        if limit is not None:
            self.sink.count(what + "_targeted", labels, ts)
            if took <= limit:
                self.sink.count(what + "_met", labels, ts)

    def resolve(self, k: CaseState, ts: float) -> None:
        if k.resolved_at is None or ts > k.resolved_at:
            k.resolved_at = ts
            self.schedule(ts + self.config.reopen_window_seconds, TIMER_CASE, k.case_id)
        self.keep(k, ts)

    # --- events and timers ---------------------------------------------------------------------

    def _on_case_resolved(self, rec: Rec, ts: float) -> None:
        k = self.cases.get(rec.case_id or rec.contact_id)
        if k is None:
            self.sink.count("dq_unmatched_case_resolved", record_labels(rec), ts)
            return
        self.resolve(k, ts)

    def _on_case_reopened(self, rec: w.CaseReopened, ts: float) -> None:
        case_id = rec.case_id or rec.contact_id
        k = self.cases.get(case_id)
        if k is None:
            # Reopened after its reopen window closed (or never seen): a new episode, measured
            # from this reopen, counted where the case belongs (where it was opened) if it is
            # still known; it was already counted as resolved once.
            known = self.closed.pop(case_id, None)
            labels = known[0] if known is not None else record_labels(rec)
            k = CaseState(case_id, labels, ts, ts, False, responded=True, evidence=case_id)
            self.sink.count("cases_reopened_late", labels, ts, rec.contact_id)
            self.schedule(ts + self.config.case_idle_timeout_seconds, TIMER_CASE, case_id)
            self.keep(k, ts)
        elif k.resolved_at is not None:
            k.resolved_at = None
            k.reopened = True
            self.sink.count("cases_reopened", k.labels, ts, k.evidence)
        k.last = ts

    def _case_due(self, case_id: str, when: float) -> None:
        k = self.cases.get(case_id)
        if k is None:
            return
        if k.resolved_at is not None:
            if when >= k.resolved_at + self.config.reopen_window_seconds:
                self._finalize(k)
                self._keep_closed(k, when)
            return
        deadline = k.last + self.config.case_idle_timeout_seconds
        if when < deadline:
            self.schedule(deadline, TIMER_CASE, case_id)
            return
        self.sink.count("cases_unresolved", k.labels, when, k.evidence)
        if not k.followed_up:
            self.sink.count("cases_unresolved_no_follow_up", k.labels, when, k.evidence)
        if k.reasons and self.on_final is not None:
            self.on_final(k, "unresolved", when)
        else:  # no contact of it coded: its cause cannot be analysed (KS S 1006 나.(4) 3))
            self.sink.count("cases_unresolved_uncoded", k.labels, when, k.evidence)
        del self.cases[case_id]
        self._keep_closed(k, when)

    def _keep_closed(self, k: CaseState, when: float) -> None:
        self.closed[k.case_id] = (k.labels, when)
        self.schedule(when + self.config.case_idle_timeout_seconds, TIMER_CASE_CLOSED, k.case_id)

    def _closed_due(self, case_id: str, when: float) -> None:
        entry = self.closed.get(case_id)
        if entry is not None and when >= entry[1] + self.config.case_idle_timeout_seconds:
            del self.closed[case_id]

    def _finalize(self, k: CaseState) -> None:
        resolved = k.resolved_at
        assert resolved is not None
        labels = k.labels
        self.sink.count("resolved", labels, resolved)
        self.sink.observe("resolution_seconds", labels, resolved, resolved - k.started)
        self._against_target(k, "resolution", k.started, resolved)
        if is_one_touch(k):
            self.sink.count("resolved_one_touch", labels, resolved)
        if k.reasons and self.on_final is not None:
            self.on_final(k, "resolved", resolved)
        del self.cases[k.case_id]

    # --- end and checkpoints -------------------------------------------------------------------

    def finish(self, at: float) -> None:
        """Resolved cases still inside their reopen window are reported with the resolution
        they have (the final value as far as the log knows); unresolved ones as open."""
        for key in sorted(self.cases):
            if self.trace_item is not None:
                self.trace_item(TIMER_CASE, key)
            k = self.cases[key]
            if k.resolved_at is not None:
                self._finalize(k)
            else:
                self.sink.count("cases_open_at_end", k.labels, at)
                if k.reasons and self.on_final is not None:
                    self.on_final(k, "open", at)

    def pending_timers(self) -> Iterable[Timer]:
        cfg = self.config
        for case_id, k in self.cases.items():
            if k.resolved_at is not None:
                yield (k.resolved_at + cfg.reopen_window_seconds, TIMER_CASE, case_id)
            else:
                yield (k.last + cfg.case_idle_timeout_seconds, TIMER_CASE, case_id)
        for case_id, (_, closed) in self.closed.items():
            yield (closed + cfg.case_idle_timeout_seconds, TIMER_CASE_CLOSED, case_id)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        closed = {k: [list(lb), t] for k, (lb, t) in self.closed.items()}
        if objects:
            return {"cases": dict(self.cases), "closed_cases": closed}
        return {"cases": {k: v.to_dict() for k, v in self.cases.items()}, "closed_cases": closed}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "cases" in snap:
            self.cases.clear()  # in place: the contact rules hold this mapping
            self.cases.update({k: CaseState.from_dict(v) for k, v in snap["cases"].items()})
        self.closed = {
            k: ((str(lb[0]), str(lb[1]), str(lb[2])), float(t))
            for k, (lb, t) in snap.get("closed_cases", {}).items()
        }
