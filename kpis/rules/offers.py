"""What agents did with each offer, and who hung up: missed offers ("ring no answer"), an
agent who hung up first, a customer who hung up while on hold.

* An offer (``agent.offered``) is **missed** when the contact is next offered to, or taken by,
  another agent: the agent let it ring (Genesys "alert no answer", Amazon Connect "missed",
  QueueMetrics RONA). An offer the agent takes is not; one the customer ends while it rings
  is nobody's miss and is not counted either way.
* ``contact.ended`` of a call (voice, video) by the agent while an agent is on it: the agent
  hung up first (the seed's agent checklist asks, 참고 2 끝인사 ⑤).
* ``contact.ended`` of a call by the customer while on hold: the customer gave up on hold.

Counted per queue (KPI family: ``offers``, ``offers_missed``, ``hung_up_first``,
``hung_up_on_hold``) and per agent (report only: the same with ``agent_`` before). State: the
one pending offer of a contact that is ringing (pruned of contacts no longer open, so bounded
by the open contacts); a log without offers pays one test per contact end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler
from kpis.rules.base import Rule, RuleContext
from kpis.state import NO_LABEL, ContactState

CALLS = frozenset({"voice", "video"})
"""Channels where who hung up means something (a chat or an e-mail ends by its last reply)."""


class OfferRules(Rule):
    name = "offers"

    def __init__(self, ctx: RuleContext, contacts: dict[str, ContactState]) -> None:
        super().__init__(ctx)
        self._contacts = contacts  # the contact rules' (open contacts)
        self.pending: dict[str, str] = {}  # contact -> the agent it rings for now

    def handlers(self) -> Mapping[str, Handler]:
        # before the contact rules: they close the agent's part on contact.ended
        return {
            "agent.offered": self._on_offered,
            "agent.connected": self._on_connected,
            "contact.ended": self._on_ended,
            "queue.abandoned": self._on_abandoned,
        }

    def _count(self, c: ContactState, what: str, agent: str, ts: float) -> None:
        self.sink.count(what, c.labels, ts, c.contact_id)
        if agent != NO_LABEL:
            self.sink.count("agent_" + what, (c.tenant, agent), ts, c.contact_id)

    def _on_offered(self, rec: w.AgentOffered, ts: float) -> None:
        c = self._contacts.get(rec.contact_id)
        if c is None or c.ended is not None:
            return  # the contact rules count what is unmatched
        agent = rec.agent_id
        before = self.pending.get(rec.contact_id)
        if before == agent:
            return  # offered again to the same agent: the same offer
        if before is not None:
            self._count(c, "offers_missed", before, ts)
        elif len(self.pending) > 2 * len(self._contacts) + 1000:
            # contacts closed by a timeout while ringing: forget them (amortized)
            self.pending = {k: v for k, v in self.pending.items() if k in self._contacts}
        self.pending[rec.contact_id] = agent
        self._count(c, "offers", agent, ts)

    def _on_connected(self, rec: w.AgentConnected, ts: float) -> None:
        if not self.pending:
            return
        before = self.pending.pop(rec.contact_id, None)
        if before is not None and before != rec.agent_id:
            c = self._contacts.get(rec.contact_id)
            if c is not None:
                self._count(c, "offers_missed", before, ts)

    def _on_abandoned(self, rec: Any, ts: float) -> None:
        if self.pending:
            self.pending.pop(rec.contact_id, None)  # the customer left while it rang

    def _on_ended(self, rec: w.ContactEnded, ts: float) -> None:
        if self.pending:
            self.pending.pop(rec.contact_id, None)
        if rec.ended_by == "system":
            return
        c = self._contacts.get(rec.contact_id)
        if c is None or c.ended is not None or c.channel not in CALLS:
            return
        for seg in c.segments:
            if seg.left is not None:
                continue
            if rec.ended_by == "agent":
                self._count(c, "hung_up_first", seg.agent, ts)
            elif seg.hold_start is not None:
                self._count(c, "hung_up_on_hold", seg.agent, ts)
            break

    def snapshot(self, objects: bool) -> dict[str, Any]:
        return {"offers_pending": dict(self.pending)}

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.pending = dict(snap.get("offers_pending", {}))
