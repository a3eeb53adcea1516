"""The time policy: how event time becomes the watermark, in one place for every driver.

Replay, partitioned replay and the live worker all ask this object (bytewax keeps the same
concern in its ``ClockLogic``): the engine's core applies it to what it ingests, a live partition
fed by several topics applies it to the slowest of them, and a live worker on real-time input
applies it to the wall clock. Nothing here reads a clock: the wall-clock time is passed in.

Invariants:

* ``watermark = event time - allowed lateness``, whatever the event time comes from (the latest
  event, the slowest input, the wall clock); an event older than the watermark is ``late``.
* The dedupe memory spans ``horizon`` of watermark progress, and ``horizon > lateness``: an id
  forgotten is necessarily behind the watermark, so its repeat is rejected as ``late`` rather
  than counted twice.
* Input is *real time* while its latest event time is within the allowed lateness of the wall
  clock; only then may the wall clock move the watermark (on historical input, partitions'
  positions in event time differ by more than the lateness).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kpis.config import EngineConfig
from kpis.decode import iso

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class TimePolicy:
    """Allowed lateness and dedupe horizon, and the watermark rules built on them."""

    lateness: float
    dedupe_horizon: float
    earliest: float = -_INF
    latest: float = _INF
    max_lead: float | None = None
    max_clock_lead: float = _INF

    @classmethod
    def of(cls, config: EngineConfig) -> TimePolicy:
        return cls(
            config.allowed_lateness_seconds,
            config.dedupe_horizon_seconds,
            config.earliest_event_time.timestamp(),
            config.latest_event_time.timestamp(),
            config.max_lead_seconds,
            config.max_clock_lead_seconds,
        )

    def out_of_range(self, ts: float, latest_seen: float) -> str | None:
        """Why an event time is not one to accept (None: it is). Such an event is rejected
        and moves nothing: a skewed or reset clock cannot stall the engine or make the rest
        of the input late."""
        if ts < self.earliest or ts >= self.latest:
            return f"outside [{iso(self.earliest)}, {iso(self.latest)})"
        lead = self.max_lead
        if lead is not None and latest_seen > -_INF and ts - latest_seen > lead:
            return f"{ts - latest_seen:.0f} s ahead of the latest event time (max_lead {lead:g} s)"
        return None

    def ahead_of_clock(self, ts: float, now: float) -> str | None:
        """Live input: why an event is too far ahead of the wall clock ``now`` (None: it is
        not)."""
        if ts - now > self.max_clock_lead:
            return f"{ts - now:.0f} s ahead of the wall clock (max {self.max_clock_lead:g} s)"
        return None

    @property
    def horizon(self) -> float:
        """How long (in watermark progress) an event id is remembered, at least."""
        return max(self.dedupe_horizon, self.lateness + 1.0)

    def watermark(self, event_time: float) -> float:
        """The watermark that an input having reached ``event_time`` allows."""
        return event_time - self.lateness

    def slowest(
        self,
        reached: Mapping[str, float],
        inputs: Iterable[str],
        *,
        waived: Iterable[str] = (),
    ) -> float:
        """The watermark of a partition fed by several inputs: the slowest input's latest event
        time, minus the allowed lateness. An input that has delivered nothing holds it back
        entirely (``-inf``), unless the driver ``waived`` it (known empty for long enough)."""
        skip = set(waived)
        lows = [reached.get(t, -_INF) for t in inputs if t in reached or t not in skip]
        return (min(lows) if lows else -_INF) - self.lateness

    def realtime(self, now: float, latest_event_time: float) -> bool:
        """Whether input whose latest event time is ``latest_event_time`` is real-time input at
        wall-clock time ``now``."""
        return now - latest_event_time <= self.lateness

    def wall(self, now: float) -> float:
        """The watermark the wall clock allows on real-time input: anything older than
        ``now - lateness`` would be late by definition, so quiet hours still pass deadlines."""
        return now - self.lateness


@dataclass(frozen=True, slots=True)
class EventClock:
    """What "now" is in event time, from the wall clock: the wall clock itself, or a simulated
    clock running ``speed`` times faster from ``event_start`` at wall time ``wall_start`` (the
    live demo plays a simulated day at 60x and tells its worker so; otherwise events ahead of the
    real clock would be rejected as out_of_range after 15 s). Pure: the wall time is passed in.

    Invariant: monotonic in the wall clock, and the identity when not simulated."""

    wall_start: float = 0.0
    event_start: float = 0.0
    speed: float = 1.0

    @property
    def simulated(self) -> bool:
        return self.speed != 1.0 or self.wall_start != self.event_start

    def at(self, wall: float) -> float:
        """The event time at wall-clock time ``wall``."""
        return self.event_start + (wall - self.wall_start) * self.speed

    def wall_at(self, event_time: float) -> float:
        """The wall-clock time at which the clock reads ``event_time``."""
        return self.wall_start + (event_time - self.event_start) / self.speed
