"""The live worker, built by :func:`create_worker` and run by :func:`run_worker`.

The runtime (:class:`streams.kafka.worker.LiveRuntime`, one engine per partition) runs on
aiokafka through :class:`streams.kafka.driver.KafkaDriver`: one consumer in the group, the
checkpoint topic, a one-second tick, and the web server (``/metrics``, ``/api/kpis``,
``/api/alerts``, ``/api/agents``, ``/health``, ``/wallboard``). Records are acknowledged, so
their offsets committed, only once a checkpoint covers them; rejected records go to the
dead-letter topic with their reason in headers; alert transitions to the alerts topic and the
receivers. Why not Faust: docs/architecture.md, "Faust".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from alerts.rules import RulesConfig
from kpis.config import EngineConfig
from streams.audit.archive import LiveArchive
from streams.kafka.driver import KafkaDriver, web_app
from streams.kafka.settings import KafkaSettings
from streams.kafka.worker import LiveOptions, LiveRuntime
from streams.kafka.worker_settings import WorkerSettings
from streams.sinks.alertstore import AlertStore, MemoryAlertStore, RedisAlertStore
from streams.sinks.readmodel import KpiViewStore, MemoryKpiView, RedisKpiView

log = logging.getLogger("cc_monitor.worker")


def wallboard_page() -> bytes:
    """The wallboard (streams/kafka/web/wallboard.html) with its font inlined: one
    self-contained page, no request anywhere but this worker's /api endpoints."""
    import base64
    from importlib import resources

    web = resources.files("streams.kafka") / "web"
    font = base64.b64encode((web / "wallboard-font.ttf").read_bytes()).decode()
    return (web / "wallboard.html").read_text(encoding="utf-8").replace("__FONT__", font).encode()


# The repository's (an editable install), else the working directory's (the image's /app)
RUNBOOKS = (Path(__file__).resolve().parents[2] / "docs" / "runbooks.md",
            Path("docs") / "runbooks.md")  # fmt: skip


def runbooks_page(sources: tuple[Path, ...] = RUNBOOKS) -> bytes:
    """docs/runbooks.md as a page, served where the alert links point by default
    (``rules.runbook_url`` = ``docs/runbooks.md``, relative to the wallboard): each rule's
    section has its anchor, so a link ``...#<rule>`` opens it. Without the file (an install
    without the repository's docs) the page says where to find them."""
    import html
    import re

    found = [p for p in sources if p.is_file()]
    if found:
        text = found[0].read_text(encoding="utf-8")
    else:
        text = ("# Runbooks\n\nThis install has no docs/runbooks.md: set rules.runbook_url to "
                "where your runbooks are (docs/alerts.md).")  # fmt: skip

    def inline(line: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(line))

    out: list[str] = []
    para: list[str] = []

    def close() -> None:
        if para:
            out.append("<p>" + " ".join(para) + "</p>")
            para.clear()

    for line in text.splitlines():
        heading = re.match(r"(#{1,3}) (.+)", line)
        if heading:
            close()
            n, title = len(heading.group(1)), heading.group(2).strip()
            anchor = re.sub(r"[^a-z0-9-]+", "-", title.lower()).strip("-")
            out.append(f'<h{n} id="{anchor}">{inline(title)}</h{n}>')
        elif not line.strip():
            close()
        else:
            para.append(inline(line))
    close()
    style = ("body{font-family:sans-serif;max-width:48rem;margin:2rem auto;line-height:1.5;"
             "padding:0 1rem}h2{margin-top:2rem}:target{background:#fff3c4}"
             "code{background:#eee;padding:0 .2em}")  # fmt: skip
    return (
        f'<!doctype html><html lang="en"><meta charset="utf-8"><title>cc-monitor runbooks'
        f"</title><style>{style}</style>" + "\n".join(out) + "</html>\n"
    ).encode()


def live_options(
    kafka: KafkaSettings,
    worker: WorkerSettings,
    tz: tzinfo,
    agent_names: Mapping[str, str] | None = None,
) -> LiveOptions:
    t = kafka.topics
    retention = worker.archive.retention_days
    return LiveOptions(
        inputs=t.inputs(),
        checkpoint_interval=worker.checkpoint_interval_seconds,
        idle_flush_seconds=worker.idle_flush_seconds,
        worker_id=worker.worker_id,
        lease_seconds=worker.alerts.lease_seconds,
        archive_retention_seconds=retention * 86400 if retention else None,
        agents_topic=t.agents if worker.agent_states else None,
        tz=tz,
        event_clock=worker.clock.event_clock(),
        reject_alarm_share=worker.reject_alarm_share,
        reject_window_seconds=worker.reject_window_seconds,
        reject_alarm_min_records=worker.reject_alarm_min_records,
        agent_names=dict(agent_names or {}),
    )


def _stores(worker: WorkerSettings) -> tuple[KpiViewStore, AlertStore]:
    """Redis when configured (shared by the workers), else process-local stores."""
    if not worker.redis.url:
        return MemoryKpiView(), MemoryAlertStore()
    client = worker.redis.client()
    return RedisKpiView(client), RedisAlertStore(client)


def create_worker(
    kafka: KafkaSettings,
    engine: EngineConfig,
    worker: WorkerSettings,
    *,
    registry: CollectorRegistry | None = None,
    stores: tuple[KpiViewStore, AlertStore] | None = None,
    rules: RulesConfig | None = None,
    tz: tzinfo = UTC,
    agent_names: Mapping[str, str] | None = None,
) -> KafkaDriver:
    """Build the worker: its runtime on an aiokafka driver. Registries and stores can be
    injected (tests). ``tz``: the zone of the staffing view's intervals (``timezone``);
    ``agent_names``: the agent directory (streams.directory), loaded by the caller."""
    from aiokafka import AIOKafkaProducer

    dispatcher = worker.alerts.dispatcher(worker.data_dir / "alert-outbox.json")
    if dispatcher is not None:
        worker.data_dir.mkdir(parents=True, exist_ok=True)
        dispatcher.start()
    opts: dict[str, Any] = {"acks": "all", **kafka.client_options()}
    if kafka.producer_max_batch_size:
        opts["max_batch_size"] = kafka.producer_max_batch_size
    driver = KafkaDriver(kafka, worker, AIOKafkaProducer(**opts), dispatcher)
    view, alert_store = stores if stores is not None else _stores(worker)
    archive = worker.archive
    driver.runtime = LiveRuntime(
        engine,
        kafka.partitions,
        driver.checkpoints,
        options=live_options(kafka, worker, tz, agent_names),
        registry=registry,
        read_model=view,
        alert_store=alert_store,
        rules=rules if rules is not None else RulesConfig(),
        notify=driver.notify,
        archive=LiveArchive(archive.dir, archive.key_bytes()) if archive.dir is not None else None,
        send=driver.send_agent if worker.agent_states else None,
        forward=driver.forward,
    )
    return driver


async def run_worker(driver: KafkaDriver) -> None:
    """Serve the web views, then consume until SIGINT / SIGTERM."""
    from aiohttp import web

    w = driver.worker

    async def serve() -> Any:
        runner = web.AppRunner(
            web_app(driver.runtime, wallboard_page(), runbooks_page()), access_log=None
        )
        await runner.setup()
        await web.TCPSite(runner, w.web_bind, w.web_port).start()
        return runner

    await driver.run(serve)
