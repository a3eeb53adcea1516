"""Contacts, queues and handling: offered, answered (within service level), abandoned, dropped,
contacts waiting, speed of answer, handle / talk / hold / after-contact-work time, transfers.

The contact rules own the open contacts; the IVR and case rules work on the same contact state
(a contact in the IVR, the case a contact belongs to). A closed contact is kept only until its
agents' after-contact work ends (``wrapup_timeout_seconds``), so memory follows open contacts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler, Timer, TimerHandler
from kpis.events import TEXT_CHANNELS
from kpis.interfaces import Labels
from kpis.rules.base import TIMER_CONTACT, Rule, RuleContext
from kpis.rules.cases import CaseRules, record_labels
from kpis.rules.ivr import IvrRules, ivr_labels
from kpis.state import NO_LABEL, ContactState, Segment
from kpis.wire import TYPE_OF, Rec


def _leave(seg: Segment, ts: float) -> None:
    if seg.hold_start is not None:
        seg.hold += ts - seg.hold_start
        seg.hold_start = None
    seg.left = ts


def _open_segment(c: ContactState) -> Segment | None:
    for seg in c.segments:
        if seg.left is None:
            return seg
    return None


class ContactRules(Rule):
    name = "contacts"

    def __init__(self, ctx: RuleContext, cases: CaseRules, ivr: IvrRules) -> None:
        super().__init__(ctx)
        self.contacts: dict[str, ContactState] = {}
        # contacts waiting per (tenant, channel, queue), in order of entry (= event-time order)
        self.waiting: dict[Labels, dict[str, float]] = {}
        self._cases = cases
        self._ivr = ivr
        ivr.contact = self.contact
        # told when a contact with reasons is done (kpis.rules.reasons)
        self.on_done: Callable[[ContactState, float], None] | None = None

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "contact.started": self._on_contact_started,
            "contact.transferred": self._on_transferred,
            "contact.ended": self._on_contact_ended,
            "queue.entered": self._on_queue_entered,
            "queue.abandoned": self._on_queue_abandoned,
            "agent.offered": self._on_activity,
            "agent.connected": self._on_agent_connected,
            "agent.message": self._on_agent_message,
            "customer.message": self._on_activity,
            "hold.started": self._on_hold_started,
            "hold.ended": self._on_hold_ended,
            "wrapup.ended": self._on_wrapup_ended,
            "callback.requested": self._on_callback_requested,
        }

    def timers(self) -> Mapping[int, TimerHandler]:
        return {TIMER_CONTACT: self._contact_due}

    # --- contacts ------------------------------------------------------------------------------

    def contact(self, rec: Rec, ts: float) -> ContactState | None:
        """The contact of ``rec``, created (and flagged) if its start was never seen. None for
        a contact that has ended (see :meth:`_after_end`)."""
        c = self.contacts.get(rec.contact_id)
        if c is None:
            if self._full(rec, ts):
                return None
            c = self._new_contact(rec, ts, inbound=True)
            self.sink.count("dq_contact_without_start", c.labels, ts)
        elif c.ended is not None:
            self._after_end(c, ts)
            return None
        c.last = ts
        return c

    def known_contact(self, rec: Rec, ts: float, *, after_end: bool = False) -> ContactState | None:
        """The contact of ``rec`` if open (or ended, for what follows an end: ``after_end``);
        an event that can only follow a start is otherwise counted as unmatched (data
        quality) and changes nothing else."""
        c = self.contacts.get(rec.contact_id)
        if c is None:
            kind = TYPE_OF[rec.__class__].replace(".", "_")
            self.sink.count("dq_unmatched_" + kind, record_labels(rec), ts)
            return None
        if c.ended is not None and not after_end:
            self._after_end(c, ts)
            return None
        c.last = ts
        return c

    def _kept_until(self, c: ContactState) -> float:
        """An ended contact is kept while its agents' after-contact work may still end
        (``wrapup_timeout_seconds``), and for the allowed lateness after its end in any case,
        so that a straggler of it is known as one (memory: the last minute's ended contacts)."""
        assert c.ended is not None
        if c.segments:
            return c.ended + self.config.wrapup_timeout_seconds
        return c.ended + self.config.allowed_lateness_seconds

    def _after_end(self, c: ContactState, ts: float) -> None:
        """An event of a contact after its end (an IVR menu the system sent 4 s after it hung
        up): not a new contact. Counted as data quality ``after_contact_end``; it changes
        nothing else (see :meth:`_kept_until` for how long an ended contact is known)."""
        self.sink.count("dq_after_contact_end", c.labels, ts)

    def _new_contact(self, rec: Rec, ts: float, inbound: bool) -> ContactState:
        cid = rec.contact_id
        tenant = rec.tenant or NO_LABEL
        channel = rec.channel
        queue = rec.queue or NO_LABEL
        labels = (tenant, channel, queue)
        case_id = rec.case_id or cid
        c = ContactState(cid, case_id, tenant, channel, queue, ts, ts, labels, inbound)
        c.priority = getattr(rec, "priority", None)
        c.customer_id = rec.customer_id
        self.contacts[cid] = c
        self.sink.count("contacts", labels, ts)
        self.schedule(ts + self.config.idle_timeout(channel), TIMER_CONTACT, cid)
        self._cases.opened_by(c, ts)
        return c

    def _full(self, rec: Rec, ts: float) -> bool:
        """Open contacts at ``max_open_contacts``: a new one is not tracked (memory follows
        the setting, not the input); each of its events is counted as contact_over_cap."""
        if len(self.contacts) < self.config.max_open_contacts:
            return False
        self.sink.count("dq_contact_over_cap", record_labels(rec), ts)
        return True

    def _on_contact_started(self, rec: w.ContactStarted, ts: float) -> None:
        c = self.contacts.get(rec.contact_id)
        if c is not None:
            c.last = ts
            return
        if self._full(rec, ts):
            return
        inbound = rec.direction == "inbound" and rec.initiation in ("inbound", "transfer")
        self._new_contact(rec, ts, inbound).callback = rec.initiation == "callback"

    def _on_activity(self, rec: Rec, ts: float) -> None:
        self.contact(rec, ts)  # opens it if its start was never seen

    def _contact_due(self, cid: str, when: float) -> None:
        c = self.contacts.get(cid)
        if c is None:
            return
        if c.ended is not None:
            until = self._kept_until(c)
            if when >= until:
                for _ in c.segments:
                    self.sink.count("handle_incomplete", c.labels, when)
                if c.segments and c.reasons and self.on_done is not None:
                    self.on_done(c, when)  # not done by a wrap-up: by the timeout
                del self.contacts[cid]
            else:
                self.schedule(until, TIMER_CONTACT, cid)
            return
        deadline = c.last + self.config.idle_timeout(c.channel)
        if when < deadline:
            self.schedule(deadline, TIMER_CONTACT, cid)
            return
        if c.queue_entered is not None:
            self.sink.count("queued_orphaned", c.labels, when, c.contact_id)
            self._leave_queue(c, when)
        if c.in_ivr:
            self._ivr.close(c, when)
        for _ in c.segments:
            self.sink.count("handle_incomplete", c.labels, when)
        self.sink.count("contacts_orphaned", c.labels, when, c.contact_id)
        if c.reasons and self.on_done is not None:
            self.on_done(c, when)
        del self.contacts[cid]

    # --- queue and hand-off --------------------------------------------------------------------

    def _leave_queue(self, c: ContactState, ts: float) -> None:
        c.queue_entered = None
        waiting = self.waiting.get(c.labels)
        if waiting is not None and waiting.pop(c.contact_id, None) is not None:
            self.sink.gauge("waiting", c.labels, ts, len(waiting))

    def _on_queue_entered(self, rec: w.QueueEntered, ts: float) -> None:
        c = self.contact(rec, ts)
        if c is None:
            return
        if c.in_ivr:
            self._ivr.close(c, ts)
        if c.queue_entered is not None:
            self._leave_queue(c, ts)  # moved to another queue before an answer
        queue = rec.queue or NO_LABEL
        c.queue = queue
        if rec.priority is not None:
            c.priority = rec.priority
        c.labels = labels = (c.tenant, c.channel, queue)
        c.queue_entered = ts
        self.sink.count("queued", labels, ts)
        waiting = self.waiting.get(labels)
        if waiting is None:
            waiting = self.waiting[labels] = {}
        waiting[c.contact_id] = ts
        self.sink.gauge("waiting", labels, ts, len(waiting))
        k = self._cases.case_of(c)
        if k.first_asked is None:
            k.first_asked = ts
        if k.labels[2] == NO_LABEL:
            k.labels = (k.labels[0], k.labels[1], queue)
            k.priority = c.priority
        self._cases.keep(k, ts)

    def _on_queue_abandoned(self, rec: Rec, ts: float) -> None:
        c = self.known_contact(rec, ts)
        if c is not None:
            self._abandon(c, ts)

    def _abandon(self, c: ContactState, ts: float) -> None:
        entered = c.queue_entered
        if entered is None:
            return
        self.sink.count("abandoned", c.labels, ts)
        if ts - entered <= self.config.short_abandon_seconds:
            self.sink.count("abandoned_short", c.labels, ts)
        self.sink.observe("abandon_wait_seconds", c.labels, ts, ts - entered)
        self._leave_queue(c, ts)

    def _on_callback_requested(self, rec: Rec, ts: float) -> None:
        """A queued customer who accepts a callback offer leaves the queue with that outcome.

        Runs after the callback rules (which counted the request on the queue's labels). Not an
        abandonment unless ``callback_request_abandons``. Invariant per queue: queued = answered
        + abandoned + queue_callback_requests + dropped + moved on + still waiting or timed out
        (with the setting on, queue_callback_requests is inside abandoned instead).
        """
        c = self.contacts.get(rec.contact_id)
        if c is None or c.queue_entered is None:
            return  # not waiting (an IVR or web request): the request is counted, no queue exit
        self.sink.count("queue_callback_requests", c.labels, ts)
        if self.config.callback_request_abandons:
            self._abandon(c, ts)
        else:
            self._leave_queue(c, ts)

    def _answer(self, c: ContactState, ts: float) -> None:
        """Hand-off to a human: ends the wait in queue, if any."""
        if c.in_ivr:
            self._ivr.close(c, ts)
        c.answered = True
        entered = c.queue_entered
        if entered is None:
            return
        wait = ts - entered
        labels = c.labels
        self.sink.count("answered", labels, ts)
        self.sink.observe("answer_seconds", labels, ts, wait)
        if self.targets.active:
            limit = self.targets.of(c.tenant, c.channel, c.queue, c.priority).service_level_seconds
        else:
            limit = self.config.service_level(c.channel)
        if wait <= limit:
            self.sink.count("answered_in_sl", labels, ts)
        self._leave_queue(c, ts)

    # --- handling ------------------------------------------------------------------------------

    def _start_segment(self, c: ContactState, agent: str, ts: float) -> None:
        current = _open_segment(c)
        if current is not None:
            if current.agent == agent:
                return
            _leave(current, ts)
        c.segments.append(Segment(agent, ts, queue=c.queue))
        k = self._cases.case_of(c)
        prefix = c.contact_id + "/"
        pair = prefix + agent
        if pair not in k.handled:
            if not any(h.startswith(prefix) for h in k.handled):
                self.sink.count("handled", c.labels, ts)  # first agent on this contact
            k.handled.append(pair)
            if agent != NO_LABEL:
                self.sink.count("agent_handled", (c.tenant, agent), ts)
        self._cases.keep(k, ts)

    def _on_agent_connected(self, rec: w.AgentConnected, ts: float) -> None:
        c = self.contact(rec, ts)
        if c is None:
            return
        self._answer(c, ts)
        self._start_segment(c, rec.agent_id or NO_LABEL, ts)
        if c.channel not in TEXT_CHANNELS:
            self._cases.first_response(c, ts)

    def _on_agent_message(self, rec: w.AgentMessage, ts: float) -> None:
        c = self.contact(rec, ts)
        if c is None:
            return
        if rec.sender == "human" and c.channel in TEXT_CHANNELS:
            self._answer(c, ts)
            agent = rec.agent_id or NO_LABEL
            seg = _open_segment(c)
            if seg is None or seg.agent != agent:
                self._start_segment(c, agent, ts)
            self._cases.first_response(c, ts)

    def _on_hold_started(self, rec: Rec, ts: float) -> None:
        c = self.known_contact(rec, ts)
        if c is None:
            return
        seg = _open_segment(c)
        if seg is not None and seg.hold_start is None:
            seg.hold_start = ts

    def _on_hold_ended(self, rec: Rec, ts: float) -> None:
        c = self.known_contact(rec, ts)
        if c is None:
            return
        seg = _open_segment(c)
        if seg is not None and seg.hold_start is not None:
            seg.hold += ts - seg.hold_start
            seg.hold_start = None

    def _on_transferred(self, rec: w.ContactTransferred, ts: float) -> None:
        c = self.known_contact(rec, ts)
        if c is None:
            return
        self.sink.count("transferred", c.labels, ts)
        seg = _open_segment(c)
        if seg is not None:
            _leave(seg, ts)
            if seg.agent != NO_LABEL:
                self.sink.count("agent_transferred", (c.tenant, seg.agent), ts)
        k = self._cases.case_of(c)
        k.transferred = True
        self._cases.keep(k, ts)

    def _on_contact_ended(self, rec: w.ContactEnded, ts: float) -> None:
        c = self.known_contact(rec, ts)
        if c is None:
            return
        ended_by = rec.ended_by
        if c.queue_entered is not None:
            if ended_by == "customer":
                self._abandon(c, ts)
            else:
                self.sink.count("dropped", c.labels, ts, c.contact_id)
                self._leave_queue(c, ts)
        if ended_by == "system" and c.inbound:
            self.sink.count("disconnected_by_system", c.labels, ts, c.contact_id)
        if ended_by == "system" and not c.answered and c.inbound:
            labels = ivr_labels(c, c.menu if c.in_ivr else None)
            self.sink.count("ivr_disconnected_before_handoff", labels, ts, c.contact_id)
        if c.in_ivr:
            self._ivr.close(c, ts)
            if ended_by == "customer" and not c.answered:
                self.sink.count("ivr_hang_up", ivr_labels(c, c.menu), ts)
                self.sink.count("left_in_ivr", c.labels, ts)
        seg = _open_segment(c)
        if seg is not None:
            _leave(seg, ts)
        c.ended = ts
        if not c.segments and c.reasons and self.on_done is not None:
            self.on_done(c, ts)
        if rec.resolved:
            self._cases.resolve(self._cases.case_of(c), ts)
        # kept for its agents' after-contact work, and so that a straggler of it is known
        self.schedule(self._kept_until(c), TIMER_CONTACT, c.contact_id)

    def _on_wrapup_ended(self, rec: w.WrapupEnded, ts: float) -> None:
        c = self.known_contact(rec, ts, after_end=True)
        if c is None:
            return
        agent = rec.agent_id
        seg = None
        for s in c.segments:
            if agent is None or s.agent == agent:
                seg = s
                break
        if seg is None:
            self.sink.count("dq_unmatched_wrapup_ended", c.labels, ts)
            return
        if seg.left is None:
            _leave(seg, ts)
        left = seg.left if seg.left is not None else ts
        labels = c.labels
        self.sink.observe("handle_seconds", labels, ts, ts - seg.start)
        # the same where the part was served (a transferring agent's, in its own queue)
        served = (labels[0], labels[1], seg.queue or labels[2])
        self.sink.observe("segment_handle_seconds", served, ts, ts - seg.start)
        self.sink.observe("talk_seconds", labels, ts, max(0.0, left - seg.start - seg.hold))
        self.sink.observe("hold_seconds", labels, ts, seg.hold)
        self.sink.observe("acw_seconds", labels, ts, ts - left)
        if seg.agent != NO_LABEL:  # the same, per agent (report only)
            who = (c.tenant, seg.agent)
            self.sink.observe("agent_handle_seconds", who, ts, ts - seg.start)
            self.sink.observe("agent_talk_seconds", who, ts, max(0.0, left - seg.start - seg.hold))
            self.sink.observe("agent_hold_seconds", who, ts, seg.hold)
            self.sink.observe("agent_acw_seconds", who, ts, ts - left)
        c.segments.remove(seg)
        c.handled_seconds += ts - seg.start
        if rec.resolved:
            self._cases.resolve(self._cases.case_of(c), ts)
        if c.ended is not None and not c.segments:
            if c.reasons and self.on_done is not None:
                self.on_done(c, ts)
            if ts >= self._kept_until(c):
                del self.contacts[c.contact_id]
            else:
                self.schedule(self._kept_until(c), TIMER_CONTACT, c.contact_id)

    # --- live view, end and checkpoints --------------------------------------------------------

    def waiting_now(self, now: float) -> dict[Labels, tuple[int, float]]:
        """Contacts waiting and the oldest wait per (tenant, channel, queue), at ``now``."""
        out: dict[Labels, tuple[int, float]] = {}
        for labels, waiting in self.waiting.items():
            if waiting:
                oldest = next(iter(waiting.values()))
                out[labels] = (len(waiting), max(0.0, now - oldest))
        return out

    def handling_now(self, now: float) -> dict[Labels, tuple[int, float]]:
        """Contacts in progress (an agent on them, not ended) and the longest one's time with
        its agent now, per (tenant, channel, queue), at ``now``. The live view's, computed
        when a view is published (over the open contacts), never per event."""
        out: dict[Labels, tuple[int, float]] = {}
        for c in self.contacts.values():
            if c.ended is not None:
                continue
            seg = _open_segment(c)
            if seg is None:
                continue
            n, longest = out.get(c.labels, (0, 0.0))
            out[c.labels] = (n + 1, max(longest, now - seg.start))
        return out

    def waiting_past_target(self, now: float) -> dict[Labels, int]:
        """Contacts waiting longer than their service-level threshold at ``now`` (the same
        threshold :meth:`_answer` holds an answer against), per (tenant, channel, queue): an
        e-mail never answered is a miss once its target has passed, not left out."""
        out: dict[Labels, int] = {}
        for labels, waiting in self.waiting.items():
            n = 0
            for cid, entered in waiting.items():
                c = self.contacts.get(cid)
                if c is None:
                    continue
                if self.targets.active:
                    limit = self.targets.of(c.tenant, c.channel, c.queue, c.priority)
                    seconds = limit.service_level_seconds
                else:
                    seconds = self.config.service_level(c.channel)
                n += now - entered > seconds
            if n:
                out[labels] = n
        return out

    def waiting_entries(self) -> dict[Labels, tuple[int, float]]:
        """Contacts waiting and the oldest one's queue entry per (tenant, channel, queue):
        :meth:`waiting_now` at any later time, while nothing happens, is derived from it."""
        return {
            labels: (len(waiting), next(iter(waiting.values())))
            for labels, waiting in self.waiting.items()
            if waiting
        }

    def finish(self, at: float) -> None:
        for key in sorted(self.contacts):
            if self.trace_item is not None:
                self.trace_item(TIMER_CONTACT, key)
            c = self.contacts[key]
            if c.ended is None:
                self.sink.count("contacts_open_at_end", c.labels, at)
            for _ in c.segments:
                self.sink.count("handle_incomplete", c.labels, at)

    def pending_timers(self) -> Iterable[Timer]:
        cfg = self.config
        for cid, c in self.contacts.items():
            if c.ended is not None:
                yield (self._kept_until(c), TIMER_CONTACT, cid)
            else:
                yield (c.last + cfg.idle_timeout(c.channel), TIMER_CONTACT, cid)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        if objects:
            return {"contacts": dict(self.contacts)}
        return {"contacts": {k: v.to_dict() for k, v in self.contacts.items()}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "contacts" not in snap:
            return
        self.contacts.clear()  # in place: the callback rules hold this mapping
        self.contacts.update({k: ContactState.from_dict(v) for k, v in snap["contacts"].items()})
        # the queues' order of entry, rebuilt from the contacts waiting (entry time, then id)
        waiting = sorted(
            (c.queue_entered, cid, c)
            for cid, c in self.contacts.items()
            if c.ended is None and c.queue_entered is not None
        )
        self.waiting = {}
        for entered, cid, c in waiting:
            self.waiting.setdefault(c.labels, {})[cid] = entered
