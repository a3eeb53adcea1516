"""The live KPI read model: what ``/api/kpis`` serves, so a wallboard needs no PromQL.

Each worker publishes, per input partition it owns, a *partition document*: cumulative
counters, histogram counts and sums, the queues' live state and the provisional resolutions,
plus the partition's event time. Documents are whole states, not deltas, so publishing is
idempotent: a worker that was cut off from Redis catches up with its next write, and the owner
after a rebalance simply overwrites. :func:`kpi_view` merges the documents of all partitions
into rows per tenant, channel and queue, with the same names as the replay report's KPI rows.

Resolution is final only when a case's reopen window (7 days) passes; until then a resolved
case is *provisional*. The view counts final plus provisional resolutions, which is what a
replay of the log up to now reports (a replay settles what is open at its end), and shows the
provisional part separately.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from kpis.catalogue import COMPLAINT, KPI, REASON, Family, names, ratio_value, ratio_values
from kpis.interfaces import Labels

DOC_VERSION = 1
KEY_PREFIX = "cc-monitor:kpis:partition:"


def finite(x: float) -> float | None:
    return x if x not in (float("inf"), float("-inf")) else None


COUNTS = names(KPI, "count", live=True)
DURATIONS = names(KPI, "duration", live=True)
# families beside the KPI rows, with their own rows in the view (series, then the rows' key)
SIDE: dict[str, Family] = {"reasons": REASON, "complaints": COMPLAINT}
SIDE_COUNTS = {f.name: frozenset(names(f, "count", live=True)) for f in SIDE.values()}
SIDE_DURATIONS = {f.name: frozenset(names(f, "duration", live=True)) for f in SIDE.values()}


def kpi_view(docs: Iterable[Mapping[str, Any]], partitions: int) -> dict[str, Any]:
    """Rows per (tenant, channel, queue) and their roll-ups (``*``), from partition documents.

    Series, rollups and ratios are the replay report's (:mod:`kpis.catalogue`), so a row here
    and the report's total row of the same scope agree on every count."""
    counts: dict[Labels, dict[str, float]] = {}
    durations: dict[Labels, dict[str, list[float]]] = {}
    waiting: dict[Labels, list[float]] = {}
    handling: dict[Labels, list[float]] = {}
    covered: list[int] = []
    latest: float | None = None
    side: dict[str, dict[Labels, dict[str, float]]] = {f.name: {} for f in SIDE.values()}
    fam_of = {n: f for f in SIDE.values() for n in SIDE_COUNTS[f.name] | SIDE_DURATIONS[f.name]}
    for doc in docs:
        covered.append(int(doc["partition"]))
        if doc.get("max_ts") is not None:
            latest = doc["max_ts"] if latest is None else max(latest, doc["max_ts"])
        for name, labels, v in doc["counters"]:
            if name in COUNTS and len(labels) == 3:
                for key in KPI.scopes(tuple(labels)):
                    row = counts.setdefault(key, {})
                    row[name] = row.get(name, 0.0) + v
            elif (fam := fam_of.get(name)) is not None and len(labels) == len(fam.labels):
                for key in fam.scopes(tuple(labels)):
                    row = side[fam.name].setdefault(key, {})
                    row[name] = row.get(name, 0.0) + v
        for name, labels, n, total in doc["histograms"]:
            if name in DURATIONS and len(labels) == 3:
                for key in KPI.scopes(tuple(labels)):
                    d = durations.setdefault(key, {}).setdefault(name, [0.0, 0.0])
                    d[0] += n
                    d[1] += total
            elif (fam := fam_of.get(name)) is not None and len(labels) == len(fam.labels):
                for key in fam.scopes(tuple(labels)):
                    row = side[fam.name].setdefault(key, {})
                    row[name + ".count"] = row.get(name + ".count", 0.0) + n
                    row[name + ".sum"] = row.get(name + ".sum", 0.0) + total
        for labels, resolved, one_touch, seconds in doc.get("provisional", []):
            for key in KPI.scopes(tuple(labels)):
                row = counts.setdefault(key, {})
                row["resolved"] = row.get("resolved", 0.0) + resolved
                row["resolved_one_touch"] = row.get("resolved_one_touch", 0.0) + one_touch
                row["resolved_provisional"] = row.get("resolved_provisional", 0.0) + resolved
                d = durations.setdefault(key, {}).setdefault("resolution_seconds", [0.0, 0.0])
                d[0] += resolved
                d[1] += seconds
        for labels, n, age in doc["waiting"]:
            for key in KPI.scopes(tuple(labels)):
                w = waiting.setdefault(key, [0.0, 0.0])
                w[0] += n
                w[1] = max(w[1], age)
        for labels, n, age in doc.get("handling", ()):  # an older worker's document has none
            for key in KPI.scopes(tuple(labels)):
                h = handling.setdefault(key, [0.0, 0.0])
                h[0] += n
                h[1] = max(h[1], age)
    rows = []
    for key in sorted(set(counts) | set(durations) | set(waiting)):
        c = counts.get(key, {})
        metrics: dict[str, Any] = {name: int(c.get(name, 0.0)) for name in COUNTS}
        metrics["resolved_provisional"] = int(c.get("resolved_provisional", 0.0))
        for name in DURATIONS:
            n, total = durations.get(key, {}).get(name, [0.0, 0.0])
            metrics[name] = {"count": int(n), "mean": round(total / n, 3) if n else None}
        metrics.update(ratio_values(KPI, c))
        queue_now = waiting.get(key, [0.0, 0.0])
        metrics["contacts_waiting"] = int(queue_now[0])
        metrics["oldest_wait_seconds"] = round(queue_now[1], 3)
        in_progress = handling.get(key, [0.0, 0.0])
        metrics["contacts_in_progress"] = int(in_progress[0])
        metrics["longest_in_progress_seconds"] = round(in_progress[1], 3)
        rows.append({"tenant": key[0], "channel": key[1], "queue": key[2], "metrics": metrics})
    return {
        "version": DOC_VERSION,
        "event_time": (
            datetime.fromtimestamp(latest, UTC).isoformat() if latest is not None else None
        ),
        "partitions": {
            "total": partitions,
            "covered": sorted(covered),
            "complete": sorted(covered) == list(range(partitions)),
        },
        "kpis": rows,
        **{key: _side_rows(fam, side[fam.name], counts) for key, fam in SIDE.items()},
    }


def _side_rows(
    family: Family,
    acc: Mapping[Labels, Mapping[str, float]],
    counts: Mapping[Labels, Mapping[str, float]],
) -> list[dict[str, Any]]:
    """Rows per scope of a family beside the KPI rows (contact reasons, complaints), as the
    report's rows of that family (a resolution counts once final: no provisional part)."""
    out = []
    for key in sorted(acc):
        c = acc[key]
        metrics: dict[str, Any] = {n: int(c.get(n, 0.0)) for n in names(family, "count", live=True)}
        for name in names(family, "duration", live=True):
            n, total = c.get(name + ".count", 0.0), c.get(name + ".sum", 0.0)
            metrics[name] = {"count": int(n), "mean": round(total / n, 3) if n else None}
        metrics.update(ratio_values(family, c))
        if family is REASON:  # a reason's share of the contacts coded in its scope
            coded = counts.get(key[:3], {}).get("contacts_coded", 0.0)
            metrics["share"] = ratio_value(c.get("reason_contacts", 0.0), coded)
        out.append({**dict(zip(family.labels, key, strict=True)), "metrics": metrics})
    return out


class KpiViewStore(Protocol):
    """Where partition documents are shared between workers (Redis in production): the KPI
    view that /api/kpis and /api/agents serve. The alert path has its own store
    (:mod:`streams.sinks.alertstore`)."""

    async def publish(self, docs: Mapping[int, bytes]) -> None: ...

    async def fetch(self, partitions: int) -> dict[int, bytes]: ...


class MemoryKpiView:
    """A process-local store: one worker with no Redis configured (the embedded demo)."""

    def __init__(self) -> None:
        self.docs: dict[int, bytes] = {}

    async def publish(self, docs: Mapping[int, bytes]) -> None:
        self.docs.update(docs)

    async def fetch(self, partitions: int) -> dict[int, bytes]:
        return {p: d for p, d in self.docs.items() if p < partitions}


class RedisKpiView:
    """Partition documents in Redis, one key per partition (``cc-monitor:kpis:partition:P``)."""

    def __init__(self, client: Any, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    async def publish(self, docs: Mapping[int, bytes]) -> None:
        if docs:
            await self.client.mset({f"{self.prefix}{p}": d for p, d in docs.items()})

    async def fetch(self, partitions: int) -> dict[int, bytes]:
        keys = [f"{self.prefix}{p}" for p in range(partitions)]
        values = await self.client.mget(keys)
        return {p: v for p, v in enumerate(values) if v is not None}
