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
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from kpis.catalogue import (
    ALL,
    DQ_PREFIX,
    FAMILIES,
    KPI,
    REASON,
    SERIES,
    SUM_RATIOS,
    Family,
    names,
    ratio_value,
    ratio_values,
)
from kpis.interfaces import Branches, Labels

# The KPI rows' count and duration columns, from the series catalogue (kpis/catalogue.py);
# every section's columns are read from it where its rows are built (_Section.rows).
COUNTS = names(KPI, "count")
DURATIONS = names(KPI, "duration")


class ReportSink(Branches):
    """Collects observations per (series, labels, day). Memory: one float per duration sample.
    Further sinks behind it (:class:`kpis.interfaces.Branches`) get what they asked for."""

    def __init__(self, tz: tzinfo, evidence_limit: int = 5) -> None:
        super().__init__()
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
        if self._others:
            route = self._routes.get(name)
            for s in route if route is not None else self._route(name):
                s.count(name, labels, ts, evidence)

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
        if self._others:
            route = self._routes.get(name)
            for s in route if route is not None else self._route(name):
                s.observe(name, labels, ts, value)

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if self._day_start <= ts < self._day_end:
            key = (name, labels, self._day)
        else:
            key = (name, labels, self._day_of(ts))
        if value > self.peaks.get(key, -math.inf):
            self.peaks[key] = value
        if self._others:
            route = self._routes.get(name)
            for s in route if route is not None else self._route(name):
                s.gauge(name, labels, ts, value)


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


class _Section:
    """Rolls the sink's entries of one family of series into rows."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.scopes = family.scopes
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

    def rows(self) -> list[dict[str, Any]]:
        family = self.family
        counts = names(family, "count")
        durations = names(family, "duration")
        sum_ratios = [r for r in SUM_RATIOS if r.family is family]
        peaks = names(family, "gauge")
        # A day's sorted samples are one run shared by its day, week, month and total rows (and
        # scopes): a row whose runs are those of a row before it has the same figures.
        stats: dict[tuple[int, ...], dict[str, float | int | None]] = {}
        sums: dict[int, float] = {}
        no_counts: dict[str, int] = {}
        no_samples: dict[str, list[list[float]]] = {}
        rows: list[dict[str, Any]] = []
        for key in self.row_keys():
            period, bucket, scope = key
            c = self.counts.get(key, no_counts)
            metrics: dict[str, Any] = {name: c.get(name, 0) for name in counts}
            metrics.update(ratio_values(family, c))
            s = self.samples.get(key, no_samples)
            for name in durations:
                runs = s.get(name)
                if not runs:
                    metrics[name] = {"count": 0, "mean": None, "p50": None, "p90": None}
                    continue
                ids = tuple(map(id, runs))
                found = stats.get(ids)
                if found is None:
                    if len(runs) == 1:
                        found = duration_stats(runs[0], presorted=True)
                    else:
                        values: list[float] = []
                        for run in runs:
                            values.extend(run)
                        found = duration_stats(values)
                    stats[ids] = found
                metrics[name] = dict(found)
            for r in sum_ratios:
                num = den = 0.0
                for n in r.numerator:
                    for run in s.get(n, ()):
                        num += _sum(sums, run)
                for n in r.denominator:
                    for run in s.get(n, ()):
                        den += _sum(sums, run)
                metrics[r.name] = ratio_value(num, den)
            p = self.peaks.get(key, {})
            for name in peaks:
                metrics[name + "_peak"] = p.get(name, 0)
            row: dict[str, Any] = {"period": period, "bucket": bucket}
            row.update(zip(family.labels, scope, strict=True))
            row["metrics"] = metrics
            rows.append(row)
        return rows


def _sum(known: dict[int, float], run: list[float]) -> float:
    """``sum(run)``, once per run (a run is kept alive by its rows while they are built)."""
    found = known.get(id(run))
    if found is None:
        found = known[id(run)] = sum(run)
    return found


def build_sections(sink: ReportSink) -> dict[str, Any]:
    """The KPI, IVR, platform and data-quality parts of the report."""
    sections = {f.name: _Section(f) for f in FAMILIES}
    section_of = {s.name: sections[s.family.name] for s in SERIES if s.report}
    quality: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for (name, labels, day), n in sorted(sink.counts.items()):
        if name.startswith(DQ_PREFIX):
            kind = name[len(DQ_PREFIX) :]
            quality[kind] = quality.get(kind, 0) + n
            continue
        sec = section_of.get(name)
        if sec is None:
            unknown[name] = unknown.get(name, 0) + n
        else:
            sec.add_count(name, labels, day, n)
    for (name, labels, day), values in sorted(sink.samples.items()):
        sec = section_of.get(name)
        if sec is not None:
            sec.add_samples(name, labels, day, sorted(values))
    # Peaks of a gauge roll up correctly only as a sum of simultaneous values, which a per-day max
    # cannot give; they are reported per queue (the scope supervisors staff by) and day.
    kpi = sections[KPI.name]
    for (name, labels, day), value in sorted(sink.peaks.items()):
        if section_of.get(name) is not kpi:
            continue
        tenant, channel, queue = labels
        scopes = [(ALL, channel, queue)] + ([labels] if tenant != "-" else [])
        for period, bucket in period_buckets(day):
            for scope in scopes:
                row = kpi.peaks.setdefault((period, bucket, scope), {})
                row[name] = max(row.get(name, 0), value)
    out: dict[str, Any] = {f.section: sections[f.name].rows() for f in FAMILIES}
    coded = kpi.counts
    for row in out[REASON.section]:  # a reason's share of the contacts coded in its scope
        scope = (row["tenant"], row["channel"], row["queue"])
        c = coded.get((row["period"], row["bucket"], scope), {})
        row["metrics"]["share"] = ratio_value(
            row["metrics"]["reason_contacts"], c.get("contacts_coded", 0)
        )
    out["data_quality"] = dict(sorted(quality.items()))
    out["examples"] = {k: v for k, v in sorted(sink.evidence.items())}
    if unknown:
        out["other_counts"] = dict(sorted(unknown.items()))
    return out
