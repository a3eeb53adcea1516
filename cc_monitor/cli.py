"""The ``cc-monitor`` command."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import os
import signal
import sys
import tempfile
import textwrap
import typing
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import orjson
from pydantic import ValidationError

from cc_monitor.render import render_markdown
from cc_monitor.settings import Settings, SettingsError, load_settings, new_run
from cc_monitor.simulator import SimConfig, lines
from kpis.events import json_schema
from streams.inputs.importers import (
    DEFAULT_SOURCE_ZONES,
    FORMATS,
    Importer,
    ImporterConfigError,
    make_importer,
)
from streams.inputs.privacy import Pseudonymizer
from streams.kafka.producer import ProduceStats, produce_paths, tail_queue_log
from streams.kafka.settings import KafkaSettings
from streams.replay import replay_paths

if TYPE_CHECKING:
    from streams.sinks.ledger import ContactLedger


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        timezone=getattr(args, "timezone", None),
        rules_file=getattr(args, "rules", None),
    )


def _write_json(doc: object, path: str) -> None:
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if path == "-":
        sys.stdout.buffer.write(data)
    else:
        _output(path).write_bytes(data)


class UsageError(Exception):
    """A mistake in what the command was given: one line on standard error, exit code 2."""


def _output(path: str) -> Path:
    """An output file whose folder is made if missing (said in one line if it cannot be)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    if out.is_dir():
        raise UsageError(f"{path} is a folder: give a file name")
    return out


LOG_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz", ".gz")


def _inputs(paths: Sequence[str], *, archives: bool = True, fmt: str = "jsonl") -> list[str]:
    """The paths a command reads, checked before any work: a missing one is refused (exit 2,
    the same for every command). A folder is an event archive (it has a manifest) or, for
    canonical logs, the logs in it (sorted by name); any other folder is refused."""
    out: list[str] = []
    for p in paths:
        if p in ("-", "kafka:"):
            out.append(p)
            continue
        path = Path(p)
        if not path.exists():
            raise UsageError(f"no such file or archive: {p}")
        if not path.is_dir():
            out.append(p)
            continue
        if archives and (path / "manifest.jsonl").exists():
            out.append(p)
            continue
        logs = sorted(str(f) for f in path.iterdir()
                      if f.is_file() and f.name.endswith(LOG_SUFFIXES))  # fmt: skip
        if fmt != "jsonl" or not logs:
            kind = "an event archive (no manifest.jsonl)" if archives else "a file"
            raise UsageError(f"{p} is a folder but not {kind} and holds no event logs "
                             f"({', '.join(LOG_SUFFIXES[:4])}): give the files")  # fmt: skip
        out.extend(logs)
    return out


def cmd_schema(args: argparse.Namespace) -> int:
    _write_json(json_schema(), args.out)
    return 0


def _importer(
    args: argparse.Namespace, settings: Settings, pseudonymize: Pseudonymizer | None = None
) -> Importer | None:
    fmt = getattr(args, "format", "jsonl")
    if fmt == "jsonl":
        return None
    zone = getattr(args, "source_timezone", None)
    source_tz = ZoneInfo(zone) if zone else None
    return make_importer(
        fmt,
        pseudonymize if pseudonymize is not None else settings.pseudonymizer(live=False),
        source_tz,
        getattr(args, "mapping", None),
    )


def _report_zone(args: argparse.Namespace, settings: Settings) -> ZoneInfo:
    """The configured zone; for an imported format whose clock has no offset, the source's zone
    unless a zone was configured (a file, the environment or --timezone)."""
    fmt = getattr(args, "format", "jsonl")
    if "timezone" in settings.model_fields_set or fmt not in DEFAULT_SOURCE_ZONES:
        return settings.zone()
    return ZoneInfo(getattr(args, "source_timezone", None) or DEFAULT_SOURCE_ZONES[fmt])


def _replay(
    paths: Sequence[str], args: argparse.Namespace, settings: Settings, *, ranged: bool = True
) -> int:
    """``ranged``: the command's --from / --to are an event-time range (the demo's --start is
    the simulated first day instead)."""
    csv_dir = getattr(args, "csv", None)
    ledger = _ledger(settings) if csv_dir else None
    importer, agent_ids = _imports(args, settings)
    report = replay_paths(
        paths,
        settings.engine,
        _report_zone(args, settings),
        start=getattr(args, "start", None) if ranged else None,
        end=getattr(args, "end", None) if ranged else None,
        kafka=_kafka(args, settings) if "kafka:" in paths else None,
        importer=importer,
        show_progress=not args.no_progress,
        max_line_bytes=settings.max_line_bytes,
        rejected_listing_limit=settings.rejected_listing_limit,
        evidence_limit=settings.evidence_limit,
        rules=settings.rules(),
        ledger=ledger,
        agent_ids=agent_ids,
    )
    if args.json:
        _write_json(report, args.json)
    if csv_dir and ledger is not None:
        from streams.exports import write_csv

        written = write_csv(report, ledger, Path(csv_dir), _report_zone(args, settings))
        kept = "" if not ledger.dropped else (
            f"; {ledger.dropped:,} contacts beyond --csv-max-contacts not listed")  # fmt: skip
        print(f"cc-monitor: {csv_dir}: " + ", ".join(f"{k} {n:,} lines"
              for k, n in written.items()) + kept, file=sys.stderr)  # fmt: skip
    if args.html:
        from cc_monitor.html import render_html

        _output(args.html).write_text(render_html(report), encoding="utf-8")
    if not args.quiet and args.json != "-":
        sys.stdout.write(render_markdown(report))
    if args.strict and report["rejected"]["total"]:
        print(
            f"cc-monitor: {report['rejected']['total']} event(s) rejected (--strict)",
            file=sys.stderr,
        )
        return 1
    return 0


def _imports(
    args: argparse.Namespace, settings: Settings
) -> tuple[Importer | None, Pseudonymizer | None]:
    """The importer of ``--format`` and what becomes of its agent names: keyed pseudonyms
    (the customer ids' key) unless ``show_agent_names`` is set."""
    if getattr(args, "format", "jsonl") == "jsonl":
        return None, None
    pseudonymize = settings.pseudonymizer(live=False)
    agents = None if settings.show_agent_names else pseudonymize
    return _importer(args, settings, pseudonymize), agents


def _ledger(settings: Settings) -> ContactLedger:
    from streams.sinks.ledger import ContactLedger

    return ContactLedger(settings.csv_max_contacts, settings.pseudonymizer(live=False))


def cmd_explain(args: argparse.Namespace) -> int:
    """The contacts behind one number: replay with a contact ledger and list those whose
    counts make it up."""
    from streams.exports import CONTACT_COLUMNS, contact_line, explain

    _check_metric(args.metric)
    paths = _inputs(args.paths, fmt=args.format)
    settings = _settings(args)
    ledger = _ledger(settings)
    tz = _report_zone(args, settings)
    importer, agent_ids = _imports(args, settings)
    replay_paths(
        paths, settings.engine, tz,
        start=args.start, end=args.end,
        kafka=_kafka(args, settings) if "kafka:" in paths else None,
        importer=importer, show_progress=not args.no_progress,
        max_line_bytes=settings.max_line_bytes, rules=settings.rules(), ledger=ledger,
        agent_ids=agent_ids,
    )  # fmt: skip
    rows = explain(ledger, args.metric, tz, channel=args.channel, queue=args.queue,
                   tenant=args.tenant, day=args.day and args.day.isoformat(),
                   reason=args.reason)  # fmt: skip
    import csv

    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(CONTACT_COLUMNS)
    for row in rows:
        out.writerow(contact_line(row, tz))
    scope = " ".join(f"{k}={v}" for k, v in (("tenant", args.tenant), ("channel", args.channel),
                     ("queue", args.queue), ("reason", args.reason), ("day", args.day))
                     if v)  # fmt: skip
    print(f"cc-monitor: {len(rows):,} contacts counted in {args.metric} {scope}".rstrip(),
          file=sys.stderr)  # fmt: skip
    return 0


def countable() -> list[str]:
    """What ``explain --metric`` can list: every count series of the catalogue."""
    from kpis.catalogue import DQ_PREFIX, SERIES

    return sorted(
        s.name
        for s in SERIES
        if s.kind == "count" and s.report and not s.name.startswith(DQ_PREFIX)
    )


def _check_metric(metric: str) -> None:
    import difflib

    valid = countable()
    if metric in valid:
        return
    near = difflib.get_close_matches(metric, valid, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise UsageError(f"--metric {metric!r} is not a count: {hint}valid: {', '.join(valid)}")


def cmd_replay(args: argparse.Namespace) -> int:
    paths = _inputs(args.paths, fmt=args.format)
    return _replay(paths, args, _settings(args))


def _kafka(args: argparse.Namespace, settings: Settings) -> KafkaSettings:
    kafka = settings.kafka
    if getattr(args, "bootstrap", None):
        kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap})
    args.kafka_address = kafka.bootstrap_servers  # named if the broker cannot be reached
    return kafka


def _print_produced(stats: ProduceStats) -> None:
    topics = ", ".join(f"{t} {n:,}" for t, n in sorted(stats.per_topic.items()))
    print(f"produced {stats.produced:,} events ({topics}); "
          f"{stats.dead_lettered:,} to the dead-letter topic {stats.reasons or ''}",
          file=sys.stderr)  # fmt: skip


def cmd_produce(args: argparse.Namespace) -> int:
    """Publish event logs (or another format, through an importer) to the input topics."""
    paths = _inputs(args.paths, archives=False, fmt=args.format)
    settings = _settings(args)
    pseudonymize = settings.pseudonymizer(live=True)
    stats = asyncio.run(
        produce_paths(
            paths,
            _kafka(args, settings),
            _importer(args, settings, pseudonymize),
            settings.max_line_bytes,
            pseudonymize,
        )
    )
    _print_produced(stats)
    return 1 if args.strict and stats.dead_lettered else 0


def _directory(path: Path | None, settings: Settings) -> dict[str, str]:
    """The agent directory's names (streams.directory), its ``source_id`` rows pseudonymized
    with the key ``produce`` uses; a bad file is a one-line refusal before any work."""
    from streams.directory import DirectoryError, load_directory

    if path is None:
        return {}
    try:
        return load_directory(path, settings.pseudonymizer(live=True))
    except DirectoryError as e:
        raise UsageError(f"agent directory: {e}") from None


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a live worker until interrupted (SIGINT / SIGTERM stop it cleanly)."""
    from streams.kafka.app import create_worker, run_worker
    from streams.kafka.driver import checkpoint_topic
    from streams.kafka.settings import ensure_topics

    fmt = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
    logging.basicConfig(level=args.loglevel.upper(), format=fmt)
    settings = _settings(args)
    kafka = _kafka(args, settings)
    worker = settings.worker
    if args.port is not None or args.bind is not None:
        worker = worker.model_copy(update={k: v for k, v in
                                           (("web_port", args.port), ("web_bind", args.bind))
                                           if v is not None})  # fmt: skip
    names = _directory(worker.agent_directory, settings)
    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.addFilter(QUIET_CONNECT)  # at start only: later outages are logged
    asyncio.run(ensure_topics(kafka, [checkpoint_topic(worker)]))
    aiokafka_log.removeFilter(QUIET_CONNECT)
    base = f"http://{worker.web_bind}:{worker.web_port}"
    print(f"cc-monitor worker {worker.worker_id}: wallboard {base}/wallboard, metrics "
          f"{base}/metrics, KPIs /api/kpis, alerts /api/alerts, agents /api/agents, "
          "health /health", flush=True)  # fmt: skip

    async def work() -> None:  # aiokafka's clients are made on the loop they run on
        rules, zone = settings.rules(), settings.zone()
        await run_worker(create_worker(kafka, settings.engine, worker, rules=rules, tz=zone,
                                       agent_names=names))  # fmt: skip

    asyncio.run(work())
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    """The live demo: local broker, worker and a simulated day fed in real time."""
    from cc_monitor.live_demo import run

    return run(args.speed, args.contacts_per_day, args.port, args.seed, args.duration)


def cmd_feed(args: argparse.Namespace) -> int:
    """Play simulated days into the configured Kafka's input topics, each event when its time
    comes: on the workers' simulated clock (``worker.clock``) when one is configured, else on
    the wall clock from now."""
    from cc_monitor.live_demo import play, today

    settings = _settings(args)
    clock_cfg = settings.worker.clock
    clock = clock_cfg.event_clock() if clock_cfg.wall_start is not None else None
    if clock is not None:
        speed = clock.speed
    else:
        speed = args.speed
        if speed > 1:
            print(f"note: at --speed {speed:g} the events run ahead of the wall clock, and "
                  "workers reject those more than engine.max_clock_lead_seconds ahead: give "
                  "the workers and this feeder one simulated clock (worker.clock, "
                  "docs/live.md)", file=sys.stderr)  # fmt: skip

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        n = 0
        pseudonymize = settings.pseudonymizer(live=True)
        days = 28 if clock is not None and args.repeat else 1
        cfg = today(args.seed, args.contacts_per_day, days)
        while not stop.is_set():
            n += await play(_kafka(args, settings), cfg, speed, stop, pseudonymize, clock)
            if not args.repeat or clock is not None:
                break
        return n

    print(f"sent {asyncio.run(run()):,} events", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow a live Asterisk queue_log and publish its events until interrupted."""
    settings = _settings(args)
    stop = asyncio.Event()

    async def run() -> ProduceStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await tail_queue_log(Path(args.file), _kafka(args, settings), stop,
                                    from_start=args.from_beginning,
                                    pseudonymize=settings.pseudonymizer(live=True))  # fmt: skip

    _print_produced(asyncio.run(run()))
    return 0


def cmd_audit_archive(args: argparse.Namespace) -> int:
    """Archive event logs (as the live path archives what it consumes)."""
    from streams.audit.archive import ArchiveWriter
    from streams.inputs.files import Source, SourceStats, iter_lines

    paths = _inputs(args.paths, archives=False)
    writer = ArchiveWriter(Path(args.into), key=_settings(args).worker.archive.key_bytes())
    n = skipped = 0
    for p in paths:
        stream, _ = Source(p).open()
        with stream:
            for raw in iter_lines(stream, SourceStats(p), 1 << 30):
                if raw is None or not raw.strip():
                    continue
                if writer.append(raw):
                    n += 1
                else:
                    skipped += 1
    writer.close()
    print(f"archived {n:,} events into {args.into} ({skipped:,} repeated ids left out)")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check an archive's hash chain and segments: exit 1 naming what is wrong."""
    from streams.audit.archive import read_manifest, verify

    if not Path(args.archive).is_dir():
        raise UsageError(f"no such archive: {args.archive}")
    problems = verify(Path(args.archive), _settings(args).worker.archive.key_bytes())
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        segments = [e for e in read_manifest(Path(args.archive)) if "segment" in e]
        events = sum(e["events"] for e in segments)
        print(f"{args.archive}: ok, {len(segments)} segments, {events:,} events, chain intact")
    return 1 if problems else 0


def cmd_audit_reconcile(args: argparse.Namespace) -> int:
    """Replay the archive and compare it with what the live system published: exit 1 naming
    every difference (docs/audit.md)."""
    from streams.kafka.settings import read_topics
    from streams.reconcile import reconcile
    from streams.sinks.readmodel import RedisKpiView

    root = Path(args.archive)
    if not root.is_dir():
        raise UsageError(f"no such archive: {root}")
    settings = _settings(args)
    kafka = _kafka(args, settings)
    topic = args.alerts_topic or kafka.topics.alerts
    alerts = None
    if not args.no_alerts:
        per = asyncio.run(read_topics(kafka, [topic]))
        alerts = (topic, [(f"{t}:{p}@{o}", v) for (t, p), rs in sorted(per.items())
                          for o, v in rs])  # fmt: skip
    snapshots = None
    redis = settings.worker.redis
    if args.redis:
        redis = redis.model_copy(update={"url": args.redis})
    if not args.no_kpis:
        if redis.url is None:
            print("cc-monitor: KPI snapshots are in Redis: give --redis URL (or --no-kpis)",
                  file=sys.stderr)  # fmt: skip
            return 2

        async def fetch() -> dict[int, bytes]:
            client = redis.client()
            try:
                return await RedisKpiView(client).fetch(kafka.partitions)
            finally:
                await client.aclose()

        snapshots = asyncio.run(fetch())
    result = reconcile(
        root, settings.engine, settings.rules(), start=args.start, end=args.end,
        lookback=args.lookback * 3600, alerts=alerts, snapshots=snapshots,
        partitions=kafka.partitions, inputs=kafka.topics.inputs(),
    )  # fmt: skip
    if args.json:
        _write_json(result.to_dict(), args.json)
    if args.json != "-":
        sys.stdout.write(result.summary())
    return 0 if result.clean else 1


def _sim_config(args: argparse.Namespace, settings: Settings) -> SimConfig:
    return SimConfig(
        seed=args.seed,
        start=args.start,
        days=args.days,
        contacts_per_day=args.contacts_per_day,
        tz=settings.zone(),
        incident=not args.no_incident,
        bad_lines_per_day=args.bad_lines_per_day,
    )


class _Writable(typing.Protocol):
    def write(self, data: bytes, /) -> int: ...


def _write_lines(cfg: SimConfig, out: _Writable) -> int:
    n = 0
    for line in lines(cfg):
        out.write(line)
        out.write(b"\n")
        n += 1
    return n


def cmd_simulate(args: argparse.Namespace) -> int:
    cfg = _sim_config(args, _settings(args))
    if args.output == "-":
        _write_lines(cfg, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    out = _output(args.output)
    with gzip.open(out, "wb") if args.output.endswith(".gz") else out.open("wb") as f:
        n = _write_lines(cfg, f)
    print(f"wrote {n:,} events to {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate a day (with a few bad lines, as real feeds have) and replay it. The simulated
    log is kept (the report's rejected lines point into it) and its path said."""
    settings = _settings(args)
    cfg = _sim_config(args, settings)
    fd, path = tempfile.mkstemp(prefix="cc-monitor-demo-", suffix=".jsonl")
    with os.fdopen(fd, "wb") as f:
        n = _write_lines(cfg, f)
    print(
        f"simulated {cfg.days} day(s) from {cfg.start}: {n:,} events (seed {cfg.seed}) in "
        f"{path}; replaying…",
        file=sys.stderr,
    )
    code = _replay([path], args, settings, ranged=False)
    print(f"the simulated log stays in {path} (cc-monitor replay {path}; delete it when done)",
          file=sys.stderr)  # fmt: skip
    return code


def cmd_rules_check(args: argparse.Namespace) -> int:
    """Validate a rules file: exit 1 with one line per problem."""
    from alerts.rules import check

    if not Path(args.file).is_file():
        raise UsageError(f"no such rules file: {args.file}")
    problems = check(Path(args.file))
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"{args.file}: ok")
    return 1 if problems else 0


def cmd_ivr_lint(args: argparse.Namespace) -> int:
    """Static KS S 1006 6.4.1 check of a declared IVR flow: exit 1 on a violation."""
    from kpis.ivr_lint import LintConfig, lint, parse

    settings = _settings(args)
    try:
        flow = parse(Path(args.flow).read_text(encoding="utf-8"), args.flow)
    except (OSError, ValueError) as exc:  # unreadable, not YAML/JSON, or not a flow
        print(f"cc-monitor: {args.flow}: {exc}", file=sys.stderr)
        return 2
    config = LintConfig(
        max_depth=settings.engine.ivr_max_depth,
        greeting_target_seconds=settings.engine.greeting_target_seconds,
        review_days=args.review_days,
    )
    findings = lint(flow, config, args.today or datetime.now(UTC).date())
    violations = [f for f in findings if f.severity == "violation"]
    if args.json:
        doc = {"flow": flow.flow, "findings": [f.to_dict() for f in findings],
               "violations": len(violations)}  # fmt: skip
        _write_json(doc, "-")
    else:
        for f in findings:
            print(f"{f.severity:9s} {f.ks:10s} {f.rule:18s} {f.path}: {f.message}")
        print(f"{flow.flow}: {len(violations)} violation(s), "
              f"{len(findings) - len(violations)} warning(s)")  # fmt: skip
    return 1 if violations or (args.strict and findings) else 0


def _instant(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text}") from exc
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError(f"a time needs an offset: {text}")
    return dt.timestamp()


def _at_least(minimum: int) -> typing.Callable[[str], int]:
    """An argument type: a whole number not below ``minimum``."""

    def whole(text: str) -> int:
        try:
            n = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a whole number: {text}") from exc
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more: {text}")
        return n

    return whole


_positive, _count = _at_least(1), _at_least(0)


def _above_zero(text: str) -> float:
    try:
        x = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from exc
    if not 0 < x < 1e6:
        raise argparse.ArgumentTypeError(f"must be above 0 (and below a million): {text}")
    return x


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text}") from exc


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line (not the whole usage), exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _QuietConnect(logging.Filter):
    """aiokafka logs each failed connection attempt; the command says it once, with the
    address and what to check (main), so these records are dropped while it starts."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not msg.startswith(("Unable connect to", "Unable to request metadata"))


QUIET_CONNECT = _QuietConnect()


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default (none for flags and unset options)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and "%(default)" not in text
            and default is not None
            and default is not False
            and default != argparse.SUPPRESS
            and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
        ):
            text += " (default: %(default)s)"
        return text


# What each command does, in a sentence or two (its --help); the one-line help is the list's.
DESCRIPTIONS = {
    "schema": "Print the JSON Schema of the event model (docs/events.md), to validate producers.",
    "replay": "Run the KPI engine and the alert rules over event logs (or another system's "
    "records) and write the report: per day, week, month and total, deterministic, the same "
    "bytes for the same input (docs/report.md).",
    "explain": "Replay the input and list, as CSV, the contacts whose counts make up one "
    "number of the report (a KPI count for a scope and day).",
    "simulate": "Write a realistic, seeded event log of a multi-channel centre (calls, chats, "
    "e-mail, IVR, agents, surveys) for the days asked.",
    "produce": "Publish event logs (or another format, through an importer) to the Kafka "
    "input topics the workers consume.",
    "worker": "Run a live worker until interrupted: it consumes the input topics, keeps the "
    "KPIs and alerts, and serves /wallboard, /metrics, /api/* and /health (docs/live.md).",
    "live": "The live demo on one machine: starts a local broker and a worker and feeds them "
    "a simulated day in real time (or faster).",
    "feed": "Play simulated days into the configured Kafka's input topics, each event when "
    "its time comes.",
    "tail": "Follow a live Asterisk queue_log and publish its events until interrupted.",
    "audit": "Event archive tools: archive logs, verify an archive, reconcile it with what the "
    "live system published (docs/audit.md).",
    "archive": "Archive event logs into a hash-chained archive directory, as the workers "
    "archive what they consume.",
    "verify": "Check an archive's hash chain and segments; exit 1 naming what is wrong.",
    "reconcile": "Replay a live archive and compare it with the alerts topic and the KPI "
    "snapshots the workers published; exit 1 naming every difference.",
    "rules": "Alert rules tools (docs/alerts.md).",
    "check": "Validate an alert rules file; exit 1 with one line per problem.",
    "ivr": "IVR tools (docs/ivr-lint.md).",
    "lint": "Check a declared IVR flow against KS S 1006 6.4.1; exit 1 on a violation.",
    "demo": "Simulate a day (with a four-level IVR branch, a trunk outage and a few bad lines) "
    "and replay it: no servers needed.",
}

EPILOG = """exit codes: 0 done; 1 the command ran and found a problem (rejected events with
--strict, rule or archive problems, IVR violations, reconcile differences); 2 a mistake in
what it was given (a missing input, a bad value or setting) or a service it needs that cannot
be reached (the Kafka broker)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cc-monitor")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _document(parser: argparse.ArgumentParser) -> None:
    """Every subcommand gets its sentence, the defaults in its help and the exit codes."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub.description = textwrap.fill(DESCRIPTIONS[name], 78)
                sub.formatter_class = _Help
                sub.epilog = EPILOG
                _document(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cc-monitor",
        description="Contact-centre operations monitor: KPIs, alerts and reproducible replays.",
        formatter_class=_Help,
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"cc-monitor {_version()}")
    parser.add_argument(
        "--config", type=Path, help="TOML settings file (see docs/configuration.md)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("schema", help="print the JSON Schema of the event model")
    p.add_argument("--out", default="-", help="file to write ('-' = standard output)")
    p.set_defaults(func=cmd_schema)

    def format_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--format",
            choices=FORMATS,
            default="jsonl",
            help="input format: canonical events (jsonl) or an importer (docs/importers.md)",
        )
        p.add_argument("--mapping", type=Path, help="column mapping (TOML) for --format cdr")
        p.add_argument(
            "--source-timezone",
            help="zone of clock times in the source, for formats without offsets "
            "(anonymous-bank: Asia/Jerusalem)",
        )

    def replay_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", metavar="FILE", help="write the JSON report here ('-' = stdout)")
        p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report here")
        p.add_argument("--strict", action="store_true", help="exit 1 if any event was rejected")
        p.add_argument("--timezone", help="IANA zone for days / weeks / months (default UTC)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--quiet", action="store_true", help="no summary on standard output")
        p.add_argument("--rules", type=Path, help="alert rules file (TOML, docs/alerts.md)")
        p.add_argument("--csv", metavar="DIR", help="write kpis.csv, contacts.csv and alerts.csv "
                       "here (docs/report.md)")  # fmt: skip

    p = sub.add_parser("replay", help="run the engine over event logs and report")
    p.add_argument(
        "paths", nargs="+", metavar="PATH",
        help="JSON Lines files, .gz, - (stdin), an event archive directory, or kafka: (the "
        "input topics, read-only)",
    )  # fmt: skip
    p.add_argument("--from", dest="start", type=_instant,
                   help="only events from this event time (RFC 3339), any source")  # fmt: skip
    p.add_argument("--to", dest="end", type=_instant,
                   help="only events before this event time (RFC 3339), any source")  # fmt: skip
    p.add_argument("--bootstrap", help="for kafka:, the bootstrap servers (else the settings')")
    format_options(p)
    replay_options(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("explain", help="the contacts behind one number (CSV on standard output)")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="what replay reads: logs, an archive directory, kafka:")  # fmt: skip
    p.add_argument(
        "--metric",
        required=True,
        help="a KPI count: abandoned, answered, answered_in_sl, queued, ...",
    )
    p.add_argument("--tenant")
    p.add_argument("--channel")
    p.add_argument("--queue")
    p.add_argument("--reason", help="a contact reason code (for the reason_* counts)")
    p.add_argument("--day", type=_date,
                   help="local day of the count (YYYY-MM-DD, in --timezone)")  # fmt: skip
    p.add_argument("--from", dest="start", type=_instant, help="only events from this time")
    p.add_argument("--to", dest="end", type=_instant, help="only events before this time")
    p.add_argument("--bootstrap", help="for kafka:, the bootstrap servers (else the settings')")
    p.add_argument("--timezone", help="IANA zone of --day (default UTC)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--rules", type=Path, help="alert rules file (TOML, docs/alerts.md)")
    format_options(p)
    p.set_defaults(func=cmd_explain)

    def sim_options(p: argparse.ArgumentParser, bad_default: int) -> None:
        p.add_argument("--seed", type=int, default=7, help="random seed (same seed, same log)")
        p.add_argument("--start", type=_date, default=date(2026, 11, 2), help="first day")
        p.add_argument("--days", type=_positive, default=1, help="days to simulate")
        p.add_argument("--contacts-per-day", type=_positive, default=6000,
                       help="contacts on an ordinary weekday")  # fmt: skip
        p.add_argument("--no-incident", action="store_true", help="no trunk outage")
        p.add_argument(
            "--bad-lines-per-day", type=_count, default=bad_default,
            help="mix in malformed / invalid / duplicate lines",
        )  # fmt: skip

    p = sub.add_parser("simulate", help="write a realistic, seeded event log")
    sim_options(p, 0)
    p.add_argument("--timezone", help="zone of the simulated centre's clock (default UTC)")
    p.add_argument("-o", "--output", default="-", help="file (.gz compresses), '-' = stdout")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("produce", help="publish event logs to the Kafka input topics")
    p.add_argument("paths", nargs="+", metavar="PATH")
    format_options(p)
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (else the settings')")
    p.add_argument("--strict", action="store_true", help="exit 1 if anything was dead-lettered")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("worker", help="run a live worker: Kafka in, /metrics and /api/kpis out")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (else the settings')")
    p.add_argument("--port", type=int, help="HTTP port (else the settings', 6066)")
    p.add_argument("--bind", help="HTTP bind address (else the settings', 127.0.0.1)")
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_worker)

    def play_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--speed",
            type=_above_zero,
            default=60.0,
            help="x real time (live: default 60; feed: 1, or worker.clock.speed)",
        )
        p.add_argument("--contacts-per-day", type=_positive, default=6000,
                       help="contacts on an ordinary weekday")  # fmt: skip
        p.add_argument("--seed", type=int, default=7, help="random seed")

    p = sub.add_parser("live", help="live demo: local broker, a worker, the simulator feeding it")
    play_options(p)
    p.add_argument("--port", type=int, default=6066, help="the worker's HTTP port")
    p.add_argument("--duration", type=_above_zero, help="stop after this many seconds")
    p.set_defaults(func=cmd_live)

    p = sub.add_parser("feed", help="play simulated days into the input topics in real time")
    play_options(p)
    # the workers' clock: real time, unless worker.clock names a simulated one (docs/live.md)
    p.set_defaults(speed=1.0)
    p.add_argument("--repeat", action="store_true", help="start a new day when one ends")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (else the settings')")
    p.set_defaults(func=cmd_feed)

    p = sub.add_parser("tail", help="follow a live Asterisk queue_log into Kafka")
    p.add_argument("file", metavar="QUEUE_LOG")
    p.add_argument("--format", choices=["queue_log"], default="queue_log")
    p.add_argument("--from-beginning", action="store_true", help="start at the top, not the end")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (else the settings')")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("audit", help="event archive tools")
    audit = p.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    p = audit.add_parser("archive", help="archive event logs into an archive directory")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--into", required=True, metavar="DIR")
    p.set_defaults(func=cmd_audit_archive)
    p = audit.add_parser("verify", help="check an archive's hash chain and segments")
    p.add_argument("archive", metavar="ARCHIVE")
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser(
        "reconcile",
        help="replay a live archive and compare it with the alerts topic and the KPI snapshots",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="the workers' archive directory")
    p.add_argument("--from", dest="start", type=_instant, help="period start (RFC 3339)")
    p.add_argument("--to", dest="end", type=_instant, help="period end, excluded")
    p.add_argument(
        "--lookback",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="archive replayed before --from, for alerts already under way",
    )
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (else the settings')")
    p.add_argument("--alerts-topic", help="the alerts topic (else the settings')")
    p.add_argument("--redis", metavar="URL", help="the read model's Redis (else the settings')")
    p.add_argument("--no-alerts", action="store_true", help="do not compare alerts")
    p.add_argument("--no-kpis", action="store_true", help="do not compare KPI snapshots")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON ('-' = stdout)")
    p.add_argument("--rules", type=Path, help="alert rules file the workers use")
    p.set_defaults(func=cmd_audit_reconcile)

    p = sub.add_parser("rules", help="alert rules tools")
    rules = p.add_subparsers(dest="rules_command", required=True, parser_class=_Parser)
    p = rules.add_parser("check", help="validate an alert rules file")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_rules_check)

    p = sub.add_parser("ivr", help="IVR tools")
    ivr = p.add_subparsers(dest="ivr_command", required=True, parser_class=_Parser)
    p = ivr.add_parser("lint", help="check a declared IVR flow against KS S 1006 6.4.1")
    p.add_argument("flow", metavar="FLOW", help="the flow, YAML or JSON (docs/ivr-lint.md)")
    p.add_argument("--json", action="store_true", help="findings as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("--review-days", type=_positive, default=180,
                   help="maximum age of the last review")  # fmt: skip
    p.add_argument("--today", type=_date, help="judge the review date against this day")
    p.set_defaults(func=cmd_ivr_lint)

    p = sub.add_parser("demo", help="simulate a day and replay it: no servers needed")
    sim_options(p, 12)
    replay_options(p)
    p.set_defaults(func=cmd_demo)
    _document(parser)
    return parser


def _broker_error(exc: BaseException) -> bool:
    """Whether ``exc`` says that the Kafka broker could not be reached."""
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    return isinstance(exc, KafkaConnectionError | KafkaTimeoutError | ConnectionError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    new_run()
    if args.func is not cmd_worker:
        logging.getLogger("aiokafka").addFilter(QUIET_CONNECT)
    try:
        code: int = args.func(args)
    except SettingsError as err:
        for line in str(err).splitlines():
            print(f"cc-monitor: {line}", file=sys.stderr)
        return 2
    except ValidationError as err:
        print(f"cc-monitor: invalid settings or mapping:\n{err}", file=sys.stderr)
        return 2
    except ImporterConfigError as err:
        print(f"cc-monitor: {err}", file=sys.stderr)
        return 2
    except UsageError as err:
        print(f"cc-monitor: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if not _broker_error(exc) or not hasattr(args, "kafka_address"):
            raise
        print(f"cc-monitor: cannot reach the Kafka broker at {args.kafka_address}: is it "
              "running, and are kafka.bootstrap_servers (or --bootstrap) and its security "
              "settings right?", file=sys.stderr)  # fmt: skip
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
