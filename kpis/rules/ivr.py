"""IVR: entries, menu visits, containment, and the KS S 1006 breaches (menus deeper than the
limit, information asked twice, greetings too long, a request for an agent not routed).

IVR series are labelled (tenant, channel, flow, menu); ``ivr_seconds`` repeats the IVR time per
(tenant, channel, queue) so that it sits beside the queue KPIs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kpis import wire as w
from kpis.core import Handler
from kpis.interfaces import Labels
from kpis.rules.base import Rule, RuleContext
from kpis.state import NO_LABEL, ContactState


def ivr_labels(c: ContactState, menu: str | None) -> Labels:
    return (c.tenant, c.channel, c.flow or NO_LABEL, menu or NO_LABEL)


def _unwired(rec: w.Rec, ts: float) -> ContactState:
    raise RuntimeError("IvrRules.contact is not wired to the contact rules")


class IvrRules(Rule):
    name = "ivr"

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        # the contact of a record, created if its start was never seen: the contact rules'
        # (they own the contacts), wired by the engine
        self.contact: Callable[[w.Rec, float], ContactState | None] = _unwired

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "ivr.entered": self._on_ivr_entered,
            "ivr.menu": self._on_ivr_menu,
            "ivr.input": self._on_ivr_input,
            "ivr.exited": self._on_ivr_exited,
        }

    def close(self, c: ContactState, ts: float) -> None:
        """The contact leaves the IVR (to a queue, an agent, or the end)."""
        c.in_ivr = False
        if c.ivr_entered is not None:
            spent = ts - c.ivr_entered
            self.sink.observe("ivr_time_seconds", ivr_labels(c, None), ts, spent)
            self.sink.observe("ivr_seconds", c.labels, ts, spent)  # the same, per channel/queue

    def _on_ivr_entered(self, rec: w.IvrEntered, ts: float) -> None:
        c = self.contact(rec, ts)
        if c is None:
            return
        c.flow = rec.flow
        c.menu = None
        c.ivr_entered = ts
        c.in_ivr = True
        labels = ivr_labels(c, None)
        self.sink.count("ivr_entries", labels, ts)
        greeting = rec.greeting_seconds
        if greeting is not None:
            self.sink.count("ivr_greetings", labels, ts)
            if greeting > self.config.greeting_target_seconds:
                self.sink.count("ivr_greeting_too_long", labels, ts, c.contact_id)

    def _on_ivr_menu(self, rec: w.IvrMenu, ts: float) -> None:
        c = self.contact(rec, ts)
        if c is None:
            return
        menu = rec.menu or NO_LABEL  # required on ivr.menu
        c.flow = rec.flow
        c.menu = menu
        labels = ivr_labels(c, menu)
        self.sink.count("ivr_menu_visits", labels, ts)
        if rec.level > self.config.ivr_max_depth:
            if c.deep_menus is None:
                c.deep_menus = []
            if menu not in c.deep_menus:
                c.deep_menus.append(menu)
                self.sink.count("ivr_depth_exceeded", labels, ts, c.contact_id)

    def _on_ivr_input(self, rec: w.IvrInput, ts: float) -> None:
        c = self.contact(rec, ts)
        if c is None:
            return
        c.flow = rec.flow
        self.sink.count("ivr_inputs", ivr_labels(c, rec.menu or c.menu), ts)
        asked = rec.requested
        if c.asked is None:
            c.asked = [asked]
        elif asked in c.asked:
            labels = ivr_labels(c, rec.menu or c.menu)
            self.sink.count("ivr_repeated_input", labels, ts, c.contact_id)
        else:
            c.asked.append(asked)

    def _on_ivr_exited(self, rec: w.IvrExited, ts: float) -> None:
        c = self.contact(rec, ts)
        if c is None:
            return
        c.flow = rec.flow
        if c.in_ivr:
            self.close(c, ts)
        outcome = rec.outcome
        labels = ivr_labels(c, c.menu)
        if outcome == "self_served":
            self.sink.count("ivr_self_served", labels, ts)
        elif outcome == "hang_up":
            self.sink.count("ivr_hang_up", labels, ts)
            self.sink.count("left_in_ivr", c.labels, ts)
        elif outcome == "error":
            self.sink.count("ivr_errors", labels, ts, c.contact_id)
        if rec.agent_requested:
            self.sink.count("ivr_agent_requests", labels, ts)
            if outcome != "queue":
                self.sink.count("ivr_agent_request_not_routed", labels, ts, c.contact_id)
