"""Reconciliation: does the archive reproduce what the live system published?

``cc-monitor audit reconcile`` replays the event archive and compares the result with the two
things the live system publishes:

* **alert transitions** on the alerts topic: the archive of ``[from - lookback, to + slack)``
  is replayed with the same engine and rules (:class:`streams.replay.Replay`, whose alerts
  equal the live workers'), and every transition (firing at ``starts_at``, resolved at
  ``ends_at``) that falls in ``[from, to)`` must be on the topic exactly once with the same
  fields, and vice versa;
* **KPI snapshots** in the read model (Redis): each partition document carries the input
  offsets its state covers, so each partition is replayed from its topic-partition archives
  up to exactly those offsets, moved to the document's watermark, and its counters,
  histograms, contacts waiting and provisional resolutions must be equal.

Every mismatch is a :class:`Difference`; none (and everything compared) is the proof that the
audit trail is complete. The comparison functions are pure; :func:`reconcile` takes what was
published as plain data, so tests and the CLI differ only in where that data comes from.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from alerts.evaluator import AlertEvent
from alerts.rules import RulesConfig
from kpis.config import EngineConfig
from streams.audit.archive import (
    TOPICS,
    archived_records,
    event_time,
    read_manifest,
    sub_archives,
)
from streams.partitioned import PartitionEngine, partition_doc
from streams.replay import Replay, Source

RECONCILE_VERSION = 1
DEFAULT_LOOKBACK_SECONDS = 86400.0
# alert fields compared besides the key (fingerprint, status, starts_at)
ALERT_FIELDS = ("rule", "labels", "severity", "summary", "runbook_url", "ends_at", "value",
                "evidence")  # fmt: skip
# partition document sections compared, and how many values each entry holds after its key
SECTIONS = {"counters": 1, "histograms": 2, "waiting": 2, "provisional": 3}


@dataclass(frozen=True)
class Difference:
    """One thing the archive's replay and the live system disagree on."""

    kind: str  # "alert", "kpi" or "archive"
    where: str  # what is compared (rule and labels, partition and series); never a contact id
    problem: str
    live: Any = None
    replay: Any = None

    def __str__(self) -> str:
        values = "" if self.live is None and self.replay is None else (
            f" (live {_show(self.live)}, replay {_show(self.replay)})")  # fmt: skip
        return f"{self.kind:7} {self.where}: {self.problem}{values}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "problem": self.problem,
                "live": self.live, "replay": self.replay}  # fmt: skip


def _show(v: Any) -> str:
    return "-" if v is None else orjson.dumps(v).decode()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


# --- alerts -------------------------------------------------------------------------------------


def transition_time(doc: Mapping[str, Any]) -> float | None:
    """When a transition happened: a firing one at its start, a resolved one at its end."""
    alert = doc["alert"]
    t = alert["starts_at"] if doc["status"] == "firing" else alert["ends_at"]
    return None if t is None else float(t)


def _alert_where(doc: Mapping[str, Any]) -> str:
    a = doc["alert"]
    labels = ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k != "alertname")
    return f"{a['rule']}{{{labels}}} {doc['status']} {_iso(transition_time(doc))}"


def _in(t: float | None, start: float | None, end: float | None) -> bool:
    if t is None:
        return False
    return (start is None or t >= start) and (end is None or t < end)


def compare_alerts(
    live: Sequence[Mapping[str, Any]],
    replayed: Sequence[Mapping[str, Any]],
    start: float | None = None,
    end: float | None = None,
    replayed_from: float | None = None,
) -> list[Difference]:
    """Transitions ``{"status", "alert": {...}}`` published live vs replayed, in ``[start, end)``.

    Keyed by (fingerprint, status, starts_at): a transition on one side only, one published
    more than once, and one whose other fields differ are each a difference. ``replayed_from``:
    where the replay began (a live alert that started before it may be missing from the replay
    for that reason alone, which the difference says)."""

    def keyed(docs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, float], list[Any]]:
        out: dict[tuple[str, str, float], list[Any]] = {}
        for d in docs:
            if _in(transition_time(d), start, end):
                a = d["alert"]
                out.setdefault((a["fingerprint"], d["status"], a["starts_at"]), []).append(d)
        return out

    got, want = keyed(live), keyed(replayed)
    diffs: list[Difference] = []
    order = sorted(set(got) | set(want), key=lambda k: (transition_time((got.get(k) or want[k])[0])
                                                        or 0.0, k))  # fmt: skip
    for key in order:
        mine, theirs = got.get(key, []), want.get(key, [])
        where = _alert_where((mine or theirs)[0])
        if not theirs:
            early = replayed_from is not None and key[2] < replayed_from
            hint = "; it started before the replayed period (widen --lookback)" if early else ""
            problem = "on the alerts topic, not in the replay" + hint
            diffs.append(Difference("alert", where, problem))
            continue
        if not mine:
            diffs.append(Difference("alert", where, "in the replay, not on the alerts topic"))
            continue
        if len(mine) > 1:
            diffs.append(Difference("alert", where, f"on the alerts topic {len(mine)} times",
                                    len(mine), 1))  # fmt: skip
        a, b = mine[0]["alert"], theirs[0]["alert"]
        for name in ALERT_FIELDS:
            x, y = a.get(name), b.get(name)
            same = (
                math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
                if isinstance(x, float | int) and isinstance(y, float | int)
                else x == y
            )
            if not same:
                shown = (x, y) if name != "evidence" else (len(x or ()), len(y or ()))
                problem = f"{name} differs" + (" (contact ids not shown)" if name == "evidence"
                                               else "")  # fmt: skip
                diffs.append(Difference("alert", where, problem, *shown))
    return diffs


def replay_alerts(
    root: Path,
    config: EngineConfig,
    rules: RulesConfig,
    start: float | None,
    end: float | None,
) -> list[dict[str, Any]]:
    """The alert transitions a replay of the archive gives, as the alerts topic holds them."""
    from zoneinfo import ZoneInfo

    rep = Replay(config, ZoneInfo("UTC"), rules=rules)
    rep.run([Source(str(root), start, end)])
    return [_event_doc(e) for e in rep.timeline.events]


def _event_doc(e: AlertEvent) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(
        orjson.dumps({"status": e.status, "alert": e.alert.to_dict()})
    )
    return doc


def read_alert_docs(values: Iterable[tuple[str, bytes]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Alerts-topic records ``(where, value)`` as transitions, and the unreadable ones."""
    docs: list[dict[str, Any]] = []
    bad: list[str] = []
    for where, raw in values:
        try:
            d = orjson.loads(raw)
            a = d["alert"]
            well_formed = (
                d["status"] in ("firing", "resolved")
                and isinstance(a["fingerprint"], str)
                and isinstance(a["rule"], str)
                and isinstance(a["labels"], dict)
                and isinstance(a["starts_at"], int | float)
                and (a.get("ends_at") is None or isinstance(a["ends_at"], int | float))
                and transition_time(d) is not None
            )
            if not well_formed:
                raise ValueError(d["status"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            bad.append(where)
            continue
        docs.append(d)
    return docs, bad


# --- KPI snapshots ------------------------------------------------------------------------------


def _keyed_section(section: str, entries: Iterable[list[Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for e in entries:
        if section in ("counters", "histograms"):
            name, labels, values = e[0], e[1], e[2:]
            key = f"{name}{{{','.join(labels)}}}"
        else:
            labels, values = e[0], e[1:]
            key = "{" + ",".join(labels) + "}"
        out[key] = [float(v) for v in values]
    return out


def compare_partition(
    p: int, live: Mapping[str, Any], replayed: Mapping[str, Any]
) -> list[Difference]:
    """A partition's published document vs the one its archive's replay gives."""
    diffs: list[Difference] = []
    for name in ("max_ts", "watermark"):
        x, y = live.get(name), replayed.get(name)
        if x != y and not (x is not None and y is not None and math.isclose(x, y, abs_tol=1e-6)):
            diffs.append(Difference("kpi", f"partition {p} {name}", "differs", _iso(x), _iso(y)))
    for section, width in SECTIONS.items():
        a = _keyed_section(section, live.get(section) or [])
        b = _keyed_section(section, replayed.get(section) or [])
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key, [0.0] * width), b.get(key, [0.0] * width)
            pairs = zip(x, y, strict=True)
            if not all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-6) for u, v in pairs):
                shown = (x, y) if width > 1 else (x[0], y[0])
                diffs.append(Difference("kpi", f"partition {p} {section} {key}", "differs", *shown))
    return diffs


@dataclass
class PartitionReplay:
    engine: PartitionEngine
    records: int = 0
    differences: list[Difference] = field(default_factory=list)


def _expired(root: Path, topic: str, partition: int) -> bool:
    return any("expired" in e for e in read_manifest(root / TOPICS / topic / str(partition)))


def replay_partition(
    root: Path,
    partition: int,
    offsets: Mapping[str, int],
    watermark: float | None,
    config: EngineConfig,
    inputs: tuple[str, ...],
    route: int = 0,
) -> PartitionReplay:
    """Partition ``partition`` rebuilt from its topic-partition archives: every archived record
    below ``offsets`` (a snapshot's), merged across topics by event time as a worker reads
    them, then the watermark moved to the snapshot's. Offsets missing from the archive are
    differences (and are stepped over, so the rest is still compared). ``route``: the input
    partition count, so that a record the worker rerouted (streams.kafka.reroute) is not
    ingested here either (its copy is in the archive of the partition it was sent to)."""
    out = PartitionReplay(PartitionEngine(partition, config, inputs=inputs, route=route))
    pe = out.engine

    def stream(topic: str, upto: int) -> Iterator[tuple[float, str, int, bytes]]:
        # heapq.merge asks a stream for its next record only after the previous one was
        # processed, so stepping the engine's offset over a hole here happens in order
        expect = 0
        where = f"{topic} partition {partition}"
        for offset, raw in archived_records(root, topic, partition):
            if offset >= upto:
                break
            if offset > expect:
                if expect == 0 and _expired(root, topic, partition):
                    problem = "expired by retention: the snapshot cannot be reproduced"
                else:
                    problem = "not in the archive"
                out.differences.append(Difference(
                    "archive", where, f"offsets {expect}-{offset - 1} {problem}"))  # fmt: skip
                pe.offsets[topic] = offset
            expect = offset + 1
            ts = event_time(raw)
            yield (-math.inf if ts is None else ts), topic, offset, raw
        if expect < upto:
            out.differences.append(Difference(
                "archive", where, f"offsets {expect}-{upto - 1} not in the archive (behind the "
                "snapshot; a running worker flushes it every second: run again)"))  # fmt: skip

    streams = [stream(t, int(offsets.get(t, 0))) for t in inputs]
    for _, topic, offset, raw in heapq.merge(*streams, key=itemgetter(0)):
        pe.process(topic, offset, raw)
        out.records += 1
    if watermark is not None:
        # A watermark at or past the partition's latest event: the worker flushed (its input
        # went quiet), which also processes an event at exactly the watermark; advance alone
        # keeps that one buffered.
        if watermark >= pe.max_ts:
            pe.flush(watermark)
        else:
            pe.engine.advance(watermark)
    return out


# --- the whole reconciliation -------------------------------------------------------------------


@dataclass
class Reconciliation:
    archive: str
    start: float | None
    end: float | None
    lookback: float
    alerts_topic: str | None = None
    alerts_published: int = 0
    alerts_replayed: int = 0
    partitions: dict[int, dict[str, Any]] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECONCILE_VERSION,
            "archive": self.archive,
            "period": {
                "from": _iso(self.start),
                "to": _iso(self.end),
                "lookback_seconds": self.lookback,
            },
            "alerts": None
            if self.alerts_topic is None
            else {
                "topic": self.alerts_topic,
                "published": self.alerts_published,
                "replayed": self.alerts_replayed,
            },
            "kpis": {str(p): v for p, v in sorted(self.partitions.items())} or None,
            "clean": self.clean,
            "differences": [d.to_dict() for d in self.differences],
        }

    def summary(self) -> str:
        period = f"{_iso(self.start) or 'the beginning'} to {_iso(self.end) or 'the end'}"
        lines = [f"reconcile {self.archive}: {period}"]
        if self.alerts_topic is not None:
            lines.append(f"  alerts: {self.alerts_published} transitions on {self.alerts_topic}, "
                         f"{self.alerts_replayed} in the archive's replay")  # fmt: skip
        else:
            lines.append("  alerts: not compared")
        if self.partitions:
            n = sum(v["records"] for v in self.partitions.values())
            lines.append(f"  KPI snapshots: {len(self.partitions)} partitions, {n:,} archived "
                         "records replayed up to their offsets")  # fmt: skip
        else:
            lines.append("  KPI snapshots: not compared")
        if self.clean:
            lines.append("clean: the archive's replay equals what the live system published")
        else:
            lines.append(f"{len(self.differences)} difference(s):")
            lines.extend(f"  {d}" for d in self.differences)
        return "\n".join(lines) + "\n"


def reconcile(
    root: Path,
    config: EngineConfig,
    rules: RulesConfig,
    *,
    start: float | None = None,
    end: float | None = None,
    lookback: float = DEFAULT_LOOKBACK_SECONDS,
    alerts: tuple[str, Sequence[tuple[str, bytes]]] | None = None,
    snapshots: Mapping[int, bytes] | None = None,
    partitions: int = 0,
    inputs: tuple[str, ...] = (),
) -> Reconciliation:
    """Compare the archive at ``root`` with what the live system published.

    ``alerts``: (topic, its records as ``(where, value)``); ``snapshots``: the read model's
    partition documents (``partitions`` expected, fed from ``inputs``). Either None: not
    compared."""
    out = Reconciliation(str(root), start, end, lookback)
    if not sub_archives(root):
        out.differences.append(Difference("archive", str(root), "not a live archive "
                                          "(no topics/<topic>/<partition>/ archives)"))  # fmt: skip
    if alerts is not None:
        topic, records = alerts
        out.alerts_topic = topic
        live, bad = read_alert_docs(records)
        out.differences += [Difference("alert", w, "unreadable record on the alerts topic")
                            for w in bad]  # fmt: skip
        since = None if start is None else start - lookback
        slack = config.allowed_lateness_seconds + rules.evaluation_interval_seconds
        replayed = replay_alerts(root, config, rules, since,
                                 None if end is None else end + slack)  # fmt: skip
        out.alerts_published = sum(_in(transition_time(d), start, end) for d in live)
        out.alerts_replayed = sum(_in(transition_time(d), start, end) for d in replayed)
        out.differences += compare_alerts(live, replayed, start, end, since)
    if snapshots is not None:
        for p in range(partitions):
            raw = snapshots.get(p)
            if raw is None:
                out.differences.append(Difference("kpi", f"partition {p}",
                                                  "no KPI snapshot in the read model"))  # fmt: skip
                continue
            doc = orjson.loads(raw)
            if "offsets" not in doc:
                problem = "the snapshot names no offsets (a worker older than reconcile)"
                out.differences.append(Difference("kpi", f"partition {p}", problem))
                continue
            offsets = {str(k): int(v) for k, v in (doc.get("offsets") or {}).items()}
            rp = replay_partition(
                root, p, offsets, doc.get("watermark"), config, inputs, partitions
            )
            out.partitions[p] = {"offsets": offsets, "records": rp.records}
            out.differences += rp.differences
            out.differences += compare_partition(p, doc, partition_doc(rp.engine))
    return out
