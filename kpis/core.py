"""The engine's event-time core: intake, dedupe, reorder buffer, watermark, timers, ticks.

It knows nothing about KPIs. Rules (:mod:`kpis.rules`) register a handler per event type and a
callback per timer kind; the core calls them in event-time order. Its boundary is narrow and
typed (records and float event times in, handler and timer calls out), so that it can later be
compiled without changing the Python API.

Invariants:

* **Watermark** ``W`` (see :class:`kpis.clock.TimePolicy`). An event with ``ts < W`` is rejected
  as ``late``; every accepted event has ``ts >= W`` and waits in a reorder buffer until ``W``
  passes it. Events are processed in ``(ts, type rank, event_id)`` order, so any arrival order
  within the allowed lateness gives exactly the same processing order and results.
* **Timers** fire when ``W`` passes their time, interleaved with events: a timer at ``D`` fires
  after every event with ``ts <= D`` and before any event with ``ts > D``. Timers due at the same
  instant fire in ``(kind, key)`` order. Timers are lazy: the rule checks its item's state when
  one fires and schedules again if it is not yet due, so one timer per open item, at its current
  due time, is all a restore needs.
* **Ticks** at every multiple ``B`` of the tick interval fire after every event and timer at or
  before ``B`` and before anything later, so what listens to them (alert rules) does not depend
  on arrival order, batching or how the watermark moved.
* **Range**: an event time outside the policy's range (:class:`kpis.clock.TimePolicy`) is
  rejected as ``out_of_range`` and moves nothing.
* **Idempotency**: an ``event_id`` seen before (still buffered, however long, or processed less
  than the dedupe horizon behind the watermark) is rejected as ``duplicate`` and changes
  nothing. Older repeats
  are necessarily behind the watermark and rejected as ``late``.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from kpis.clock import TimePolicy
from kpis.decode import Rejection
from kpis.events import TYPE_RANK
from kpis.wire import TYPE_OF, AnyRec, Rec

Handler = Callable[[Any, float], None]
"""``handler(record, event_time)``: a rule's reaction to one event."""
TimerHandler = Callable[[str, float], None]
"""``on_due(key, when)``: a rule's timer of one item, due at ``when``."""
TickListener = Callable[[float, float], None]
"""``listener(first, last)``: ticks ``first``, ``first + every``, ... ``last`` with nothing
processed between them (``first == last``: one tick)."""
Timer = tuple[float, int, str]
"""(due time, kind, key); the kind also orders timers due at the same instant."""

SNAPSHOT_VERSION = 1
_RANK: dict[type[Rec], int] = {cls: TYPE_RANK[t] for cls, t in TYPE_OF.items()}
_INF = float("inf")


def _num(v: float | None) -> float:
    return -_INF if v is None else float(v)


def _no_tick(_first: float, _last: float) -> None:
    return None


def _ignore(_rec: Any, _ts: float) -> None:
    return None


def _chain(handlers: list[Handler]) -> Handler:
    if len(handlers) == 2:  # the usual case (the label caps, then the type's rule): no loop
        first, second = handlers

        def two(rec: Any, ts: float) -> None:
            first(rec, ts)
            second(rec, ts)

        return two

    def every(rec: Any, ts: float) -> None:
        for h in handlers:
            h(rec, ts)

    return every


class EventCore:
    """Orders accepted events by event time and hands them to the rules' handlers."""

    def __init__(
        self, policy: TimePolicy, *, batch: int = 256, auto_watermark: bool = True
    ) -> None:
        """``batch``: accepted events between two drains of the reorder buffer. Results do not
        depend on it (processing order is fixed by event time); live workers use a large one and
        move the watermark themselves, replay 256 to save per-event overhead.

        ``auto_watermark=False``: events do not move the watermark; the driver does, with
        :meth:`advance` (a live partition fed by several topics holds it at the slowest
        topic's progress, so one topic read ahead cannot make another's events late)."""
        self.policy = policy
        self.max_ts = -_INF
        self.watermark = -_INF
        self._lateness = policy.lateness
        # Accepted event times are in [_earliest, _bound): the policy's range, and with a lead
        # bound, no further than that ahead of the latest event time (before the first event
        # any time in range is fine).
        self._earliest = policy.earliest
        self._latest = policy.latest
        self._lead = policy.max_lead
        self._bound = policy.latest
        self.auto_watermark = auto_watermark
        # Reorder buffer: (ts, rank, event_id, record). In-order arrivals (the usual case) go to a
        # deque, which stays sorted by construction; out-of-order ones to a heap.
        self._tail: deque[tuple[float, int, str, Rec]] = deque()
        self._heap: list[tuple[float, int, str, Rec]] = []
        # Dedupe memory in two generations, rotated every `horizon` of watermark progress: an id
        # is remembered for at least `horizon` after it arrived.
        self._seen: set[str] = set()
        self._seen_old: set[str] = set()
        self._horizon = policy.horizon
        self._rotate_at = -_INF
        self._backlog = 0
        self.batch = batch
        self.jump = True  # ticks with nothing between them in one call (False: one call each)
        self._tick_every = 0.0
        self._tick_listener: TickListener = _no_tick
        self._next_tick: float | None = None
        self._timers: list[Timer] = []
        self._on_due: dict[int, TimerHandler] = {}
        self._by_type: dict[str, list[Handler]] = {}
        self._handlers: dict[type[Rec], Handler] = {cls: _ignore for cls in TYPE_OF}

    # --- wiring ---------------------------------------------------------------------------------

    def on(self, event_type: str, handler: Handler) -> None:
        """Call ``handler`` for every event of ``event_type``, after the handlers registered
        before it for that type. A type nobody handles is accepted and ignored."""
        found = self._by_type.setdefault(event_type, [])
        found.append(handler)
        h = found[0] if len(found) == 1 else _chain(list(found))
        for cls, t in TYPE_OF.items():
            if t == event_type:
                self._handlers[cls] = h
                return
        raise ValueError(f"unknown event type {event_type!r}")

    def on_timer(self, kind: int, on_due: TimerHandler) -> None:
        """Call ``on_due(key, when)`` for timers of ``kind`` (one owner per kind)."""
        if kind in self._on_due:
            raise ValueError(f"timer kind {kind} has an owner already")
        self._on_due[kind] = on_due

    def on_tick(self, every: float, listener: TickListener) -> None:
        """Call the listener at every multiple ``B`` of ``every`` seconds of event time, in
        processing order: after every event at or before ``B`` and every timer due at ``B``,
        before anything later. Ticks with nothing between them come in one call,
        ``listener(first, last)``: the cost of a gap in event time is one call, not one per
        tick (a year-9999 timestamp must not stall the engine)."""
        if every <= 0:
            raise ValueError("tick interval must be positive")
        self._tick_every = every
        self._tick_listener = listener

    # --- intake and time ------------------------------------------------------------------------

    def ingest(self, rec: Rec, ts: float) -> None:
        """Accept one record with its event time (epoch seconds), or raise :class:`Rejection`
        (``duplicate``, ``out_of_range`` or ``late``; see :class:`kpis.clock.TimePolicy`)."""
        eid = rec.event_id
        if eid in self._seen or eid in self._seen_old:
            raise Rejection("duplicate", "event_id seen before")
        if not self._earliest <= ts < self._bound:
            why = self.policy.out_of_range(ts, self.max_ts)
            if why is not None:
                raise Rejection("out_of_range", why)
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
            if self._lead is not None:
                # events past max_ts + lead are out of range; TimePolicy decides at the edge
                self._bound = min(self._latest, ts + self._lead)
            wm = ts - self._lateness  # TimePolicy.watermark, inlined on the hot path
            if wm > self.watermark and self.auto_watermark:
                self.watermark = wm
                if wm >= self._rotate_at:
                    self._rotate(wm)
        self._backlog += 1
        if self._backlog >= self.batch:
            self._drain(self.watermark, self.watermark)

    def _rotate(self, watermark: float) -> None:
        dropping = self._seen_old
        self._seen_old = self._seen
        # An id about to be forgotten whose event still waits in the reorder buffer is kept: a
        # live partition's watermark follows its slowest input topic, so an event of a topic
        # read far ahead can wait there for more than two horizons of watermark progress, and
        # a re-delivery of it must still be a duplicate. (Processed events keep their one to
        # two horizons; the ones the watermark passes now are processed now.)
        kept: set[str] = set()
        if dropping:
            for item in (*self._tail, *self._heap):
                if item[0] >= watermark and item[2] in dropping:
                    kept.add(item[2])
        self._seen = kept
        self._rotate_at = watermark + self._horizon

    def advance(self, watermark: float) -> None:
        """Move the watermark forward (never back), process what it passed, fire due timers."""
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

    def schedule(self, when: float, kind: int, key: str) -> None:
        heapq.heappush(self._timers, (when, kind, key))

    def holding(self) -> int:
        """How many accepted events wait in the reorder buffer."""
        return len(self._tail) + len(self._heap)

    def buffered(self) -> list[tuple[Rec, float]]:
        """Accepted events the watermark has not reached yet, in processing order."""
        return [(item[3], item[0]) for item in sorted([*self._tail, *self._heap])]

    def _drain(self, event_limit: float, timer_limit: float) -> None:
        """Process buffered events before ``event_limit``, and timers and ticks before
        ``timer_limit``, merged in time order; at equal times: events, then timers, then the
        tick."""
        self._backlog = 0
        tail = self._tail
        heap = self._heap
        timers = self._timers
        handlers = self._handlers
        on_due = self._on_due
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
                    # every tick before the next event, timer or limit has nothing between it
                    # and the next: one call for the run (multiples, not sums: no float drift)
                    bound = min(ev_ts, due, timer_limit)
                    if bound == _INF or not self.jump:
                        last = tick
                    else:
                        last = (math.ceil(bound / every) - 1) * every
                        while last >= bound:
                            last -= every
                        if last < tick:
                            last = tick
                    self._next_tick = last + every
                    self._tick_listener(tick, last)
                    continue
            if due < ev_ts:
                when, kind, key = heapq.heappop(timers)
                on_due[kind](key, when)
            elif nxt is not None and ev_ts < _INF:
                if from_heap:
                    heapq.heappop(heap)
                else:
                    tail.popleft()
                rec = nxt[3]
                handlers[rec.__class__](rec, ev_ts)
            else:
                return

    # --- checkpoints ----------------------------------------------------------------------------

    def snapshot(self, *, objects: bool = False) -> dict[str, Any]:
        """The core's part of a checkpoint: time, dedupe memory and the buffered records (the
        rules add their state). ``objects=True``: the records and sets themselves, for an
        encoder that writes them (``msgspec.json``); encode before the core runs again."""
        if objects:
            buffer: list[Any] = [[ts, rec] for rec, ts in self.buffered()]
        else:
            buffer = [[ts, msgspec.to_builtins(rec)] for rec, ts in self.buffered()]
        return {
            "version": SNAPSHOT_VERSION,
            "watermark": self.watermark,
            "max_ts": self.max_ts,
            "rotate_at": self._rotate_at,
            "next_tick": self._next_tick,
            "seen": self._seen if objects else sorted(self._seen),
            "seen_old": self._seen_old if objects else sorted(self._seen_old),
            "buffer": buffer,
        }

    def restore(self, snap: Mapping[str, Any], timers: list[Timer]) -> None:
        """Continue from :meth:`snapshot` on a fresh core, with the rules' pending ``timers``."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.get('version')!r} is not {SNAPSHOT_VERSION}")
        # JSON has no infinities: a watermark not yet set (-inf) comes back as null
        self.watermark = _num(snap["watermark"])
        self.max_ts = _num(snap["max_ts"])
        if self._lead is not None and self.max_ts > -_INF:
            self._bound = min(self._latest, self.max_ts + self._lead)
        heapq.heapify(timers)
        self._timers = timers
        self._rotate_at = _num(snap["rotate_at"])
        self._next_tick = snap.get("next_tick")
        self._seen = set(snap["seen"])
        self._seen_old = set(snap["seen_old"])
        self._tail.clear()
        self._heap = []
        for ts, data in snap["buffer"]:
            rec = msgspec.convert(data, AnyRec)
            self._tail.append((float(ts), _RANK[rec.__class__], rec.event_id, rec))
