"""Repeat contacts: a customer who comes back within ``repeat_window_seconds`` (7 days).

One-touch resolution looks at a case; a customer who calls about a new case, or on another
channel under another case id, is a repeat the case cannot see. So, per pseudonymous customer
id (the events carry it keyed, never raw; it is never a label or logged), the latest inbound
contact is remembered, and when the same customer starts another inbound contact within the
window of that one's start, that one is a **repeated contact**: it did not settle what the
customer needed. It is counted where it belongs, on its own (final) labels and reasons, when
the repeat starts:

* ``contacts_identified``: inbound contacts with a customer id, counted when they end (the
  denominator; their labels are final then);
* ``contacts_repeated``: those the customer came back after within the window (each at most
  once: the repeat becomes the customer's latest contact); ``repeat_rate`` is their ratio,
  beside ``one_touch_rate``;
* ``reason_repeated`` per reason code of the repeated contact (``reason_repeat_rate`` against
  ``reason_contacts``): which reasons bring customers back.

Memory: one small entry per customer whose contact started within the last one to two
windows, in two generations that rotate every window (no timer per customer), at most
``max_repeat_customers`` (past it a new customer is counted as data quality
``repeat_over_cap``). A log without customer ids, or with the window 0, costs one test per
contact start and end.

Replay only, for now: a live partition sees the cases that hash to it, and a customer's cases
spread over partitions, so a partition's engine does not measure repeats at all (its
``/metrics`` and ``/api/kpis`` have no repeat series rather than partial ones). Live, it needs
a stage keyed by customer, as agent states have theirs (the agents topic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler
from kpis.rules.base import Rule, RuleContext
from kpis.rules.cases import record_labels
from kpis.state import ContactState, RepeatRef


class RepeatRules(Rule):
    name = "repeats"

    def __init__(
        self, ctx: RuleContext, contacts: dict[str, ContactState], *, enabled: bool = True
    ) -> None:
        super().__init__(ctx)
        self.window = ctx.config.repeat_window_seconds if enabled else 0.0
        # Two generations, as the survey references: a reference is in ``recent`` or ``_old``;
        # ``_old`` is dropped a window after it became old, when every reference in it is
        # older than the window. A lookup takes one only within the window of its start.
        self.recent: dict[str, RepeatRef] = {}
        self._old: dict[str, RepeatRef] = {}
        self._rotate_at = -math.inf
        self._contacts = contacts  # the contact rules' (open contacts)

    def handlers(self) -> Mapping[str, Handler]:
        if not self.window:
            return {}
        # contact.ended before the contact rules, which may delete the contact; a start after
        # them, which create it
        return {"contact.ended": self._on_ended}

    def after_contacts(self) -> Mapping[str, Handler]:
        """Handlers to run after the contact rules' (registered by the engine after them)."""
        return {"contact.started": self._on_started} if self.window else {}

    def _known(self, customer: str, ts: float) -> RepeatRef | None:
        ref = self.recent.get(customer)
        if ref is None:
            ref = self._old.get(customer)
        return ref if ref is not None and ts - ref.started <= self.window else None

    def _on_started(self, rec: w.ContactStarted, ts: float) -> None:
        if rec.customer_id is None:
            return
        c = self._contacts.get(rec.contact_id)
        if c is None or not c.inbound or c.started != ts or c.customer_id is None:
            return  # an outbound contact, one not tracked, or a repeated start of the same
        customer = c.customer_id
        if ts >= self._rotate_at:
            self._old, self.recent = self.recent, {}
            self._rotate_at = ts + self.window
        ref = self._known(customer, ts)
        if ref is not None and ref.contact_id != c.contact_id:
            self.sink.count("contacts_repeated", ref.labels, ts, ref.contact_id)
            for code in ref.reasons or ():
                self.sink.count("reason_repeated", (*ref.labels, code), ts, ref.contact_id)
        if customer not in self.recent and len(self.recent) + len(self._old) >= (
            self.config.max_repeat_customers
        ):
            self.sink.count("dq_repeat_over_cap", record_labels(rec), ts)
            return
        self.recent[customer] = RepeatRef(c.contact_id, ts, c.labels)

    def _on_ended(self, rec: w.ContactEnded, ts: float) -> None:
        c = self._contacts.get(rec.contact_id)
        if c is None or not c.inbound or c.ended is not None or c.customer_id is None:
            return
        customer = c.customer_id
        self.sink.count("contacts_identified", c.labels, ts, c.contact_id)
        ref = self.recent.get(customer) or self._old.get(customer)
        if ref is not None and ref.contact_id == c.contact_id:
            ref.labels = c.labels  # final: the queue it went to
            # the contact's own list: the codes of its wrap-ups, still to come, join it
            if c.reasons is None:
                c.reasons = []
            ref.reasons = c.reasons

    def snapshot(self, objects: bool) -> dict[str, Any]:
        refs = {**self._old, **self.recent}
        if objects:
            return {"repeats": refs}
        return {"repeats": {k: v.to_dict() for k, v in refs.items()}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "repeats" in snap:
            # all in the newer generation: kept for another one to two windows at most
            self.recent = {k: RepeatRef.from_dict(v) for k, v in snap["repeats"].items()}
            self._old = {}
            self._rotate_at = -math.inf
