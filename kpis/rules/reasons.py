"""Contact reasons (wrap-up codes): what contacts are about, and what became of their cases.

A contact's reasons are the codes of its ``contact.ended`` and its ``wrapup.ended`` events
together, each once (at most :data:`MAX_PER_CONTACT`), as :mod:`kpis.rules.labels` kept them:
a code outside its tenant's configured list (``engine.contact_reasons``) is ``unknown``, and
past a tenant's first ``label_caps.reasons_per_tenant`` codes (without a list) ``other``, so
the reason label stays bounded whatever the sources send.

What is counted, on the contact's labels and a reason (the REASON family, kpis.catalogue):

* ``reason_contacts`` when a code is first seen on a contact (a contact with two reasons is in
  both rows), and ``contacts_coded`` (KPI family) at its first code: a reason's share is
  ``reason_contacts / contacts_coded``;
* ``reason_handle_seconds`` once the contact is done (ended, every agent part wrapped up, or
  closed by a timeout): its whole handle time, in each of its reasons' rows;
* on the case's labels, each reason of its contacts: ``reason_resolved`` and
  ``reason_resolved_one_touch`` when the case is final, ``reason_cases_unresolved`` when it is
  closed unresolved (the cause analysis of KS S 1006 나.(4) 3)), ``reason_cases_open_at_end``
  for a case still unresolved when a replay ends.

Cost follows the codes: the label rules hand over only events with codes (an event without
pays one test there); state is a short list on the contacts and cases that have codes.
"""

from __future__ import annotations

from kpis import wire as w
from kpis.rules.base import Rule, RuleContext
from kpis.rules.cases import CaseRules, is_one_touch, record_labels
from kpis.state import CaseState, ContactState

MAX_PER_CONTACT = 10
"""Distinct reasons kept per contact; more are counted as data quality reasons_over_cap."""
MAX_PER_CASE = 20


class ReasonRules(Rule):
    name = "reasons"

    def __init__(
        self, ctx: RuleContext, contacts: dict[str, ContactState], cases: CaseRules
    ) -> None:
        super().__init__(ctx)
        self._contacts = contacts  # the contact rules' (open contacts)
        self._cases = cases
        cases.on_final = self.case_final

    def coded(self, rec: w.ContactEnded | w.WrapupEnded, ts: float) -> None:
        """A ``contact.ended`` or ``wrapup.ended`` with codes, from the label rules (which
        fold them first, and run before the contact rules end or delete the contact): no
        handler of its own, so an event without codes costs nothing here."""
        codes = rec.reasons
        c = self._contacts.get(rec.contact_id)
        if c is None or (c.ended is not None and not c.segments):
            # never seen, or done already (its reasons were counted): nothing to add them to
            self.sink.count("dq_reasons_contact_unknown", record_labels(rec), ts)
            return
        known = c.reasons
        if known is None:
            known = c.reasons = []
        if not known:  # (an empty list: the repeat rules keep it for the codes to come)
            self.sink.count("contacts_coded", c.labels, ts)
        tenant, channel, queue = c.labels
        k = self._cases.cases.get(c.case_id)
        for code in codes:
            if code in known:
                continue
            if len(known) >= MAX_PER_CONTACT:
                self.sink.count("dq_reasons_over_cap", c.labels, ts)
                continue
            known.append(code)
            self.sink.count("reason_contacts", (tenant, channel, queue, code), ts, c.contact_id)
            if k is not None:
                if k.reasons is None:
                    k.reasons = []
                if code not in k.reasons and len(k.reasons) < MAX_PER_CASE:
                    k.reasons.append(code)

    def contact_done(self, c: ContactState, ts: float) -> None:
        """The contact rules: ``c`` (with reasons) is done; its handle time is final."""
        assert c.reasons is not None
        if c.handled_seconds > 0:
            tenant, channel, queue = c.labels
            for code in c.reasons:
                self.sink.observe("reason_handle_seconds", (tenant, channel, queue, code), ts,
                                  c.handled_seconds)  # fmt: skip

    def case_final(self, k: CaseState, outcome: str, ts: float) -> None:
        """The case rules: ``k`` (with reasons) is final ("resolved", "unresolved") or still
        open at a replay's end ("open")."""
        assert k.reasons is not None
        tenant, channel, queue = k.labels
        one = outcome == "resolved" and is_one_touch(k)
        name = {"resolved": "reason_resolved", "unresolved": "reason_cases_unresolved",
                "open": "reason_cases_open_at_end"}[outcome]  # fmt: skip
        count = self.sink.count
        for code in k.reasons:
            labels = (tenant, channel, queue, code)
            count(name, labels, ts, k.evidence)
            if one:
                count("reason_resolved_one_touch", labels, ts, k.evidence)
