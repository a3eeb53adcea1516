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


class Branches:
    """Further sinks of an engine's observations, each with the series it asked for
    (``(sink, wanted)``; None: every series): a report and a replay's ledger want all, the
    alert recorder and a replay's intervals a few. The sinks a series goes to are resolved
    once per name and kept: this is on the path of every observation."""

    def __init__(self, *others: tuple[KpiSink, frozenset[str] | None]) -> None:
        self._others = others
        self._routes: dict[str, tuple[KpiSink, ...]] = {}

    def branch(self, *others: tuple[KpiSink, frozenset[str] | None]) -> None:
        """Send to these sinks too (before the first observation)."""
        self._others = self._others + others
        self._routes = {}

    def _route(self, name: str) -> tuple[KpiSink, ...]:
        route = self._routes[name] = tuple(
            s for s, wanted in self._others if wanted is None or name in wanted
        )
        return route


class FanOut(Branches):
    """Sends every observation to a primary sink, and to each further sink the series it
    asked for (:class:`Branches`). A primary that is itself a :class:`Branches` (the replay's
    report) takes the further sinks instead, one call less per observation."""

    def __init__(self, primary: KpiSink, *others: tuple[KpiSink, frozenset[str] | None]) -> None:
        super().__init__(*others)
        self._p = primary

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        self._p.count(name, labels, ts, evidence)
        route = self._routes.get(name)
        for s in route if route is not None else self._route(name):
            s.count(name, labels, ts, evidence)

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._p.observe(name, labels, ts, value)
        route = self._routes.get(name)
        for s in route if route is not None else self._route(name):
            s.observe(name, labels, ts, value)

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._p.gauge(name, labels, ts, value)
        route = self._routes.get(name)
        for s in route if route is not None else self._route(name):
            s.gauge(name, labels, ts, value)


def fan_out(primary: KpiSink, *others: tuple[KpiSink, frozenset[str] | None]) -> KpiSink:
    """``primary`` with ``others`` behind it: the primary itself if it takes branches."""
    if not others:
        return primary
    if isinstance(primary, Branches):
        primary.branch(*others)
        return primary
    return FanOut(primary, *others)
