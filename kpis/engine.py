"""The KPI engine: pure, deterministic, event time only.

It sees records (:class:`kpis.decode.Rec`) and their event time, never the wall clock,
sockets or Faust. Live workers and replay feed the same engine; they differ only in the stores
they pass in and the sink that receives the observations.

Invariants:

* **Watermark** ``W = max event time seen - allowed lateness``. An event with ``ts < W`` is
  rejected as ``late``; every accepted event has ``ts >= W`` and waits in a reorder buffer until
  ``W`` passes it. Events are processed in ``(ts, type rank, event_id)`` order, so any arrival
  order within the allowed lateness gives exactly the same processing order and results.
* **Timers** (callback deadlines, idle contacts, case finalization) fire when ``W`` passes their
  time, interleaved with events: a timer at ``D`` fires after every event with ``ts <= D`` and
  before any event with ``ts > D``. So a callback reached exactly at its deadline is compliant,
  and its breach is counted the moment the watermark passes the deadline.
* **Idempotency**: an ``event_id`` seen before (still buffered, or processed less than the dedupe
  horizon behind the watermark) is rejected as ``duplicate`` and changes nothing. Older repeats
  are necessarily behind the watermark and rejected as ``late``.
* State per contact / case / callback lives in :data:`kpis.interfaces.Store` mappings and is
  assigned back after each change; closed contacts, finalized cases and settled callbacks are
  deleted, so memory follows the number of open items, not the length of the log.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from kpis import wire as w
from kpis.config import EngineConfig
from kpis.decode import Rejection
from kpis.events import TEXT_CHANNELS, TYPE_RANK
from kpis.interfaces import KpiSink, Labels, Store
from kpis.state import NO_LABEL, CallbackState, CaseState, ContactState, Segment
from kpis.wire import TYPE_OF, AnyRec, Rec

# Timer kinds; the number also orders timers due at the same instant.
_T_CALLBACK = 0
_T_CONTACT = 1
_T_CASE = 2

Handler = Callable[[Any, float], None]
_RANK: dict[type[Rec], int] = {cls: TYPE_RANK[t] for cls, t in TYPE_OF.items()}
_INF = float("inf")
SNAPSHOT_VERSION = 1


def _num(v: float | None) -> float:
    return -_INF if v is None else float(v)


def _no_tick(_: float) -> None:
    return None


class Engine:
    """Computes the KPIs of SPEC section 4 from a stream of event records."""

    def __init__(
        self,
        config: EngineConfig,
        sink: KpiSink,
        *,
        contacts: Store[ContactState] | None = None,
        cases: Store[CaseState] | None = None,
        callbacks: Store[CallbackState] | None = None,
        components: Store[tuple[str, float]] | None = None,
        batch: int = 256,
        auto_watermark: bool = True,
    ) -> None:
        """``batch``: accepted events between two drains of the reorder buffer. Results do not
        depend on it (processing order is fixed by event time); live workers use 1 so that
        metrics follow each event, replay a larger number to save per-event overhead.

        ``auto_watermark=False``: events do not move the watermark; the driver does, with
        :meth:`advance` (a live partition fed by several topics holds it at the slowest
        topic's progress, so one topic read ahead cannot make another's events late)."""
        self.config = config
        self.sink = sink
        self.contacts: Store[ContactState] = {} if contacts is None else contacts
        self.cases: Store[CaseState] = {} if cases is None else cases
        self.callbacks: Store[CallbackState] = {} if callbacks is None else callbacks
        self.components: Store[tuple[str, float]] = {} if components is None else components
        self.max_ts = -_INF
        self.watermark = -_INF
        self._lateness = config.allowed_lateness_seconds
        self.auto_watermark = auto_watermark
        # Reorder buffer: (ts, rank, event_id, record). In-order arrivals (the usual case) go to a
        # deque, which stays sorted by construction; out-of-order ones to a heap.
        self._tail: deque[tuple[float, int, str, Rec]] = deque()
        self._heap: list[tuple[float, int, str, Rec]] = []
        # Dedupe memory in two generations, rotated every `horizon` of watermark progress: an id
        # is remembered for at least `horizon` after it arrived. horizon > lateness, so an id
        # forgotten is necessarily behind the watermark and its repeat is rejected as late.
        self._seen: set[str] = set()
        self._seen_old: set[str] = set()
        self._horizon = max(config.dedupe_horizon_seconds, self._lateness + 1.0)
        self._rotate_at = -_INF
        self._backlog = 0
        self.batch = batch
        self._tick_every = 0.0
        self._tick_listener: Callable[[float], None] = _no_tick
        self._next_tick: float | None = None
        self._timers: list[tuple[float, int, str]] = []
        # contacts waiting per (tenant, channel, queue), in order of entry (= event-time order)
        self._waiting: dict[Labels, dict[str, float]] = {}
        by_type: dict[str, Handler] = {
            "contact.started": self._on_contact_started,
            "contact.transferred": self._on_transferred,
            "contact.ended": self._on_contact_ended,
            "ivr.entered": self._on_ivr_entered,
            "ivr.menu": self._on_ivr_menu,
            "ivr.input": self._on_ivr_input,
            "ivr.exited": self._on_ivr_exited,
            "queue.entered": self._on_queue_entered,
            "queue.abandoned": self._on_queue_abandoned,
            "agent.offered": self._on_activity,
            "agent.connected": self._on_agent_connected,
            "agent.message": self._on_agent_message,
            "customer.message": self._on_activity,
            "hold.started": self._on_hold_started,
            "hold.ended": self._on_hold_ended,
            "wrapup.ended": self._on_wrapup_ended,
            "case.resolved": self._on_case_resolved,
            "case.reopened": self._on_case_reopened,
            "callback.requested": self._on_callback_requested,
            "callback.attempted": self._on_callback_attempted,
            "callback.cancelled": self._on_callback_cancelled,
            "system.status": self._on_system_status,
            "agent.state": self._on_agent_state,
        }
        self._handlers: dict[type[Rec], Handler] = {cls: by_type[t] for cls, t in TYPE_OF.items()}

    # --- intake and time ---------------------------------------------------------------------

    def ingest(self, rec: Rec, ts: float) -> None:
        """Accept one record with its event time (epoch seconds), or raise :class:`Rejection`
        (``duplicate`` or ``late``)."""
        eid = rec.event_id
        if eid in self._seen or eid in self._seen_old:
            raise Rejection("duplicate", "event_id seen before")
        if ts < self.watermark:
            raise Rejection(
                "late",
                f"{self.watermark - ts:.3f} s behind the watermark (allowed lateness "
                f"{self._lateness:g} s)",
            )
        self._seen.add(eid)
        item = (ts, _RANK[rec.__class__], eid, rec)
        tail = self._tail
        # event_id is unique among buffered items, so comparisons never reach the record
        if not tail or item > tail[-1]:
            tail.append(item)
        else:
            heapq.heappush(self._heap, item)
        if ts > self.max_ts:
            self.max_ts = ts
            wm = ts - self._lateness
            if wm > self.watermark and self.auto_watermark:
                self.watermark = wm
                if wm >= self._rotate_at:
                    self._rotate(wm)
        self._backlog += 1
        if self._backlog >= self.batch:
            self._drain(self.watermark, self.watermark)

    def _rotate(self, watermark: float) -> None:
        self._seen_old = self._seen
        self._seen = set()
        self._rotate_at = watermark + self._horizon

    def advance(self, watermark: float) -> None:
        """Move the watermark forward (never back), process what it passed, fire due timers.

        Live workers also call this from a wall-clock timer so that deadlines and silence are
        noticed when no events arrive; replay moves it only with event time.
        """
        if watermark > self.watermark:
            self.watermark = watermark
            if watermark >= self._rotate_at:
                self._rotate(watermark)
        self._drain(self.watermark, self.watermark)

    def flush(self) -> None:
        """End of input: process every buffered event and fire timers due before the last event.

        The watermark moves to the last event time; later deadlines stay pending.
        """
        if self.max_ts > self.watermark:
            self.watermark = self.max_ts
        self._drain(_INF, self.watermark)

    def finish(self) -> None:
        """End of a replay: flush, then settle what is still open as of the last event.

        Resolved cases still inside their reopen window are reported with the resolution they
        have (that is the final value as far as the log knows); open callbacks, contacts and
        unresolved cases are counted as pending so a report shows them.
        """
        self.flush()
        for key in sorted(self.cases):
            k = self.cases[key]
            if k.resolved_at is not None:
                self._finalize_case(k)
            else:
                self.sink.count("cases_open_at_end", k.labels, self.max_ts)
        for key in sorted(self.callbacks):
            cb = self.callbacks[key]
            self.sink.count("callbacks_pending", cb.labels, self.max_ts)
        for key in sorted(self.contacts):
            c = self.contacts[key]
            if c.ended is None:
                self.sink.count("contacts_open_at_end", c.labels, self.max_ts)
            for _ in c.segments:
                self.sink.count("handle_incomplete", c.labels, self.max_ts)

    def buffered(self) -> list[tuple[Rec, float]]:
        """Accepted events the watermark has not reached yet, in processing order.

        Only these and the in-memory indexes are not in the stores: a live worker commits its
        input offsets no further than what was processed, so after a restart they are read
        again, while :meth:`rebuild` recovers the indexes.
        """
        return [(item[3], item[0]) for item in sorted([*self._tail, *self._heap])]

    def rebuild(self, watermark: float, max_ts: float) -> None:
        """Recreate the in-memory indexes (timers, contacts waiting) from the stores, after a
        restart with stores that survived (Faust tables, Redis) and the watermark the previous
        run had reached.

        Timers are lazy (each checks its item's state when it fires and reschedules if it is not
        yet due), so one timer per open item, at its current due time, gives the same results
        as the timers of the run that was interrupted.
        """
        self.watermark = watermark
        self.max_ts = max_ts
        cfg = self.config
        timers: list[tuple[float, int, str]] = []
        waiting: list[tuple[float, str, ContactState]] = []
        for cid, c in self.contacts.items():
            if c.ended is not None:
                timers.append((c.ended + cfg.wrapup_timeout_seconds, _T_CONTACT, cid))
            else:
                timers.append((c.last + cfg.idle_timeout(c.channel), _T_CONTACT, cid))
                if c.queue_entered is not None:
                    waiting.append((c.queue_entered, cid, c))
        for case_id, k in self.cases.items():
            if k.resolved_at is not None:
                timers.append((k.resolved_at + cfg.reopen_window_seconds, _T_CASE, case_id))
            else:
                timers.append((k.last + cfg.case_idle_timeout_seconds, _T_CASE, case_id))
        for cb_id, cb in self.callbacks.items():
            timers.append((cb.deadline, _T_CALLBACK, cb_id))
        heapq.heapify(timers)
        self._timers = timers
        self._waiting = {}
        for entered, cid, c in sorted(waiting, key=lambda w: (w[0], w[1])):
            self._waiting.setdefault(c.labels, {})[cid] = entered

    def snapshot(self, include_stores: bool = True, *, objects: bool = False) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is, as plain JSON-able data.

        A live worker stores it with the input offsets it covers (checkpoint), so that the
        state and the record of what was processed are saved together. With
        ``include_stores=False`` the stores are left out (they live in changelogged tables).

        ``objects=True``: the state objects (dataclasses) and buffered records (msgspec structs)
        themselves instead of plain copies, for an encoder that writes both (``msgspec.json``)
        at once; the JSON holds the same data (the dedupe sets unsorted). A checkpoint of a large
        state spent most of its time making the copies. Encode before the engine runs again:
        the objects are live.
        """
        if objects:
            buffer: list[Any] = [[ts, rec] for rec, ts in self.buffered()]
        else:
            buffer = [[ts, msgspec.to_builtins(rec)] for rec, ts in self.buffered()]
        snap: dict[str, Any] = {
            "version": SNAPSHOT_VERSION,
            "watermark": self.watermark,
            "max_ts": self.max_ts,
            "rotate_at": self._rotate_at,
            "next_tick": self._next_tick,
            "seen": self._seen if objects else sorted(self._seen),
            "seen_old": self._seen_old if objects else sorted(self._seen_old),
            "buffer": buffer,
        }
        if include_stores and objects:
            snap["contacts"] = dict(self.contacts.items())
            snap["cases"] = dict(self.cases.items())
            snap["callbacks"] = dict(self.callbacks.items())
            snap["components"] = dict(self.components.items())
        elif include_stores:
            snap["contacts"] = {k: v.to_dict() for k, v in self.contacts.items()}
            snap["cases"] = {k: v.to_dict() for k, v in self.cases.items()}
            snap["callbacks"] = {k: v.to_dict() for k, v in self.callbacks.items()}
            snap["components"] = {k: list(v) for k, v in self.components.items()}
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        """Continue from :meth:`snapshot` (on a fresh engine; stores it did not include must
        already hold their state)."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.get('version')!r} is not {SNAPSHOT_VERSION}")
        if "contacts" in snap:
            self.contacts.clear()
            self.contacts.update(
                {k: ContactState.from_dict(v) for k, v in snap["contacts"].items()}
            )
            self.cases.clear()
            self.cases.update({k: CaseState.from_dict(v) for k, v in snap["cases"].items()})
            self.callbacks.clear()
            self.callbacks.update(
                {k: CallbackState.from_dict(v) for k, v in snap["callbacks"].items()}
            )
            self.components.clear()
            self.components.update(
                {k: (str(v[0]), float(v[1])) for k, v in snap["components"].items()}
            )
        # JSON has no infinities: a watermark not yet set (-inf) comes back as null
        self.rebuild(_num(snap["watermark"]), _num(snap["max_ts"]))
        self._rotate_at = _num(snap["rotate_at"])
        self._next_tick = snap.get("next_tick")
        self._seen = set(snap["seen"])
        self._seen_old = set(snap["seen_old"])
        self._tail.clear()
        self._heap = []
        for ts, data in snap["buffer"]:
            rec = msgspec.convert(data, AnyRec)
            self._tail.append((float(ts), _RANK[rec.__class__], rec.event_id, rec))

    def waiting_now(self, now: float | None = None) -> dict[Labels, tuple[int, float]]:
        """Contacts waiting and the oldest wait per (tenant, channel, queue), at ``now`` (default:
        the watermark)."""
        if now is None:
            now = self.watermark
        out: dict[Labels, tuple[int, float]] = {}
        for labels, waiting in self._waiting.items():
            if waiting:
                oldest = next(iter(waiting.values()))
                out[labels] = (len(waiting), max(0.0, now - oldest))
        return out

    def on_tick(self, every: float, listener: Callable[[float], None]) -> None:
        """Call ``listener(B)`` at every multiple ``B`` of ``every`` seconds of event time, in
        processing order: after every event at or before ``B`` and every timer due at ``B``,
        before anything later. Alert rules evaluate there, so their results do not depend on
        arrival order, batching or how the watermark moved (a replay gives what live gave)."""
        if every <= 0:
            raise ValueError("tick interval must be positive")
        self._tick_every = every
        self._tick_listener = listener

    def _drain(self, event_limit: float, timer_limit: float) -> None:
        """Process buffered events before ``event_limit``, and timers and ticks before
        ``timer_limit``, merged in time order; at equal times: events, then timers, then the
        tick."""
        self._backlog = 0
        tail = self._tail
        heap = self._heap
        timers = self._timers
        handlers = self._handlers
        every = self._tick_every
        while True:
            if heap and (not tail or heap[0] < tail[0]):
                nxt = heap[0]
                from_heap = True
            elif tail:
                nxt = tail[0]
                from_heap = False
            else:
                nxt = None
                from_heap = False
            ev_ts = nxt[0] if nxt is not None and nxt[0] < event_limit else _INF
            due = timers[0][0] if timers and timers[0][0] < timer_limit else _INF
            if every:
                tick = self._next_tick
                if tick is None and ev_ts < _INF:
                    tick = self._next_tick = (ev_ts // every + 1) * every
                if tick is not None and tick < timer_limit and tick < ev_ts and tick < due:
                    self._next_tick = tick + every
                    self._tick_listener(tick)
                    continue
            if due < ev_ts:
                self._fire(heapq.heappop(timers))
            elif nxt is not None and ev_ts < _INF:
                if from_heap:
                    heapq.heappop(heap)
                else:
                    tail.popleft()
                rec = nxt[3]
                handlers[rec.__class__](rec, ev_ts)
            else:
                return

    def _schedule(self, when: float, kind: int, key: str) -> None:
        heapq.heappush(self._timers, (when, kind, key))

    def _fire(self, timer: tuple[float, int, str]) -> None:
        when, kind, key = timer
        if kind == _T_CALLBACK:
            self._callback_due(key, when)
        elif kind == _T_CONTACT:
            self._contact_due(key, when)
        else:
            self._case_due(key, when)

    # --- contacts ------------------------------------------------------------------------------

    def _contact(self, rec: Rec, ts: float) -> ContactState:
        """The contact of ``rec``, created (and flagged) if its start was never seen."""
        c = self.contacts.get(rec.contact_id)
        if c is None:
            c = self._new_contact(rec, ts, inbound=True)
            self.sink.count("dq_contact_without_start", c.labels, ts)
        c.last = ts
        return c

    def _known_contact(self, rec: Rec, ts: float) -> ContactState | None:
        """The contact of ``rec`` if open; an event that can only follow a start is otherwise
        counted as unmatched (data quality) and changes nothing else."""
        c = self.contacts.get(rec.contact_id)
        if c is None:
            labels = (rec.tenant or NO_LABEL, rec.channel, rec.queue or NO_LABEL)
            kind = TYPE_OF[rec.__class__].replace(".", "_")
            self.sink.count("dq_unmatched_" + kind, labels, ts)
            return None
        c.last = ts
        return c

    def _new_contact(self, rec: Rec, ts: float, inbound: bool) -> ContactState:
        cid = rec.contact_id
        tenant = rec.tenant or NO_LABEL
        channel = rec.channel
        queue = rec.queue or NO_LABEL
        labels = (tenant, channel, queue)
        case_id = rec.case_id or cid
        c = ContactState(cid, case_id, tenant, channel, queue, ts, ts, labels, inbound)
        self.contacts[cid] = c
        self.sink.count("contacts", labels, ts)
        self._schedule(ts + self.config.idle_timeout(channel), _T_CONTACT, cid)
        k = self.cases.get(c.case_id)
        if k is None:
            k = CaseState(c.case_id, labels, ts, ts, inbound, evidence=cid)
            self.sink.count("cases_opened", labels, ts)
            self._schedule(ts + self.config.case_idle_timeout_seconds, _T_CASE, c.case_id)
        else:
            if k.resolved_at is not None and inbound:
                # The customer came back about a case marked resolved: it was not resolved.
                k.resolved_at = None
                k.reopened = True
                self.sink.count("cases_reopened", k.labels, ts, k.evidence)
            k.last = ts
        self.cases[c.case_id] = k
        return c

    def _evict(self, c: ContactState) -> None:
        del self.contacts[c.contact_id]

    def _case_of(self, c: ContactState) -> CaseState:
        k = self.cases.get(c.case_id)
        if k is None:  # the case was closed while a contact of it stayed open
            k = CaseState(c.case_id, c.labels, c.started, c.last, False, responded=True)
            self._schedule(c.last + self.config.case_idle_timeout_seconds, _T_CASE, c.case_id)
        return k

    def _on_contact_started(self, rec: w.ContactStarted, ts: float) -> None:
        c = self.contacts.get(rec.contact_id)
        if c is not None:
            c.last = ts
            self.contacts[c.contact_id] = c  # assigned back: a changelogged store needs it
            return
        inbound = rec.direction == "inbound" and rec.initiation in ("inbound", "transfer")
        self._new_contact(rec, ts, inbound)

    def _on_activity(self, rec: Rec, ts: float) -> None:
        c = self._contact(rec, ts)
        self.contacts[c.contact_id] = c

    def _contact_due(self, cid: str, when: float) -> None:
        c = self.contacts.get(cid)
        if c is None:
            return
        if c.ended is not None:
            if when >= c.ended + self.config.wrapup_timeout_seconds:
                for _ in c.segments:
                    self.sink.count("handle_incomplete", c.labels, when)
                self._evict(c)
            return
        deadline = c.last + self.config.idle_timeout(c.channel)
        if when < deadline:
            self._schedule(deadline, _T_CONTACT, cid)
            return
        if c.queue_entered is not None:
            self._leave_queue(c, when)
        if c.in_ivr:
            self._close_ivr(c, when)
        for _ in c.segments:
            self.sink.count("handle_incomplete", c.labels, when)
        self.sink.count("contacts_orphaned", c.labels, when, c.contact_id)
        self._evict(c)

    # --- IVR -----------------------------------------------------------------------------------

    def _ivr_labels(self, c: ContactState, menu: str | None) -> Labels:
        return (c.tenant, c.channel, c.flow or NO_LABEL, menu or NO_LABEL)

    def _close_ivr(self, c: ContactState, ts: float) -> None:
        c.in_ivr = False
        if c.ivr_entered is not None:
            spent = ts - c.ivr_entered
            self.sink.observe("ivr_time_seconds", self._ivr_labels(c, None), ts, spent)
            self.sink.observe("ivr_seconds", c.labels, ts, spent)  # the same, per channel/queue

    def _on_ivr_entered(self, rec: w.IvrEntered, ts: float) -> None:
        c = self._contact(rec, ts)
        c.flow = rec.flow
        c.menu = None
        c.ivr_entered = ts
        c.in_ivr = True
        labels = self._ivr_labels(c, None)
        self.sink.count("ivr_entries", labels, ts)
        greeting = rec.greeting_seconds
        if greeting is not None and greeting > self.config.greeting_target_seconds:
            self.sink.count("ivr_greeting_too_long", labels, ts, c.contact_id)
        self.contacts[c.contact_id] = c

    def _on_ivr_menu(self, rec: w.IvrMenu, ts: float) -> None:
        c = self._contact(rec, ts)
        menu = rec.menu or NO_LABEL  # required on ivr.menu
        c.flow = rec.flow
        c.menu = menu
        labels = self._ivr_labels(c, menu)
        self.sink.count("ivr_menu_visits", labels, ts)
        if rec.level > self.config.ivr_max_depth:
            if c.deep_menus is None:
                c.deep_menus = []
            if menu not in c.deep_menus:
                c.deep_menus.append(menu)
                self.sink.count("ivr_depth_exceeded", labels, ts, c.contact_id)
        self.contacts[c.contact_id] = c

    def _on_ivr_input(self, rec: w.IvrInput, ts: float) -> None:
        c = self._contact(rec, ts)
        c.flow = rec.flow
        asked = rec.requested
        if c.asked is None:
            c.asked = [asked]
        elif asked in c.asked:
            labels = self._ivr_labels(c, rec.menu or c.menu)
            self.sink.count("ivr_repeated_input", labels, ts, c.contact_id)
        else:
            c.asked.append(asked)
        self.contacts[c.contact_id] = c

    def _on_ivr_exited(self, rec: w.IvrExited, ts: float) -> None:
        c = self._contact(rec, ts)
        c.flow = rec.flow
        if c.in_ivr:
            self._close_ivr(c, ts)
        outcome = rec.outcome
        labels = self._ivr_labels(c, c.menu)
        if outcome == "self_served":
            self.sink.count("ivr_self_served", labels, ts)
        elif outcome == "hang_up":
            self.sink.count("ivr_hang_up", labels, ts)
            self.sink.count("left_in_ivr", c.labels, ts)
        elif outcome == "error":
            self.sink.count("ivr_errors", labels, ts, c.contact_id)
        if rec.agent_requested and outcome != "queue":
            self.sink.count("ivr_agent_request_not_routed", labels, ts, c.contact_id)
        self.contacts[c.contact_id] = c

    # --- queue and hand-off -----------------------------------------------------------------------

    def _leave_queue(self, c: ContactState, ts: float) -> None:
        c.queue_entered = None
        waiting = self._waiting.get(c.labels)
        if waiting is not None and waiting.pop(c.contact_id, None) is not None:
            self.sink.gauge("waiting", c.labels, ts, len(waiting))

    def _on_queue_entered(self, rec: w.QueueEntered, ts: float) -> None:
        c = self._contact(rec, ts)
        if c.in_ivr:
            self._close_ivr(c, ts)
        if c.queue_entered is not None:
            self._leave_queue(c, ts)  # moved to another queue before an answer
        queue = rec.queue or NO_LABEL
        c.queue = queue
        c.labels = labels = (c.tenant, c.channel, queue)
        c.queue_entered = ts
        self.sink.count("queued", labels, ts)
        waiting = self._waiting.get(labels)
        if waiting is None:
            waiting = self._waiting[labels] = {}
        waiting[c.contact_id] = ts
        self.sink.gauge("waiting", labels, ts, len(waiting))
        k = self._case_of(c)
        if k.first_asked is None:
            k.first_asked = ts
        if k.labels[2] == NO_LABEL:
            k.labels = (k.labels[0], k.labels[1], queue)
        self.cases[c.case_id] = k
        self.contacts[c.contact_id] = c

    def _on_queue_abandoned(self, rec: Rec, ts: float) -> None:
        c = self._known_contact(rec, ts)
        if c is None:
            return
        self._abandon(c, ts)
        self.contacts[c.contact_id] = c

    def _abandon(self, c: ContactState, ts: float) -> None:
        entered = c.queue_entered
        if entered is None:
            return
        self.sink.count("abandoned", c.labels, ts)
        self.sink.observe("abandon_wait_seconds", c.labels, ts, ts - entered)
        self._leave_queue(c, ts)

    def _answer(self, c: ContactState, ts: float) -> None:
        """Hand-off to a human: ends the wait in queue, if any."""
        if c.in_ivr:
            self._close_ivr(c, ts)
        c.answered = True
        entered = c.queue_entered
        if entered is None:
            return
        wait = ts - entered
        labels = c.labels
        self.sink.count("answered", labels, ts)
        self.sink.observe("answer_seconds", labels, ts, wait)
        if wait <= self.config.service_level(c.channel):
            self.sink.count("answered_in_sl", labels, ts)
        self._leave_queue(c, ts)

    def _open_segment(self, c: ContactState) -> Segment | None:
        for seg in c.segments:
            if seg.left is None:
                return seg
        return None

    def _start_segment(self, c: ContactState, agent: str, ts: float) -> None:
        current = self._open_segment(c)
        if current is not None:
            if current.agent == agent:
                return
            self._leave(current, ts)
        c.segments.append(Segment(agent, ts))
        k = self._case_of(c)
        prefix = c.contact_id + "/"
        pair = prefix + agent
        if pair not in k.handled:
            if not any(h.startswith(prefix) for h in k.handled):
                self.sink.count("handled", c.labels, ts)  # first agent on this contact
            k.handled.append(pair)
        self.cases[c.case_id] = k

    @staticmethod
    def _leave(seg: Segment, ts: float) -> None:
        if seg.hold_start is not None:
            seg.hold += ts - seg.hold_start
            seg.hold_start = None
        seg.left = ts

    def _first_response(self, c: ContactState, ts: float) -> None:
        k = self._case_of(c)
        if not k.responded:
            k.responded = True
            if k.inbound:
                since = k.first_asked if k.first_asked is not None else k.started
                self.sink.observe("first_response_seconds", k.labels, ts, ts - since)
            self.cases[c.case_id] = k

    def _on_agent_connected(self, rec: w.AgentConnected, ts: float) -> None:
        c = self._contact(rec, ts)
        self._answer(c, ts)
        self._start_segment(c, rec.agent_id or NO_LABEL, ts)
        if c.channel not in TEXT_CHANNELS:
            self._first_response(c, ts)
        self.contacts[c.contact_id] = c

    def _on_agent_message(self, rec: w.AgentMessage, ts: float) -> None:
        c = self._contact(rec, ts)
        if rec.sender == "human" and c.channel in TEXT_CHANNELS:
            self._answer(c, ts)
            agent = rec.agent_id or NO_LABEL
            seg = self._open_segment(c)
            if seg is None or seg.agent != agent:
                self._start_segment(c, agent, ts)
            self._first_response(c, ts)
        self.contacts[c.contact_id] = c

    def _on_hold_started(self, rec: Rec, ts: float) -> None:
        c = self._known_contact(rec, ts)
        if c is None:
            return
        seg = self._open_segment(c)
        if seg is not None and seg.hold_start is None:
            seg.hold_start = ts
        self.contacts[c.contact_id] = c

    def _on_hold_ended(self, rec: Rec, ts: float) -> None:
        c = self._known_contact(rec, ts)
        if c is None:
            return
        seg = self._open_segment(c)
        if seg is not None and seg.hold_start is not None:
            seg.hold += ts - seg.hold_start
            seg.hold_start = None
        self.contacts[c.contact_id] = c

    def _on_transferred(self, rec: w.ContactTransferred, ts: float) -> None:
        c = self._known_contact(rec, ts)
        if c is None:
            return
        self.sink.count("transferred", c.labels, ts)
        seg = self._open_segment(c)
        if seg is not None:
            self._leave(seg, ts)
        k = self._case_of(c)
        k.transferred = True
        self.cases[c.case_id] = k
        self.contacts[c.contact_id] = c

    def _on_contact_ended(self, rec: w.ContactEnded, ts: float) -> None:
        c = self._known_contact(rec, ts)
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
            labels = self._ivr_labels(c, c.menu if c.in_ivr else None)
            self.sink.count("ivr_disconnected_before_handoff", labels, ts, c.contact_id)
        if c.in_ivr:
            self._close_ivr(c, ts)
            if ended_by == "customer" and not c.answered:
                self.sink.count("ivr_hang_up", self._ivr_labels(c, c.menu), ts)
                self.sink.count("left_in_ivr", c.labels, ts)
        seg = self._open_segment(c)
        if seg is not None:
            self._leave(seg, ts)
        c.ended = ts
        if rec.resolved:
            self._resolve(self._case_of(c), ts)
        if c.segments:
            self._schedule(ts + self.config.wrapup_timeout_seconds, _T_CONTACT, c.contact_id)
            self.contacts[c.contact_id] = c
        else:
            self._evict(c)

    def _on_wrapup_ended(self, rec: w.WrapupEnded, ts: float) -> None:
        c = self._known_contact(rec, ts)
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
            self.contacts[c.contact_id] = c
            return
        if seg.left is None:
            self._leave(seg, ts)
        left = seg.left if seg.left is not None else ts
        labels = c.labels
        self.sink.observe("handle_seconds", labels, ts, ts - seg.start)
        self.sink.observe("talk_seconds", labels, ts, max(0.0, left - seg.start - seg.hold))
        self.sink.observe("hold_seconds", labels, ts, seg.hold)
        self.sink.observe("acw_seconds", labels, ts, ts - left)
        c.segments.remove(seg)
        if rec.resolved:
            self._resolve(self._case_of(c), ts)
        if c.ended is not None and not c.segments:
            self._evict(c)
        else:
            self.contacts[c.contact_id] = c

    # --- cases ---------------------------------------------------------------------------------

    def _resolve(self, k: CaseState, ts: float) -> None:
        if k.resolved_at is None or ts > k.resolved_at:
            k.resolved_at = ts
            self._schedule(ts + self.config.reopen_window_seconds, _T_CASE, k.case_id)
        self.cases[k.case_id] = k

    def _case_labels(self, rec: Rec) -> tuple[str, str, str]:
        return (rec.tenant or NO_LABEL, rec.channel, rec.queue or NO_LABEL)

    def _on_case_resolved(self, rec: Rec, ts: float) -> None:
        k = self.cases.get(rec.case_id or rec.contact_id)
        if k is None:
            self.sink.count("dq_unmatched_case_resolved", self._case_labels(rec), ts)
            return
        self._resolve(k, ts)

    def _on_case_reopened(self, rec: w.CaseReopened, ts: float) -> None:
        case_id = rec.case_id or rec.contact_id
        k = self.cases.get(case_id)
        if k is None:
            # Reopened after its reopen window closed (or never seen): a new episode, measured
            # from this reopen; it was already counted as resolved once.
            labels = self._case_labels(rec)
            k = CaseState(case_id, labels, ts, ts, False, responded=True, evidence=case_id)
            self.sink.count("cases_reopened_late", labels, ts, rec.contact_id)
            self._schedule(ts + self.config.case_idle_timeout_seconds, _T_CASE, case_id)
        elif k.resolved_at is not None:
            k.resolved_at = None
            k.reopened = True
            self.sink.count("cases_reopened", k.labels, ts, k.evidence)
        k.last = ts
        self.cases[case_id] = k

    def _case_due(self, case_id: str, when: float) -> None:
        k = self.cases.get(case_id)
        if k is None:
            return
        if k.resolved_at is not None:
            if when >= k.resolved_at + self.config.reopen_window_seconds:
                self._finalize_case(k)
            return
        deadline = k.last + self.config.case_idle_timeout_seconds
        if when < deadline:
            self._schedule(deadline, _T_CASE, case_id)
            return
        self.sink.count("cases_unresolved", k.labels, when, k.evidence)
        del self.cases[case_id]

    def _finalize_case(self, k: CaseState) -> None:
        resolved = k.resolved_at
        assert resolved is not None
        labels = k.labels
        self.sink.count("resolved", labels, resolved)
        self.sink.observe("resolution_seconds", labels, resolved, resolved - k.started)
        if len(k.handled) == 1 and not k.transferred and not k.reopened:
            self.sink.count("resolved_one_touch", labels, resolved)
        del self.cases[k.case_id]

    # --- callbacks -----------------------------------------------------------------------------

    def _on_callback_requested(self, rec: w.CallbackRequested, ts: float) -> None:
        cb_id = rec.callback_id or ""  # required on callback events
        c = self.contacts.get(rec.contact_id)
        labels = c.labels if c is not None else self._case_labels(rec)
        if c is not None:
            c.last = ts
            self.contacts[c.contact_id] = c
        if cb_id in self.callbacks:
            self.sink.count("dq_callback_requested_twice", labels, ts)
            return
        reserved = None if rec.reserved_for is None else rec.reserved_for.timestamp()
        if reserved is not None:
            tol = self.config.callback_reserved_tolerance_seconds
            start, deadline = reserved - tol, reserved + tol
        else:
            start, deadline = ts, ts + self.config.callback_deadline_seconds
        self.callbacks[cb_id] = CallbackState(cb_id, labels, ts, start, deadline, rec.contact_id)
        self.sink.count("callbacks_requested", labels, ts)
        self._schedule(deadline, _T_CALLBACK, cb_id)

    def _on_callback_attempted(self, rec: w.CallbackAttempted, ts: float) -> None:
        cb = self.callbacks.get(rec.callback_id or "")
        if cb is None:
            self.sink.count("dq_unmatched_callback_attempted", self._case_labels(rec), ts)
            return
        self.sink.count("callback_attempts", cb.labels, ts)
        if rec.outcome == "reached" and cb.window_start <= ts <= cb.deadline:
            self.sink.count("callbacks_compliant", cb.labels, ts)
            self.sink.observe("callback_delay_seconds", cb.labels, ts, ts - cb.requested)
            del self.callbacks[cb.callback_id]

    def _on_callback_cancelled(self, rec: w.CallbackCancelled, ts: float) -> None:
        cb = self.callbacks.pop(rec.callback_id or "", None)
        if cb is not None:
            self.sink.count("callbacks_cancelled", cb.labels, ts)

    def _callback_due(self, cb_id: str, when: float) -> None:
        cb = self.callbacks.get(cb_id)
        if cb is None or when < cb.deadline:
            return
        self.sink.count("callbacks_breached", cb.labels, cb.deadline, cb.contact_id)
        del self.callbacks[cb_id]

    # --- platform ------------------------------------------------------------------------------

    def _on_system_status(self, rec: w.SystemStatus, ts: float) -> None:
        tenant = rec.tenant or NO_LABEL
        component = rec.component
        status = rec.status
        key = tenant + "\x1f" + component
        labels = (tenant, component)
        previous = self.components.get(key)
        if previous is not None and previous[0] == status:
            return
        if status == "down":
            self.sink.count("system_down", labels, ts)
        if previous is not None and previous[0] == "down":
            self.sink.observe("system_downtime_seconds", labels, ts, ts - previous[1])
        self.sink.gauge("system_status", labels, ts, _STATUS_VALUE[status])
        self.components[key] = (status, ts)

    def _on_agent_state(self, rec: w.AgentState, ts: float) -> None:
        return None


_STATUS_VALUE = {"up": 1.0, "degraded": 0.5, "down": 0.0}
