"""Interfaces of the pure layer: where the engine's observations go (:class:`KpiSink`).

The engine emits each observation by series name (declared in :mod:`kpis.catalogue`) with its
bounded labels and event time; a sink (the replay report, Prometheus aggregates, the alert
recorder) decides what to keep. The engine never knows which sink it feeds.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

Labels: TypeAlias = tuple[str, ...]
"""Bounded label values, in the order of the series' family (:mod:`kpis.catalogue`): KPI series
(tenant, channel, queue), IVR series (tenant, channel, flow, menu), platform series (tenant,
component). Never a contact, customer or agent id."""


class KpiSink(Protocol):
    """Receives the engine's observations, in event-time order of processing.

    ``ts`` is the event time the observation belongs to (it decides the day / week / month of a
    report); ``evidence`` is a contact id that a report may show as an example, never a label.
    """

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None: ...

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None: ...

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None: ...


class Tracer(Protocol):
    """Told which event or timer each following observation comes from (an audit's drill-down:
    the contacts behind a number). Only an engine given one pays for it."""

    def record(self, rec: object, ts: float) -> None:
        """Event ``rec`` (a :class:`kpis.wire.Rec`) at ``ts`` is about to be handled."""
        ...

    def timer(self, kind: int, key: str, when: float) -> None:
        """Timer ``kind`` of item ``key`` is about to fire."""
        ...

    def done(self) -> None:
        """The event or timer has been handled."""
        ...


class Tee:
    """Sends every observation to a primary sink, and to a secondary one only the series it
    asked for (``wanted``; None for all); optionally to a third one, for the series in
    ``also_wanted`` (a replay's intervals). Most series matter to a report, few to alert rules
    or intervals, and this is called once per observation."""

    def __init__(
        self,
        primary: KpiSink,
        secondary: KpiSink,
        wanted: frozenset[str] | None = None,
        *,
        also: KpiSink | None = None,
        also_wanted: frozenset[str] = frozenset(),
    ) -> None:
        self._p = primary
        self._s = secondary
        self._wanted = wanted
        self._a = also
        self._aw = also_wanted

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        self._p.count(name, labels, ts, evidence)
        wanted = self._wanted
        if wanted is None or name in wanted:
            self._s.count(name, labels, ts, evidence)
        if name in self._aw:
            self._a.count(name, labels, ts, evidence)  # type: ignore[union-attr]

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._p.observe(name, labels, ts, value)
        wanted = self._wanted
        if wanted is None or name in wanted:
            self._s.observe(name, labels, ts, value)
        if name in self._aw:
            self._a.observe(name, labels, ts, value)  # type: ignore[union-attr]

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._p.gauge(name, labels, ts, value)
        wanted = self._wanted
        if wanted is None or name in wanted:
            self._s.gauge(name, labels, ts, value)
        if name in self._aw:
            self._a.gauge(name, labels, ts, value)  # type: ignore[union-attr]


class Both:
    """Two sinks that each want every observation (a report and a replay's contact ledger)."""

    def __init__(self, first: KpiSink, second: KpiSink) -> None:
        self._a = first
        self._b = second

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        self._a.count(name, labels, ts, evidence)
        self._b.count(name, labels, ts, evidence)

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._a.observe(name, labels, ts, value)
        self._b.observe(name, labels, ts, value)

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._a.gauge(name, labels, ts, value)
        self._b.gauge(name, labels, ts, value)
