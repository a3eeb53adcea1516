"""The live worker: a Faust application built by :func:`create_app`.

Faust runs the consumer group (its assignor gives partition *p* of every input topic, of the
agents topic and of the checkpoint table to the same worker: same partition count, keyed by
``case_id``), the checkpoint table and its changelog, a one-second timer and the web server.
Input records come to :class:`FaustDriver` in the fetcher's batches
(:func:`streams.kafka.faust_io.install_batch_fetch`; docs/architecture.md, "Faust", says why)
and go one by one to :class:`streams.kafka.worker.LiveRuntime`, which runs one engine per
partition. Records are acknowledged, so their offsets committed, only once a checkpoint covers
them. Rejected records go to the dead-letter topic with their reason in headers; alert
transitions to the alerts topic and the receivers. The web server serves ``/metrics``,
``/api/kpis``, ``/api/alerts``, ``/api/agents``, ``/health`` and ``/wallboard``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, tzinfo
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from alerts.evaluator import AlertEvent
from alerts.rules import RulesConfig
from kpis.config import EngineConfig
from streams.agents import Outcome
from streams.audit.archive import LiveArchive
from streams.delivery import Dispatcher
from streams.kafka.faust_io import (
    RecordAck,
    TableCheckpoints,
    faust_options,
    install_batch_fetch,
    install_fetch_wait,
)
from streams.kafka.settings import KafkaSettings
from streams.kafka.worker import LiveOptions, LiveRuntime
from streams.kafka.worker_settings import WorkerSettings
from streams.partitioned import dead_letter_record
from streams.sinks.alertstore import AlertStore, MemoryAlertStore, RedisAlertStore
from streams.sinks.readmodel import KpiViewStore, MemoryKpiView, RedisKpiView

log = logging.getLogger("cc_monitor.worker")

CHECKPOINT_TABLE = "checkpoints"
#: records processed between two yields to the event loop
YIELD_EVERY = 500
END_OFFSETS_TIMEOUT_SECONDS = 10.0
"""How long a tick waits for the broker's end offsets before it counts as not answering."""
#: record outcomes that need a seek or a dead letter
FOLLOW_UP = frozenset({"gap", "rejected"})


def wallboard_page() -> bytes:
    """The wallboard (streams/kafka/web/wallboard.html) with its font inlined: one
    self-contained page, no request anywhere but this worker's /api endpoints."""
    import base64
    from importlib import resources

    web = resources.files("streams.kafka") / "web"
    font = base64.b64encode((web / "wallboard-font.ttf").read_bytes()).decode()
    return (web / "wallboard.html").read_text(encoding="utf-8").replace("__FONT__", font).encode()


def live_options(kafka: KafkaSettings, worker: WorkerSettings, tz: tzinfo) -> LiveOptions:
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
    )


class FaustDriver:
    """Between Faust and the runtime: the assignment, batches of records, their follow-ups
    (seeks, dead letters), the tick with the broker's end offsets, rebalance signals, the
    alerts topic and receivers, and the web views."""

    def __init__(self, app: Any, kafka: KafkaSettings, worker: WorkerSettings,
                 dispatcher: Dispatcher | None) -> None:  # fmt: skip
        self.app = app
        self.worker = worker
        t = kafka.topics
        self.consumed = (*t.inputs(), t.agents) if worker.agent_states else t.inputs()
        self.input_names = frozenset(self.consumed)
        self.dead_letter = _raw_topic(app, t.dead_letter)
        self.alerts_topic = _raw_topic(app, t.alerts)
        self.agents_out = _raw_topic(app, t.agents, kafka.partitions)
        self.dispatcher = dispatcher
        self.runtime: LiveRuntime  # set by create_app, once the runtime is built
        # input topic-partitions assigned now; refreshed on rebalance signals
        self.tps: frozenset[Any] = frozenset()
        self.seeking: dict[Any, int] = {}
        # Tables are complete only once Faust's recovery after a rebalance is done: partitions
        # that bring no new records are restored from their checkpoint only then.
        self.tables_ready = False

    async def send_agent(self, partition: int, key: bytes, value: bytes) -> Awaitable[object]:
        """To the agents topic, partition by agent (streams.agents); the result is done once
        the broker has the record."""
        sent: Awaitable[object] = await self.agents_out.send(key=key, value=value,
                                                             partition=partition)  # fmt: skip
        return sent

    async def notify(self, event: AlertEvent) -> None:
        """An alert transition, claimed once across workers: to the alerts topic (keyed by
        fingerprint) and to the receivers' durable outbox (delivered with retries)."""
        doc = {"status": event.status, "alert": event.alert.to_dict()}
        await self.alerts_topic.send(key=event.alert.fingerprint.encode(),
                                     value=orjson.dumps(doc),
                                     headers={"cc-status": event.status.encode()})  # fmt: skip
        if self.dispatcher is not None:
            self.dispatcher.alert(event)

    # --- records ------------------------------------------------------------------------------

    async def on_batch(self, batch: list[tuple[Any, Any]]) -> None:
        consumer = self.app.consumer
        on_record = self.runtime.on_record
        tps = self.tps
        for i, (tp, record) in enumerate(batch, 1):
            # revoked while in flight: the new owner processes it
            if tp in tps:
                offset = record.offset
                ack = RecordAck(consumer, tp, offset)
                out = on_record(tp.topic, tp.partition, offset, record.value or b"", ack,
                                record.timestamp or None)  # fmt: skip
                if self.seeking or out.status in FOLLOW_UP:
                    await self.follow_up(tp, record, out)
                    tps = self.tps
            if not i % YIELD_EVERY:
                await asyncio.sleep(0)  # the web server and the tick timer get their turn
                tps = self.tps
        await self.runtime.publish_agents()  # the agent facts the batch released

    async def follow_up(self, tp: Any, record: Any, out: Outcome) -> None:
        """What a record's outcome asks of Kafka: a seek back to a gap, a dead letter."""
        if out.status == "gap":
            if self.seeking.get(tp) != out.expected:
                self.seeking[tp] = out.expected
                await self.app.consumer.seek(tp, out.expected)
            return
        self.seeking.pop(tp, None)
        if out.status == "rejected":
            key, value, headers = dead_letter_record(
                record.key, record.value or b"", out, self.worker.dead_letter_max_bytes
            )
            headers["cc-source"] = f"{tp.topic}/{tp.partition}/{record.offset}".encode()
            await self.dead_letter.send(key=key, value=value, headers=headers)

    # --- the tick -----------------------------------------------------------------------------

    async def tick(self) -> None:
        tps = self.tps
        if self.tables_ready:
            for p in sorted({tp.partition for tp in tps}):
                self.runtime.partition(p)  # a quiet partition still gets an engine and a clock
        ends = await self.end_offsets(tps)
        self.runtime.broker_ends({(tp.topic, tp.partition): e for tp, e in ends.items()},
                                 [(tp.topic, tp.partition) for tp in tps])  # fmt: skip
        await self.runtime.tick()

    async def end_offsets(self, tps: frozenset[Any]) -> dict[Any, int]:
        """End offsets from the broker, not the fetcher's last high-water mark: that one goes
        stale while Faust pauses a partition whose stream buffer is full, and a partition
        wrongly taken for caught up would move its watermark past records still unread.
        Bounded: a request to a broker that is gone can hang for the client's whole request
        timeout, and the tick also drives checkpoints and the alert path."""
        try:
            ends: dict[Any, int] = {}
            if tps:
                ask = self.app.consumer.highwaters(*tps)
                ends = await asyncio.wait_for(ask, END_OFFSETS_TIMEOUT_SECONDS)
            self.runtime.broker_answered(len(tps))
            return ends
        except Exception as exc:  # the broker will answer next time; nothing is caught up
            log.debug("end offsets unavailable: %s", exc)
            why = str(exc) and f"{type(exc).__name__}: {exc}"
            self.runtime.broker_failed(why or f"no answer in {END_OFFSETS_TIMEOUT_SECONDS:.0f} s")
            return {}

    # --- rebalance signals --------------------------------------------------------------------

    def _refresh(self) -> None:
        self.tps = frozenset(
            tp for tp in self.app.consumer.assignment() if tp.topic in self.input_names
        )

    async def on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        self.tables_ready = False
        self.tps = frozenset()
        self.runtime.revoke({tp.partition for tp in revoked if tp.topic in self.input_names})

    async def on_assigned(self, sender: Any, tps: set[Any], **_: Any) -> None:
        self._refresh()

    async def on_rebalance_complete(self, sender: Any, **_: Any) -> None:
        self._refresh()
        self.tables_ready = True

    async def on_shutdown(self, sender: Any, **_: Any) -> None:
        self.runtime.close()

    def connect(self, inputs: Any) -> None:
        """Signals, the batch hook, the timer and the web views."""
        app, rt = self.app, self.runtime
        app.on_before_shutdown.connect(self.on_shutdown)
        app.on_partitions_revoked.connect(self.on_revoked)
        app.on_partitions_assigned.connect(self.on_assigned)
        app.on_rebalance_complete.connect(self.on_rebalance_complete)
        # Input records reach the runtime in the fetcher's batches (install_batch_fetch); the
        # topic is still registered with the conductor so that the consumer group subscribes
        # to it and co-assigns the checkpoint table's partitions.
        app.topics.add(inputs)
        app._cc_batch = (self.input_names, self.on_batch)
        app.timer(interval=1.0, name="tick")(self.tick)
        page = wallboard_page()
        v = rt.views
        views = {"/api/kpis": v.kpis, "/health": v.health, "/api/alerts": v.alerts,
                 "/api/agents": v.agents}  # fmt: skip
        for path, view in views.items():
            app.page(path)(_json_page(view))

        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(generate_latest(rt.registry),
                             headers={"Content-Type": CONTENT_TYPE_LATEST})  # fmt: skip

        async def wallboard(web: Any, request: Any) -> Any:
            return web.bytes(page, headers={"Content-Type": "text/html; charset=utf-8",
                                            "Cache-Control": "no-cache"})  # fmt: skip

        app.page("/metrics")(metrics)
        app.page("/wallboard")(wallboard)


def _json_page(view: Any) -> Any:
    async def page(web: Any, request: Any) -> Any:
        return web.json(view())

    return page


def _raw_topic(app: Any, name: str, partitions: int | None = None) -> Any:
    opts: dict[str, Any] = {"partitions": partitions} if partitions is not None else {}
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **opts)  # fmt: skip


def _stores(worker: WorkerSettings) -> tuple[KpiViewStore, AlertStore]:
    """Redis when configured (shared by the workers), else process-local stores."""
    if not worker.redis.url:
        return MemoryKpiView(), MemoryAlertStore()
    client = worker.redis.client()
    return RedisKpiView(client), RedisAlertStore(client)


def create_app(
    kafka: KafkaSettings,
    engine: EngineConfig,
    worker: WorkerSettings,
    *,
    registry: CollectorRegistry | None = None,
    stores: tuple[KpiViewStore, AlertStore] | None = None,
    rules: RulesConfig | None = None,
    tz: tzinfo = UTC,
) -> Any:
    """Build the worker's Faust app. Registries and stores can be injected (tests). ``tz``:
    the zone of the staffing view's intervals (the settings' ``timezone``)."""
    import faust

    install_fetch_wait(worker.fetch_max_wait_ms, worker.fetch_min_bytes)
    install_batch_fetch()
    app: Any = faust.App(worker.app_id, **faust_options(kafka, worker))
    dispatcher = worker.alerts.dispatcher(worker.data_dir / "alert-outbox.json")
    if dispatcher is not None:
        worker.data_dir.mkdir(parents=True, exist_ok=True)
        dispatcher.start()
    driver = FaustDriver(app, kafka, worker, dispatcher)
    inputs = app.topic(*driver.consumed, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=kafka.partitions)  # fmt: skip
    raw: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw",
                            value_serializer="raw")  # fmt: skip
    table = app.Table(CHECKPOINT_TABLE, default=None, partitions=kafka.partitions, schema=raw,
                      key_type=bytes, value_type=bytes)  # fmt: skip
    view, alert_store = stores if stores is not None else _stores(worker)
    archive = worker.archive
    driver.runtime = LiveRuntime(
        engine,
        kafka.partitions,
        TableCheckpoints(table),
        options=live_options(kafka, worker, tz),
        registry=registry,
        read_model=view,
        alert_store=alert_store,
        rules=rules if rules is not None else RulesConfig(),
        notify=driver.notify,
        archive=LiveArchive(archive.dir, archive.key_bytes()) if archive.dir is not None else None,
        send=driver.send_agent if worker.agent_states else None,
    )
    driver.connect(inputs)
    return app
