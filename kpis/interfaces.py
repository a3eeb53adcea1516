"""Interfaces of the pure layer: where engine state lives and where KPI observations go.

Plain dicts satisfy :class:`Store`; the live path passes Faust tables (also mutable mappings).
Because a Faust table only writes its changelog on assignment, the engine always assigns a state
object back after changing it; it never relies on in-place mutation being persisted.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Protocol, TypeAlias, TypeVar

V = TypeVar("V")

Store: TypeAlias = MutableMapping[str, V]

Labels: TypeAlias = tuple[str, ...]
"""Bounded label values. KPI series: (tenant, channel, queue). IVR series (names starting with
``ivr_``, except ``ivr_seconds``): (tenant, channel, flow, menu). Platform series
(``system_``): (tenant, component). Never a contact, customer or agent id."""


class KpiSink(Protocol):
    """Receives the engine's observations, in event-time order of processing.

    ``ts`` is the event time the observation belongs to (it decides the day / week / month of a
    report); ``evidence`` is a contact id that a report may show as an example, never a label.
    """

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None: ...

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None: ...

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None: ...


class Tee:
    """Sends every observation to a primary sink, and to a secondary one only the series it
    asked for (``wanted``; None for all): most series matter to a report, few to alert rules,
    and this is called once per observation."""

    def __init__(
        self, primary: KpiSink, secondary: KpiSink, wanted: frozenset[str] | None = None
    ) -> None:
        self._p = primary
        self._s = secondary
        self._wanted = wanted

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        self._p.count(name, labels, ts, evidence)
        wanted = self._wanted
        if wanted is None or name in wanted:
            self._s.count(name, labels, ts, evidence)

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._p.observe(name, labels, ts, value)
        wanted = self._wanted
        if wanted is None or name in wanted:
            self._s.observe(name, labels, ts, value)

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self._p.gauge(name, labels, ts, value)
        wanted = self._wanted
        if wanted is None or name in wanted:
            self._s.gauge(name, labels, ts, value)


KPI_LABELS = ("tenant", "channel", "queue")
IVR_LABELS = ("tenant", "channel", "flow", "menu")
SYSTEM_LABELS = ("tenant", "component")


def label_names(series: str) -> tuple[str, ...]:
    """The names of an engine series' label values (see :data:`Labels`)."""
    if series.startswith("ivr_") and series != "ivr_seconds":  # IVR time per channel / queue
        return IVR_LABELS
    if series.startswith("system_"):
        return SYSTEM_LABELS
    return KPI_LABELS
