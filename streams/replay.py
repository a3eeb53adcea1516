"""Replay driver: reads event logs (JSON Lines, gzip, stdin, an event archive, or another
system's records through an importer), feeds the engine and the alert rules, builds the report.

The same :class:`kpis.engine.Engine` and :class:`alerts.evaluator.AlertLogic` run here as in
the live workers; only the sources and the sinks (:class:`kpis.report.ReportSink`, the alert
timeline) differ.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import IO, Any

from alerts.evaluator import Alert, AlertTimeline
from alerts.rules import RulesConfig
from alerts.stage import AlertStage
from kpis.catalogue import ALL
from kpis.config import EngineConfig
from kpis.decode import REJECT_REASONS, Decoder, Rejection, iso
from kpis.engine import Engine
from kpis.events import SCHEMA_VERSION
from kpis.interfaces import KpiSink
from kpis.intervals import INTERVAL_SERIES, IntervalSink, build_intervals
from kpis.report import ReportSink, build_sections
from kpis.rules.labels import folded_doc
from kpis.scorecard import ScorecardTargets, benchmark, scorecard
from kpis.state import NO_LABEL
from kpis.targets import Targets
from kpis.wire import Rec
from streams.assembly import assemble
from streams.audit.archive import archive_lines
from streams.inputs.files import ImportStats, SourceStats, iter_lines
from streams.inputs.files import Source as FileSource
from streams.inputs.importers.base import NOT_RECORDED_FIELDS, Importer, RowProblem
from streams.inputs.lines import LineStream
from streams.kafka.settings import KafkaSettings, read_range
from streams.sinks.ledger import ContactLedger


@dataclass(frozen=True)
class Source(FileSource):
    """An input of a replay: a file or ``-`` (:class:`streams.inputs.files.Source`), an event
    archive directory (:mod:`streams.audit.archive`) or ``kafka:`` (the input topics,
    read-only), the last two read for the event-time range ``[start, end)``."""

    start: float | None = None
    end: float | None = None
    kafka: KafkaSettings | None = None  # for "kafka:": the input topics of this Kafka

    def open(self) -> tuple[IO[bytes], int | None]:
        if self.name == "kafka:":
            import asyncio

            settings = self.kafka if self.kafka is not None else KafkaSettings()
            records = asyncio.run(read_range(settings, self.start, self.end))
            return LineStream(iter(records)), None  # type: ignore[return-value]
        if os.path.isdir(self.name):
            lines = archive_lines(Path(self.name), self.start, self.end)
            return LineStream(lines), None  # type: ignore[return-value]
        return super().open()


REPORT_VERSION = 1


@dataclass
class RejectedLine:
    source: str
    line: int
    reason: str
    detail: str


@dataclass
class ReplayResult:
    sources: list[SourceStats] = field(default_factory=list)
    read: int = 0
    blank: int = 0
    accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejected: list[RejectedLine] = field(default_factory=list)
    outside_range: int = 0  # valid events outside --from/--to (not rejected, not processed)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected_by_reason.values())


class Progress:
    """A one-line progress indicator on a terminal's standard error; silent elsewhere."""

    def __init__(self, enabled: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, name: str, lines: int, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        rate = lines / max(now - self.started, 1e-9)
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 30)
            head = f"[{bar:<30}] {frac:6.1%}"
        else:
            head = f"{done / 1e6:8.1f} MB"
        self.stream.write(f"\r{head} {lines:>12,} events {rate:>10,.0f}/s  {name[-40:]}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


class Replay:
    """Runs the engine over event logs and collects what a report needs."""

    def __init__(
        self,
        config: EngineConfig,
        tz: tzinfo,
        *,
        max_line_bytes: int = 65_536,
        rejected_listing_limit: int = 1000,
        evidence_limit: int = 5,
        rules: RulesConfig | None = None,
        targets: ScorecardTargets | None = None,
        start: float | None = None,
        end: float | None = None,
        ledger: ContactLedger | None = None,
        agent_ids: Callable[[str], str] | None = None,
        staffing_view: bool = False,
        agent_states: bool = True,
    ) -> None:
        """``start`` / ``end``: only events in ``[start, end)`` of event time are processed,
        whatever the source (archives and ``kafka:`` are also read for that range only).
        ``ledger``: the contacts behind every count are kept there (CSV drill-down).
        ``agent_ids``: imported records' agent ids are replaced by what it makes of them (the
        keyed pseudonym, as ``produce`` does; None: the source's own names, and the report
        says so). ``staffing_view``: also keep the live staffing view (alerts.staffing) at each
        tick, as the evaluating worker does (the report does not show it). ``agent_states=False``:
        no agent states (sources that never record them, :attr:`Importer.agent_states`: an
        agent seen only on contacts has none, so the report is the same without the cost)."""
        self.config = config
        self.agent_ids = agent_ids
        self._agent_cache: dict[str, str] = {}
        self.start = start
        self.end = end
        self.tz = tz
        self.sink = ReportSink(tz, evidence_limit)
        self.rules = rules if rules is not None else RulesConfig()
        self.targets = targets if targets is not None else ScorecardTargets()
        self.timeline = AlertTimeline()
        # the same two halves as the live workers (alerts.stage), with one engine
        self.queue_targets = Targets(config)
        self.stage = AlertStage(
            self.rules,
            self.timeline,
            targets=self.queue_targets,
            tz=tz,
            interval_seconds=(config.interval_minutes or 30) * 60.0,
            staffing_view=staffing_view,
        )
        self.recorder = self.stage.recorder(0)
        minutes = config.interval_minutes
        self.intervals = IntervalSink(tz, (minutes or 30) * 60.0)
        self.ledger = ledger
        others: list[tuple[KpiSink, frozenset[str] | None]] = []
        if ledger is not None:
            others.append((ledger, None))
        if minutes:
            others.append((self.intervals, INTERVAL_SERIES))
        self.engine = assemble(
            lambda sink: Engine(config, sink, agent_states=agent_states, tracer=ledger),
            self.sink, self.recorder, others=others, queues=True, agents=True,
            every=self.rules.evaluation_interval_seconds, tick=self._tick,
        )  # fmt: skip
        self.decoder = Decoder(max_line_bytes)
        self.max_line_bytes = max_line_bytes
        self.rejected_listing_limit = rejected_listing_limit
        self.result = ReplayResult()

    def _tick(self, at: float, last: float) -> None:
        self.recorder.on_tick(at, last)
        self.stage.offer(self.recorder.take())
        self.stage.release({0: last})

    def _reject(self, source: str, line: int, reason: str, detail: str) -> None:
        res = self.result
        res.rejected_by_reason[reason] = res.rejected_by_reason.get(reason, 0) + 1
        if len(res.rejected) < self.rejected_listing_limit:
            res.rejected.append(RejectedLine(source, line, reason, detail))

    def _ingest(self) -> Callable[[Rec, float], None]:
        """The engine's intake, behind the event-time range if there is one: an event outside
        it is counted (``outside_range``) and goes no further."""
        ingest = self.engine.ingest
        if self.start is None and self.end is None:
            return ingest
        lo = -math.inf if self.start is None else self.start
        hi = math.inf if self.end is None else self.end
        res = self.result

        def ranged(rec: Rec, ts: float) -> None:
            if lo <= ts < hi:
                ingest(rec, ts)
            else:
                res.outside_range += 1

        return ranged

    def feed(self, source: FileSource, progress: Progress | None = None) -> None:
        stats = SourceStats(source.name)
        self.result.sources.append(stats)
        stream, size = source.open()
        res = self.result
        name = source.name

        def reject(line: int, reason: str, detail: str) -> None:
            self._reject(name, line, reason, detail)

        def report(line: int) -> None:
            if progress is not None:
                progress.update(name, res.read + line, stats.bytes, size)

        outside = res.outside_range
        try:
            lineno, accepted, blank = self.decoder.feed_lines(
                iter_lines(stream, stats, self.max_line_bytes), self._ingest(), reject, report
            )
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        stats.lines = lineno
        res.read += lineno
        res.blank += blank
        res.accepted += accepted - (res.outside_range - outside)

    def _agent_pseudonym(self, agent: str) -> str:
        """An agent id's pseudonym; a source has a few hundred agents, so they are cached
        (bounded: cleared when full)."""
        cache = self._agent_cache
        p = cache.get(agent)
        if p is None:
            assert self.agent_ids is not None
            if len(cache) >= 4096:
                cache.clear()
            p = cache[agent] = self.agent_ids(agent)
        return p

    def feed_import(
        self, source: FileSource, importer: Importer, progress: Progress | None = None
    ) -> None:
        """Feed a source in an external format, through the same decoder as canonical lines."""
        imported = ImportStats(importer.name, not_recorded=tuple(importer.not_recorded))
        stats = SourceStats(source.name, imported=imported)
        self.result.sources.append(stats)
        decode = self.decoder.decode_mapping  # no JSON round trip
        ingest = self._ingest()
        name = source.name
        accepted = 0
        outside = self.result.outside_range
        lineno = 0
        try:
            for n, (lineno, item) in enumerate(
                importer.events(source, stats, imported, self.max_line_bytes)
            ):
                if isinstance(item, RowProblem):
                    self._reject(name, lineno, item.reason, item.detail)
                    continue
                agent = item.get("agent_id")
                if agent and agent != NO_LABEL and self.agent_ids is not None:
                    item["agent_id"] = self._agent_pseudonym(agent)
                try:
                    ingest(*decode(item))
                    accepted += 1
                except Rejection as rej:
                    self._reject(name, lineno, rej.reason, rej.detail)
                if progress is not None and not n & 0xFFFF:
                    progress.update(name, self.result.read + n, 0, None)
        except Exception as exc:  # an importer that cannot go on: named, the report comes out
            why = f"{importer.name} stopped here: {type(exc).__name__}: {exc}"[:300]
            self._reject(name, lineno + 1, "unreadable", why)
            stats.lines = max(stats.lines, lineno + 1)
        self.result.read += stats.lines
        self.result.accepted += accepted - (self.result.outside_range - outside)

    def run(
        self,
        sources: Sequence[FileSource],
        show_progress: bool = False,
        importer: Importer | None = None,
    ) -> dict[str, Any]:
        progress = Progress(show_progress)
        try:
            for src in sources:
                if importer is None:
                    self.feed(src, progress)
                else:
                    self.feed_import(src, importer, progress)
        finally:
            progress.close()
        self.engine.finish()
        return self.report()

    def report(self) -> dict[str, Any]:
        """The report document (see docs/report.md for its schema): :func:`report_doc`."""
        return report_doc(self)


def report_doc(replay: Replay) -> dict[str, Any]:
    """The report document (see docs/report.md for its schema)."""
    res = replay.result
    digest = hashlib.sha256()
    for s in res.sources:
        digest.update(s.sha256.encode() + b"\n")
    engine = replay.engine
    past = engine.waiting_past_target()
    doc: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "event_schema_version": SCHEMA_VERSION,
        "input": {
            "digest": digest.hexdigest(),
            "sources": [_source_doc(s) for s in res.sources],
        },
        "config": {
            "rules": replay.rules.model_dump(mode="json"),
            "scorecard": replay.targets.model_dump(mode="json"),
            "timezone": str(replay.tz),
            "max_line_bytes": replay.max_line_bytes,
            "rejected_listing_limit": replay.rejected_listing_limit,
            "engine": replay.config.model_dump(mode="json"),
        },
        "events": {
            "lines": res.read,
            "blank_lines": res.blank,
            "accepted": res.accepted,
            "rejected": res.rejected_total,
            "last_event_time": iso(engine.max_ts, replay.tz) if res.accepted else None,
            **_range_doc(replay),
        },
        "queues_at_end": [
            {
                "tenant": labels[0],
                "channel": labels[1],
                "queue": labels[2],
                "waiting": n,
                "oldest_wait_seconds": round(oldest, 3),
                "past_target": past.get(labels, 0),
            }
            for labels, (n, oldest) in sorted(engine.waiting_now().items())
        ],
    }
    doc.update(build_sections(replay.sink))
    folded = engine.labels.folded_examples()
    if folded:  # only then: a report of bounded input stays what it was
        doc["labels_folded"] = folded_doc(folded, doc["data_quality"])
    if any(s.imported is not None for s in res.sources):
        doc["input"]["agent_ids"] = (
            "pseudonymized" if replay.agent_ids is not None else "as the source names them"
        )
    missing = not_recorded(res.sources)
    if missing:
        doc["input"]["not_recorded"] = missing
        unmeasure(doc, missing)
    doc["alerts"] = [_alert_doc(a, replay.tz) for a in replay.timeline.alerts()]
    if replay.queue_targets.active:
        doc["targets"] = _targets_doc(doc["kpis"], replay.queue_targets)
    if replay.config.interval_minutes:
        doc["intervals"] = build_intervals(replay.intervals, replay.queue_targets)
    doc["scorecard"] = scorecard(doc, replay.targets)
    doc["benchmark"] = benchmark(doc)
    doc["rejected"] = {
        "total": res.rejected_total,
        "by_reason": {r: res.rejected_by_reason.get(r, 0) for r in REJECT_REASONS},
        "listed": len(res.rejected),
        "events": [
            {"source": r.source, "line": r.line, "reason": r.reason, "detail": r.detail}
            for r in res.rejected
        ],
    }
    return doc


def _alert_doc(a: Alert, tz: tzinfo) -> dict[str, Any]:
    return {
        "alertname": a.rule,
        "severity": a.severity,
        "fingerprint": a.fingerprint,
        "labels": dict(sorted(a.labels.items())),
        "starts_at": iso(a.starts_at, tz),
        "ends_at": iso(a.ends_at, tz) if a.ends_at is not None else None,
        "duration_seconds": round(a.ends_at - a.starts_at, 3) if a.ends_at is not None else None,
        "summary": a.summary,
        "runbook_url": a.runbook_url,
        "evidence": a.evidence,
    }


def _targets_doc(rows: list[dict[str, Any]], targets: Targets) -> list[dict[str, Any]]:
    """Per tenant and queue of the whole log, the targets that applied (priority-less) and
    the share that met each. Events without a tenant are the tenant-wide row's remainder;
    with none at all, the tenant-wide rows stand for tenant ``-``."""
    total = [r for r in rows if r["period"] == "total" and ALL not in (r["channel"], r["queue"])
             and r["queue"] != "-"]  # fmt: skip
    tenanted = {(r["channel"], r["queue"]) for r in total if r["tenant"] != ALL}
    out = []
    for r in total:
        if r["tenant"] == ALL and (r["channel"], r["queue"]) in tenanted:
            continue
        tenant = "-" if r["tenant"] == ALL else r["tenant"]
        t = targets.of(tenant, r["channel"], r["queue"])
        m = r["metrics"]
        out.append({
            "tenant": tenant, "channel": r["channel"], "queue": r["queue"],
            "service_level_seconds": t.service_level_seconds,
            "service_level_goal": t.service_level_goal,
            "service_level": m["service_level"],
            "first_response_seconds": t.first_response_seconds,
            "first_response_sla": m["first_response_sla"],
            "resolution_seconds": t.resolution_seconds,
            "resolution_sla": m["resolution_sla"],
            "calendar": t.calendar_name,
        })  # fmt: skip
    return out


def _range_doc(replay: Replay) -> dict[str, Any]:
    """With --from/--to: the range and the events left out (absent without a range, so a
    report of the whole log keeps its shape)."""
    if replay.start is None and replay.end is None:
        return {}
    return {
        "range": {
            "from": None if replay.start is None else iso(replay.start, replay.tz),
            "to": None if replay.end is None else iso(replay.end, replay.tz),
        },
        "outside_range": replay.result.outside_range,
    }


# The report series made of each field a source may not record (NOT_RECORDED_FIELDS). Handle
# time stays: it is talk time only then, and says so (the benchmark does not rate it).
NOT_RECORDED_SERIES: dict[str, tuple[str, ...]] = {
    "hold": ("hold_seconds", "agent_hold_seconds"),
    "after_contact_work": ("acw_seconds", "agent_acw_seconds"),
    "transfers": ("transferred", "transfer_rate", "agent_transferred"),
    "who_ended": ("hung_up_first", "hung_up_on_hold", "agent_hung_up_first",
                  "agent_hung_up_on_hold"),
    "offers": ("offers", "offers_missed", "offer_miss_rate", "agent_offers",
               "agent_offers_missed", "agent_offer_miss_rate"),
}  # fmt: skip


def not_recorded(sources: Sequence[SourceStats]) -> dict[str, list[str]]:
    """Per field, the sources of a replay that never record it."""
    out: dict[str, list[str]] = {}
    for s in sources:
        for f in s.imported.not_recorded if s.imported is not None else ():
            out.setdefault(f, []).append(s.name)
    return {f: out[f] for f in NOT_RECORDED_FIELDS if f in out}


def unmeasure(doc: dict[str, Any], missing: Mapping[str, list[str]]) -> None:
    """What a source of the report never records is "not measured" (None) in every row,
    never the zero its absence would add up to. One source without it is enough: its zeros
    would be mixed into the others' figures."""
    names = {n for f in missing for n in NOT_RECORDED_SERIES[f]}
    for section in ("kpis", "agents"):
        for r in doc.get(section, []):
            m = r["metrics"]
            for n in names & m.keys():
                v = m[n]
                m[n] = dict.fromkeys(v, None) if isinstance(v, dict) else None


def _source_doc(s: SourceStats) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": s.name, "sha256": s.sha256, "bytes": s.bytes, "lines": s.lines}
    if s.imported is not None:
        doc["import"] = s.imported.to_dict()
    return doc


def replay_paths(
    paths: Sequence[str],
    config: EngineConfig,
    tz: tzinfo,
    *,
    show_progress: bool = False,
    importer: Importer | None = None,
    start: float | None = None,
    end: float | None = None,
    kafka: KafkaSettings | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Replay files (``-`` = stdin; a directory is an archive and ``kafka:`` the input topics,
    read for ``[start, end)``; an external format through ``importer``) and report."""
    sources = [Source(p, start, end, kafka) for p in paths]
    if importer is not None and not importer.agent_states:
        kwargs.setdefault("agent_states", False)
    return Replay(config, tz, start=start, end=end, **kwargs).run(sources, show_progress, importer)
