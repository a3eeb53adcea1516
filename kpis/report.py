"""Aggregation of engine observations into the replay report (pure, deterministic).

:class:`ReportSink` is a :class:`kpis.interfaces.KpiSink` that keeps, per series and calendar day
(in the report's time zone), counts, duration samples and gauge peaks. :func:`build_report` rolls
days up into ISO weeks, months and the total, and series up into channel and tenant scopes.

Determinism: observations arrive in the engine's processing order, which does not depend on
arrival order; every dict is emitted in sorted order; means use ``math.fsum``; floats are rounded
(durations to the millisecond, ratios to 1e-6) before serialization.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from kpis.interfaces import Labels

ALL = "*"

# Series whose labels are (tenant, channel, queue), and how the report shows them.
COUNTS = (
    "contacts",
    "cases_opened",
    "queued",
    "answered",
    "answered_in_sl",
    "abandoned",
    "dropped",
    "disconnected_by_system",
    "left_in_ivr",
    "handled",
    "transferred",
    "resolved",
    "resolved_one_touch",
    "cases_reopened",
    "cases_reopened_late",
    "cases_unresolved",
    "cases_open_at_end",
    "contacts_orphaned",
    "contacts_open_at_end",
    "handle_incomplete",
    "callbacks_requested",
    "callbacks_compliant",
    "callbacks_breached",
    "callbacks_cancelled",
    "callbacks_pending",
    "callback_attempts",
)
DURATIONS = (
    "first_response_seconds",
    "resolution_seconds",
    "handle_seconds",
    "talk_seconds",
    "hold_seconds",
    "acw_seconds",
    "answer_seconds",
    "abandon_wait_seconds",
    "callback_delay_seconds",
    "ivr_seconds",
)
RATIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (numerator counts, denominator counts)
    "service_level": (("answered_in_sl",), ("answered", "abandoned")),
    "abandonment_rate": (("abandoned",), ("answered", "abandoned")),
    "one_touch_rate": (("resolved_one_touch",), ("resolved",)),
    "callback_compliance": (
        ("callbacks_compliant",),
        ("callbacks_compliant", "callbacks_breached"),
    ),
    "transfer_rate": (("transferred",), ("handled",)),
}
GAUGE_PEAKS = ("waiting",)

IVR_COUNTS = (
    "ivr_entries",
    "ivr_self_served",
    "ivr_hang_up",
    "ivr_errors",
    "ivr_menu_visits",
    "ivr_depth_exceeded",
    "ivr_repeated_input",
    "ivr_disconnected_before_handoff",
    "ivr_agent_request_not_routed",
    "ivr_greeting_too_long",
)
IVR_DURATIONS = ("ivr_time_seconds",)
IVR_RATIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "containment": (("ivr_self_served",), ("ivr_entries",)),
}
SYSTEM_COUNTS = ("system_down",)
SYSTEM_DURATIONS = ("system_downtime_seconds",)


class ReportSink:
    """Collects observations per (series, labels, day). Memory: one float per duration sample."""

    def __init__(self, tz: tzinfo, evidence_limit: int = 5) -> None:
        self.tz = tz
        self.evidence_limit = evidence_limit
        self.counts: dict[tuple[str, Labels, int], int] = {}
        self.samples: dict[tuple[str, Labels, int], array[float]] = {}
        self.peaks: dict[tuple[str, Labels, int], float] = {}
        self.evidence: dict[str, list[str]] = {}
        self._day_start = 0.0
        self._day_end = -1.0
        self._day = 0

    def _day_of(self, ts: float) -> int:
        if self._day_start <= ts < self._day_end:
            return self._day
        d = datetime.fromtimestamp(ts, self.tz).date()
        start = datetime.combine(d, time(0), self.tz).timestamp()
        end = datetime.combine(d + timedelta(days=1), time(0), self.tz).timestamp()
        if start <= ts < end:  # cache only a well-formed day (a DST gap may make it odd)
            self._day_start, self._day_end = start, end
        self._day = d.toordinal()
        return self._day

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        if self._day_start <= ts < self._day_end:
            key = (name, labels, self._day)
        else:
            key = (name, labels, self._day_of(ts))
        self.counts[key] = self.counts.get(key, 0) + 1
        if evidence is not None:
            found = self.evidence.get(name)
            if found is None:
                self.evidence[name] = [evidence]
            elif len(found) < self.evidence_limit and evidence not in found:
                found.append(evidence)

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if self._day_start <= ts < self._day_end:
            key = (name, labels, self._day)
        else:
            key = (name, labels, self._day_of(ts))
        found = self.samples.get(key)
        if found is None:
            self.samples[key] = array("d", (value,))
        else:
            found.append(value)

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if self._day_start <= ts < self._day_end:
            key = (name, labels, self._day)
        else:
            key = (name, labels, self._day_of(ts))
        if value > self.peaks.get(key, -math.inf):
            self.peaks[key] = value


# --- statistics ---


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default); ``q`` in [0, 1]."""
    n = len(sorted_values)
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def duration_stats(values: list[float], presorted: bool = False) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p90": None}
    s = values if presorted else sorted(values)
    return {
        "count": len(s),
        "mean": round(math.fsum(s) / len(s), 3),
        "p50": round(percentile(s, 0.5), 3),
        "p90": round(percentile(s, 0.9), 3),
    }


def ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


# --- periods and scopes ---


def period_buckets(day: int) -> tuple[tuple[str, str], ...]:
    """(period, bucket) pairs a day belongs to: the total, the day, its ISO week and month."""
    d = date.fromordinal(day)
    year, week, _ = d.isocalendar()
    return (
        ("total", "all"),
        ("day", d.isoformat()),
        ("week", f"{year}-W{week:02d}"),
        ("month", f"{d.year}-{d.month:02d}"),
    )


def kpi_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, channel, queue): all, per channel, per channel and queue, per tenant
    (and tenant + channel, tenant + channel + queue) when the series has a tenant."""
    tenant, channel, queue = labels
    yield (ALL, ALL, ALL)
    yield (ALL, channel, ALL)
    yield (ALL, channel, queue)
    if tenant != "-":
        yield (tenant, ALL, ALL)
        yield (tenant, channel, ALL)
        yield (tenant, channel, queue)


def ivr_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, channel, flow, menu): all, per flow, per flow and menu."""
    _tenant, _channel, flow, menu = labels
    yield (ALL, ALL, ALL, ALL)
    yield (ALL, ALL, flow, ALL)
    if menu != "-":
        yield (ALL, ALL, flow, menu)


def system_scopes(labels: Labels) -> Iterator[Labels]:
    tenant, component = labels
    yield (ALL, component)
    if tenant != "-":
        yield (tenant, component)


class _Section:
    """Rolls the sink's entries of one family of series into rows."""

    def __init__(self, names: Iterable[str], scopes: Any) -> None:
        self.names = frozenset(names)
        self.scopes = scopes
        self.counts: dict[tuple[str, str, Labels], dict[str, int]] = {}
        self.samples: dict[tuple[str, str, Labels], dict[str, list[list[float]]]] = {}
        self.peaks: dict[tuple[str, str, Labels], dict[str, float]] = {}

    def _rows(self, labels: Labels, day: int) -> Iterator[tuple[str, str, Labels]]:
        for period, bucket in period_buckets(day):
            for scope in self.scopes(labels):
                yield (period, bucket, scope)

    def add_count(self, name: str, labels: Labels, day: int, n: int) -> None:
        for row in self._rows(labels, day):
            d = self.counts.setdefault(row, {})
            d[name] = d.get(name, 0) + n

    def add_samples(self, name: str, labels: Labels, day: int, values: list[float]) -> None:
        """``values`` sorted: a rollup then sorts a concatenation of sorted runs, which Timsort
        merges instead of sorting from scratch."""
        for row in self._rows(labels, day):
            self.samples.setdefault(row, {}).setdefault(name, []).append(values)

    def row_keys(self) -> list[tuple[str, str, Labels]]:
        order = {"total": 0, "month": 1, "week": 2, "day": 3}
        every = set(self.counts) | set(self.samples) | set(self.peaks)
        return sorted(every, key=lambda k: (order[k[0]], k[1], k[2]))


def _rows_of(
    section: _Section,
    label_names: tuple[str, ...],
    counts: tuple[str, ...],
    durations: tuple[str, ...],
    ratios: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
    peaks: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for key in section.row_keys():
        period, bucket, scope = key
        c = section.counts.get(key, {})
        metrics: dict[str, Any] = {name: c.get(name, 0) for name in counts}
        for name, (num, den) in ratios.items():
            metrics[name] = ratio(sum(c.get(n, 0) for n in num), sum(c.get(n, 0) for n in den))
        s = section.samples.get(key, {})
        for name in durations:
            runs = s.get(name, ())
            if len(runs) == 1:
                metrics[name] = duration_stats(runs[0], presorted=True)
            else:
                values: list[float] = []
                for run in runs:
                    values.extend(run)
                metrics[name] = duration_stats(values)
        p = section.peaks.get(key, {})
        for name in peaks:
            metrics[name + "_peak"] = p.get(name, 0)
        row: dict[str, Any] = {"period": period, "bucket": bucket}
        row.update(zip(label_names, scope, strict=True))
        row["metrics"] = metrics
        rows.append(row)
    return rows


def build_sections(sink: ReportSink) -> dict[str, Any]:
    """The KPI, IVR, platform and data-quality parts of the report."""
    kpi = _Section(COUNTS + DURATIONS + GAUGE_PEAKS, kpi_scopes)
    ivr = _Section(IVR_COUNTS + IVR_DURATIONS, ivr_scopes)
    system = _Section(SYSTEM_COUNTS + SYSTEM_DURATIONS, system_scopes)
    quality: dict[str, int] = {}
    unknown: dict[str, int] = {}
    sections = (kpi, ivr, system)
    for (name, labels, day), n in sorted(sink.counts.items()):
        if name.startswith("dq_"):
            quality[name[3:]] = quality.get(name[3:], 0) + n
            continue
        for sec in sections:
            if name in sec.names:
                sec.add_count(name, labels, day, n)
                break
        else:
            unknown[name] = unknown.get(name, 0) + n
    for (name, labels, day), values in sorted(sink.samples.items()):
        for sec in sections:
            if name in sec.names:
                sec.add_samples(name, labels, day, sorted(values))
                break
    # Peaks of a gauge roll up correctly only as a sum of simultaneous values, which a per-day max
    # cannot give; they are reported per queue (the scope supervisors staff by) and day.
    for (name, labels, day), value in sorted(sink.peaks.items()):
        if name not in kpi.names:
            continue
        tenant, channel, queue = labels
        scopes = [(ALL, channel, queue)] + ([labels] if tenant != "-" else [])
        for period, bucket in period_buckets(day):
            for scope in scopes:
                row = kpi.peaks.setdefault((period, bucket, scope), {})
                row[name] = max(row.get(name, 0), value)
    out: dict[str, Any] = {
        "kpis": _rows_of(
            kpi, ("tenant", "channel", "queue"), COUNTS, DURATIONS, RATIOS, GAUGE_PEAKS
        ),
        "ivr": _rows_of(
            ivr, ("tenant", "channel", "flow", "menu"), IVR_COUNTS, IVR_DURATIONS, IVR_RATIOS
        ),
        "system": _rows_of(system, ("tenant", "component"), SYSTEM_COUNTS, SYSTEM_DURATIONS, {}),
        "data_quality": dict(sorted(quality.items())),
        "examples": {k: v for k, v in sorted(sink.evidence.items())},
    }
    if unknown:
        out["other_counts"] = dict(sorted(unknown.items()))
    return out
