"""The KPI engine: the event-time core with the KPI rules plugged in. Pure, deterministic.

It sees records (:class:`kpis.wire.Rec`) and their event time, never the wall clock, sockets
or Faust. Live workers and replay feed the same engine; they differ only in the sink that
receives the observations and in who moves the watermark (:class:`kpis.clock.TimePolicy`).

* :mod:`kpis.core`: intake, dedupe, reorder buffer, watermark, timers, ticks (its invariants
  are stated there).
* :mod:`kpis.rules`: the KPI domains, each registering handlers per event type.
* :mod:`kpis.catalogue`: every series the rules emit, declared once.

Memory follows the number of open items (contacts, cases, callbacks), not the length of the log:
closed contacts, finalized cases and settled callbacks are deleted.
"""

from __future__ import annotations

from typing import Any

from kpis.clock import TimePolicy
from kpis.config import EngineConfig
from kpis.core import SNAPSHOT_VERSION, EventCore, Handler, TickListener, Timer, TimerHandler
from kpis.interfaces import KpiSink, Labels, Tracer
from kpis.rules.agents import FACT_TYPES, AgentFacts, AgentRules, FactSink
from kpis.rules.base import Rule, RuleContext
from kpis.rules.callbacks import CallbackRules
from kpis.rules.cases import CaseRules, provisional
from kpis.rules.complaints import ComplaintRules
from kpis.rules.contacts import ContactRules
from kpis.rules.ivr import IvrRules
from kpis.rules.labels import LabelRules
from kpis.rules.offers import OfferRules
from kpis.rules.platform import PlatformRules
from kpis.rules.reasons import ReasonRules
from kpis.rules.repeats import RepeatRules
from kpis.rules.surveys import SurveyRules
from kpis.targets import Targets

__all__ = ["SNAPSHOT_VERSION", "AgentEngine", "Engine"]


class Engine:
    """Computes the KPIs of SPEC section 4 from a stream of event records."""

    def __init__(
        self,
        config: EngineConfig,
        sink: KpiSink,
        *,
        batch: int = 256,
        auto_watermark: bool = True,
        agent_states: bool = False,
        agent_facts: FactSink | None = None,
        tracer: Tracer | None = None,
        repeats: bool = True,
    ) -> None:
        """``batch`` and ``auto_watermark``: see :class:`kpis.core.EventCore`.

        ``agent_states``: keep agents' states (:mod:`kpis.rules.agents`). Only an engine that
        sees every contact of an agent can: a replay's single engine, not a live partition's
        (partitions split contacts by case, and an agent works on all of them).
        ``agent_facts``: a live partition's engine sends the agent facts of its contacts there
        instead (:class:`kpis.rules.agents.AgentFacts`), for an :class:`AgentEngine` keyed by
        agent.

        ``repeats``: measure repeat contacts (:mod:`kpis.rules.repeats`). Like agent states,
        only an engine that sees every contact of a customer can: a live partition sees the
        cases that hash to it, so its engine has none (docs/kpis.md, "Repeat contacts").

        ``tracer``: told which event or timer each observation comes from (a replay's
        contact ledger, for CSV drill-downs); handlers are wrapped only then."""
        self.config = config
        self.sink = sink
        self._tracer = tracer
        self.policy = TimePolicy.of(config)
        self.core = core = EventCore(self.policy, batch=batch, auto_watermark=auto_watermark)
        self.targets = Targets(config)
        ctx = RuleContext(config, sink, core.schedule, self.targets)
        self.labels = LabelRules(ctx)
        self.cases = CaseRules(ctx)
        self.ivr = IvrRules(ctx)
        self.contacts = ContactRules(ctx, self.cases, self.ivr)
        self.callbacks = CallbackRules(ctx, self.contacts.contacts)
        self.surveys = SurveyRules(ctx, self.contacts.contacts, self.cases)
        self.reasons = ReasonRules(ctx, self.contacts.contacts, self.cases)
        self.contacts.on_done = self.reasons.contact_done
        self.labels.on_reasons = self.reasons.coded
        self.repeats = RepeatRules(ctx, self.contacts.contacts, enabled=repeats)
        self.offers = OfferRules(ctx, self.contacts.contacts)
        self.agents = AgentRules(ctx)
        out = self.agents if agent_states else agent_facts
        facts = (AgentFacts(ctx, self.contacts.contacts, out),) if out is not None else ()
        self.platform = PlatformRules(ctx)
        self.complaints = ComplaintRules(ctx)
        # The order in which a replay's end settles the domains and a checkpoint lists them;
        # handlers of one event type registered by several rules run in this order too.
        self.rules: tuple[Rule, ...] = (
            self.labels,  # first: every other rule reads the record's folded labels
            self.cases,
            self.callbacks,
            self.surveys,  # before the contact rules: it reads a contact as it ends
            self.reasons,  # (no handlers: the label rules hand it the coded events)
            self.repeats,  # before the contact rules on contact.ended (after on a start)
            self.offers,  # before the contact rules: it reads the agent's part as it ends
            *facts,  # likewise (its state machine keeps its own order)
            self.contacts,
            self.ivr,
            self.platform,
            self.complaints,
            *((self.agents,) if agent_states else ()),  # its end and checkpoint
        )
        for rule in self.rules:
            if rule is self.agents:
                continue  # fed by AgentFacts
            for event_type, handler in rule.handlers().items():
                core.on(event_type, handler if tracer is None else _traced(handler, tracer))
            for kind, on_due in rule.timers().items():
                if tracer is not None:
                    on_due = _traced_timer(kind, on_due, tracer)
                core.on_timer(kind, on_due)
        for event_type, handler in self.repeats.after_contacts().items():
            core.on(event_type, handler if tracer is None else _traced(handler, tracer))
        self.ingest = core.ingest
        self.advance = core.advance
        self.flush = core.flush
        self.buffered = core.buffered

    # The core's clock, read by drivers (checkpoints, the read model, the alert stage).
    @property
    def watermark(self) -> float:
        return self.core.watermark

    @property
    def max_ts(self) -> float:
        return self.core.max_ts

    def on_tick(self, every: float, listener: TickListener) -> None:
        """See :meth:`kpis.core.EventCore.on_tick` (alert rules evaluate there)."""
        self.core.on_tick(every, listener)

    def finish(self) -> None:
        """End of a replay: flush, then settle what is still open as of the last event.

        Resolved cases still inside their reopen window are reported with the resolution they
        have; open callbacks, contacts and unresolved cases are counted as pending so a report
        shows them.
        """
        self.core.flush()
        at = self.core.max_ts
        tracer = self._tracer
        for rule in self.rules:
            if tracer is not None:
                rule.trace_item = lambda kind, key: tracer.timer(kind, key, at)
            rule.finish(at)
            if tracer is not None:
                tracer.done()

    def waiting_now(self, now: float | None = None) -> dict[Labels, tuple[int, float]]:
        """Contacts waiting and the oldest wait per (tenant, channel, queue), at ``now`` (default:
        the watermark)."""
        return self.contacts.waiting_now(self.core.watermark if now is None else now)

    def handling_now(self, now: float | None = None) -> dict[Labels, tuple[int, float]]:
        """Contacts in progress and the longest one's time with its agent now, per (tenant,
        channel, queue), at ``now`` (default: the watermark)."""
        return self.contacts.handling_now(self.core.watermark if now is None else now)

    def waiting_past_target(self, now: float | None = None) -> dict[Labels, int]:
        """Contacts waiting past their service-level threshold per (tenant, channel, queue)."""
        return self.contacts.waiting_past_target(self.core.watermark if now is None else now)

    def waiting_entries(self) -> dict[Labels, tuple[int, float]]:
        """Contacts waiting and the oldest one's queue entry per (tenant, channel, queue)."""
        return self.contacts.waiting_entries()

    def provisional(self) -> dict[Labels, list[float]]:
        """Resolutions still inside their reopen window, per (tenant, channel, queue): see
        :func:`kpis.rules.cases.provisional`."""
        return provisional(self.cases.cases.values())

    def snapshot(self, *, objects: bool = False) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is, as plain JSON-able data.

        A live worker stores it with the input offsets it covers (checkpoint), so that the
        state and the record of what was processed are saved together.

        ``objects=True``: the state objects (dataclasses) and buffered records (msgspec structs)
        themselves instead of plain copies, for an encoder that writes both (``msgspec.json``)
        at once; the JSON holds the same data (the dedupe sets unsorted). Encode before the
        engine runs again: the objects are live.
        """
        snap = self.core.snapshot(objects=objects)
        for rule in self.rules:
            snap.update(rule.snapshot(objects))
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        """Continue from :meth:`snapshot`, on a fresh engine."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.get('version')!r} is not {SNAPSHOT_VERSION}")
        timers: list[Timer] = []
        for rule in self.rules:
            rule.restore(snap)
            timers.extend(rule.pending_timers())
        self.core.restore(snap, timers)


def _traced(handler: Handler, tracer: Tracer) -> Handler:
    def traced(rec: Any, ts: float) -> None:
        tracer.record(rec, ts)
        try:
            handler(rec, ts)
        finally:
            tracer.done()

    return traced


def _traced_timer(kind: int, on_due: TimerHandler, tracer: Tracer) -> TimerHandler:
    def traced(key: str, when: float) -> None:
        tracer.timer(kind, key, when)
        try:
            on_due(key, when)
        finally:
            tracer.done()

    return traced


class AgentEngine:
    """The agents' state machine (:class:`kpis.rules.agents.AgentRules`) on its own event-time
    core, for agent facts that come from several engines (a live worker's partitions, each
    publishing the facts of its contacts keyed by agent).

    Its driver moves the watermark (``auto_watermark`` off): to the slowest source's, so that
    a fact is processed only once every source has passed its time, in the core's (time, type,
    event id) order, which is the order a replay's single engine processes the same facts in.
    A fact published twice (a source partition restored from a checkpoint) is a ``duplicate``.
    """

    def __init__(self, config: EngineConfig, sink: KpiSink) -> None:
        self.config = config
        self.sink = sink
        self.policy = TimePolicy.of(config)
        self.core = core = EventCore(self.policy, batch=1 << 30, auto_watermark=False)
        ctx = RuleContext(config, sink, core.schedule, Targets(config))
        self.agents = AgentRules(ctx)
        for event_type in FACT_TYPES:
            core.on(event_type, self.agents.handlers()[event_type])
        self.ingest = core.ingest
        self.advance = core.advance
        self.flush = core.flush

    @property
    def watermark(self) -> float:
        return self.core.watermark

    def on_tick(self, every: float, listener: TickListener) -> None:
        self.core.on_tick(every, listener)

    def snapshot(self, *, objects: bool = False) -> dict[str, Any]:
        snap = self.core.snapshot(objects=objects)
        snap.update(self.agents.snapshot(objects))
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.get('version')!r} is not {SNAPSHOT_VERSION}")
        self.agents.restore(snap)
        self.core.restore(snap, [])
