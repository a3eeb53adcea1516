"""Agents: each agent's state (available, busy on a contact, after-contact work, away,
offline), the queues the agent serves, time in each state, and agents per queue and state.

State comes from ``agent.state`` (a login, a pause, a logout; the source's own view, e.g.
Asterisk's AGENTLOGIN / PAUSE / ADDMEMBER), and from the contacts: ``agent.connected`` makes the
agent busy, the end of the contact puts it in after-contact work, ``wrapup.ended`` makes it
available again. An agent serves the queues of the contacts it takes and the queues a source
adds it to (``agent.state`` with a queue: ADDMEMBER / REMOVEMEMBER); at most
:data:`MAX_QUEUES` each. An agent never seen in ``agent.state`` (a source without states,
such as the Anonymous Bank records) is left out of states, staffed time and occupancy: its
time between contacts is not known ("staffed: not measured"); its contacts still count.

What is measured: per agent (the report's ``agents`` rows, never a Prometheus label) the
seconds in each state, counted when the state ends, so occupancy = (busy + after-contact
work) / (available + busy + after-contact work); per (tenant, channel, queue) the agents in
each state now (gauges ``agents_<state>``, an agent in every queue it serves) and the staffed
seconds (``agent_staffed_seconds``: an agent's available, busy or after-work time, counted for
each queue it serves; the report's intervals spread it into staffed agents per interval).
Memory: one entry per agent seen (agents are a bounded population).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from kpis import wire as w
from kpis.core import Handler
from kpis.interfaces import Labels
from kpis.rules.base import Rule, RuleContext
from kpis.state import NO_LABEL, ContactState

STATES = ("available", "busy", "after_work", "away", "offline")
STAFFED = frozenset({"available", "busy", "after_work"})
MAX_QUEUES = 32
MAX_ON = 1000
_GAUGE = {s: "agents_" + s for s in STATES if s != "offline"}  # offline agents: no gauge
_SECONDS = {s: f"agent_{s}_seconds" for s in STATES}


@dataclass(slots=True)
class Agent:
    tenant: str
    agent: str
    state: str
    since: float
    queues: dict[str, str] = field(default_factory=dict)  # queue -> its channel
    # True once the source reported a state: only then is the time between contacts known
    # (staffed or not); an agent seen only on contacts is left out of states and occupancy
    tracked: bool = False
    # contacts in progress (a chat agent may hold several): busy while any; at most MAX_ON
    on: set[str] = field(default_factory=set)
    # the state before its contacts: after-contact work ends there if it was away or offline
    # (a contact taken on a break, or by an agent the source had logged out), else available
    before: str = "available"
    # per queue served, its (tenant, channel, queue) labels: built once, not at every move
    labels: dict[str, Labels] = field(default_factory=dict)
    # the reason of the agent's latest pause (agent.state away), kept while it takes a contact
    reason: str | None = None

    def serve(self, queue: str, channel: str) -> None:
        self.queues[queue] = channel
        self.labels[queue] = (self.tenant, channel, queue)

    def unserve(self, queue: str) -> None:
        del self.queues[queue]
        del self.labels[queue]

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "agent": self.agent, "state": self.state,
                "since": self.since, "queues": dict(self.queues),
                "tracked": self.tracked, "on": sorted(self.on),
                "before": self.before}  # fmt: skip


_ContactFact = TypeVar("_ContactFact", w.ContactTransferred, w.ContactEnded, w.WrapupEnded)
FactSink = Callable[[Any, float], None]
"""Where :class:`AgentFacts` sends the agent facts it resolves (``fact(record, event_time)``)."""
FACT_TYPES = (
    "agent.state", "agent.connected", "contact.transferred", "contact.ended", "wrapup.ended"
)  # fmt: skip


class AgentFacts(Rule):
    """The contacts' side of agent states, in an engine that sees contacts: each event that
    moves an agent's state, with the agent, tenant and queue it concerns filled in from the
    contact (a ``contact.ended`` names no agent; the contact's open part does), as a *fact*.

    A replay's engine hands the facts straight to its :class:`AgentRules`; a live partition
    (whose engine sees only its own cases' contacts) publishes them keyed by agent, so one
    agent engine sees all of an agent's facts (streams.agents). Either way the state machine
    sees the same facts in the same order (the core's (time, type, event id) order), so live
    and replay agree."""

    name = "agent-facts"

    def __init__(
        self, ctx: RuleContext, contacts: dict[str, ContactState], out: FactSink | AgentRules
    ) -> None:
        """``out``: where the facts go; a replay's engine gives its :class:`AgentRules`, whose
        handlers are then called directly (no dispatch per fact)."""
        super().__init__(ctx)
        self._contacts = contacts
        if isinstance(out, AgentRules):
            to = out.by_type()
            self._state: FactSink = to[w.AgentState]
            self._connected: FactSink = to[w.AgentConnected]
            self._ended: FactSink = to[w.ContactEnded]
            self._wrapup: FactSink = to[w.WrapupEnded]
        else:
            self._state = self._connected = self._ended = self._wrapup = out

    def handlers(self) -> Mapping[str, Handler]:
        # contact.ended before the contact rules: the contact's agent is still on it
        return {
            "agent.state": self._state,
            "agent.connected": self._on_connected,
            "contact.transferred": self._on_ended,  # the transferring agent's part ends
            "contact.ended": self._on_ended,
            "wrapup.ended": self._on_wrapup,
        }

    def _on_connected(self, rec: w.AgentConnected, ts: float) -> None:
        if rec.agent_id == NO_LABEL:
            return  # a source's "no named agent" (Anonymous Bank's NO_SERVER): no agent
        if rec.tenant is None or rec.queue is None:
            c = self._contacts.get(rec.contact_id)
            if c is not None:
                tenant = rec.tenant or (c.tenant if c.tenant != NO_LABEL else None)
                queue = rec.queue or (c.queue if c.queue != NO_LABEL else None)
                rec = msgspec.structs.replace(rec, tenant=tenant, queue=queue)
        self._connected(rec, ts)

    def _on_ended(self, rec: w.ContactEnded, ts: float) -> None:
        # also contact.transferred (the same fields this reads)
        fact = self._fact(rec)
        if fact is not None:
            self._ended(fact, ts)

    def _on_wrapup(self, rec: w.WrapupEnded, ts: float) -> None:
        fact = self._fact(rec)
        if fact is not None:
            self._wrapup(fact, ts)

    def _fact(self, rec: _ContactFact) -> _ContactFact | None:
        """The record with the contact's agent and tenant filled in; None: no agent."""
        agent = rec.agent_id
        c = self._contacts.get(rec.contact_id)
        if agent is None and c is not None and c.segments:
            open_ = [seg.agent for seg in c.segments if seg.left is None]
            agent = open_[0] if open_ else c.segments[0].agent  # as the contact rules match
        if agent is None or agent == NO_LABEL:
            return None
        tenant = rec.tenant or (c.tenant if c is not None and c.tenant != NO_LABEL else None)
        if agent != rec.agent_id or tenant != rec.tenant:
            return msgspec.structs.replace(rec, agent_id=agent, tenant=tenant)
        return rec


class AgentRules(Rule):
    """The agents' state machine, on agent facts (:class:`AgentFacts`): the contact's agent,
    tenant and queue are filled in."""

    name = "agents"

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.agents: dict[tuple[str, str], Agent] = {}
        self.in_state: dict[tuple[Labels, str], int] = {}  # (queue labels, state) -> agents
        self._cap = self.config.agent_stretch_max_seconds
        self._by_type: dict[type[w.Rec], Handler] = {
            w.AgentState: self._on_state,
            w.AgentConnected: self._on_connected,
            w.ContactTransferred: self._on_contact_ended,
            w.ContactEnded: self._on_contact_ended,
            w.WrapupEnded: self._on_wrapup_ended,
        }

    def handlers(self) -> Mapping[str, Handler]:
        return {t: h for t, h in zip(FACT_TYPES, self._by_type.values(), strict=True)}

    def by_type(self) -> Mapping[type[w.Rec], Handler]:
        """The handler of each kind of fact (what :meth:`apply` dispatches to)."""
        return self._by_type

    def apply(self, rec: w.Rec, ts: float) -> None:
        """One fact, in processing order (a replay's :class:`AgentFacts` calls this)."""
        self._by_type[rec.__class__](rec, ts)

    # --- the state machine ---------------------------------------------------------------------

    def _agent(self, tenant: str, agent: str, ts: float, state: str) -> Agent:
        a = self.agents.get((tenant, agent))
        if a is None:
            a = self.agents[(tenant, agent)] = Agent(tenant, agent, state, ts)
        return a

    def _enter(self, a: Agent, state: str, ts: float) -> None:
        if not a.tracked:
            return
        for labels in a.labels.values():
            self._gauge(labels, state, ts, +1)

    def _gauge(self, labels: Labels, state: str, ts: float, delta: int) -> None:
        key = (labels, state)
        n = self.in_state[key] = self.in_state.get(key, 0) + delta
        name = _GAUGE.get(state)
        if name is not None:
            self.sink.gauge(name, labels, ts, n)

    def _close(self, a: Agent, ts: float) -> None:
        """Count the time in the current state up to ``ts`` (per agent, and as staffed time on
        each queue it serves), and start the next stretch there."""
        spent = ts - a.since
        if a.tracked and spent > 0 and a.state != "offline":
            end = ts
            if spent > self._cap:  # a logout never sent: the rest counts as offline
                self.sink.count("dq_agent_state_too_long", (a.tenant, NO_LABEL, NO_LABEL), ts)
                spent, end = self._cap, a.since + self._cap
            observe = self.sink.observe
            observe(_SECONDS[a.state], (a.tenant, a.agent), end, spent)
            if a.state == "away" and a.reason is not None:
                observe("agent_pause_seconds", (a.tenant, a.agent, a.reason), end, spent)
            if a.state in STAFFED:
                for labels in a.labels.values():
                    observe("agent_staffed_seconds", labels, end, spent)
        a.since = ts

    def _move(self, a: Agent, state: str, ts: float) -> None:
        old = a.state
        if old == state:
            return
        if not a.tracked:
            a.state, a.since = state, ts
            return
        self._close(a, ts)
        in_state = self.in_state
        gauge = self.sink.gauge
        was, now = _GAUGE.get(old), _GAUGE.get(state)
        for labels in a.labels.values():
            key = (labels, old)
            n = in_state[key] = in_state.get(key, 0) - 1
            if was is not None:
                gauge(was, labels, ts, n)
            key = (labels, state)
            n = in_state[key] = in_state.get(key, 0) + 1
            if now is not None:
                gauge(now, labels, ts, n)
        a.state = state

    def _serve(self, a: Agent, queue: str | None, channel: str, ts: float) -> None:
        """The agent serves ``queue`` (from now: its staffed time counts there)."""
        if queue is None or queue == NO_LABEL or queue in a.queues:
            return
        if len(a.queues) >= MAX_QUEUES:
            self.sink.count("dq_agent_queues_over_limit", (a.tenant, channel, queue), ts)
            return
        if not a.tracked:
            a.serve(queue, channel)
            return
        self._close(a, ts)  # the stretch so far counts on the queues it had
        a.serve(queue, channel)
        self._gauge(a.labels[queue], a.state, ts, +1)

    def _leave(self, a: Agent, queue: str, ts: float) -> None:
        if queue not in a.queues or not a.tracked:
            return
        self._close(a, ts)
        self._gauge(a.labels[queue], a.state, ts, -1)
        a.unserve(queue)

    # --- events --------------------------------------------------------------------------------

    def _on_state(self, rec: w.AgentState, ts: float) -> None:
        tenant = rec.tenant or NO_LABEL
        a = self.agents.get((tenant, rec.agent_id))
        if a is None:
            a = self.agents[(tenant, rec.agent_id)] = Agent(tenant, rec.agent_id, rec.state, ts)
        if not a.tracked:  # from now its time is known: it starts in the reported state
            a.tracked = True
            a.state, a.since = rec.state, ts
            self._enter(a, a.state, ts)
        queue = rec.queue
        if queue is not None and rec.state == "offline" and a.queues.keys() - {queue}:
            self._leave(a, queue, ts)  # removed from one queue, still in others
            return
        if rec.state == "away":
            if a.state == "away" and rec.reason != a.reason:
                self._close(a, ts)  # a pause for another reason: the stretch so far is done
            self._move(a, "away", ts)
            a.reason = rec.reason
            if queue is not None:
                self._serve(a, queue, rec.channel, ts)
            return
        self._move(a, rec.state, ts)
        if queue is not None and rec.state != "offline":
            self._serve(a, queue, rec.channel, ts)

    def _on_connected(self, rec: w.AgentConnected, ts: float) -> None:
        a = self._agent(rec.tenant or NO_LABEL, rec.agent_id, ts, "available")
        self._serve(a, rec.queue, rec.channel, ts)
        if len(a.on) < MAX_ON:
            a.on.add(rec.contact_id)
        if a.state not in ("busy", "after_work"):
            a.before = a.state
        self._move(a, "busy", ts)

    def _contact_agent(self, rec: w.Rec) -> Agent | None:
        if rec.agent_id is None:
            return None
        return self.agents.get((rec.tenant or NO_LABEL, rec.agent_id))

    def _on_contact_ended(self, rec: w.ContactEnded | w.ContactTransferred, ts: float) -> None:
        a = self._contact_agent(rec)
        if a is not None:
            a.on.discard(rec.contact_id)  # an end after a transfer counts once
            if a.state == "busy" and not a.on:  # its last contact ended
                self._move(a, "after_work", ts)

    def _on_wrapup_ended(self, rec: w.WrapupEnded, ts: float) -> None:
        a = self._contact_agent(rec)
        if a is not None and not a.on and a.state in ("busy", "after_work"):
            self._move(a, a.before if a.before in ("away", "offline") else "available", ts)

    # --- end and checkpoints -------------------------------------------------------------------

    def finish(self, at: float) -> None:
        """The time in the current state up to the end counts (a replay's last picture)."""
        for key in sorted(self.agents):
            self._close(self.agents[key], at)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        return {"agents": [a.to_dict() for _, a in sorted(self.agents.items())]}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "agents" not in snap:
            return
        self.agents = {}
        self.in_state = {}
        for d in snap["agents"]:
            a = Agent(d["tenant"], d["agent"], d["state"], float(d["since"]), {},
                      bool(d.get("tracked", False)),
                      set(d["on"]) if isinstance(d.get("on"), list) else set(),
                      str(d.get("before", "available")))  # fmt: skip
            for queue, channel in dict(d["queues"]).items():
                a.serve(queue, channel)
            self.agents[(a.tenant, a.agent)] = a
            for labels in a.labels.values() if a.tracked else ():
                key = (labels, a.state)
                self.in_state[key] = self.in_state.get(key, 0) + 1

    def pending_timers(self) -> Iterable[Any]:
        return ()
