"""The live worker: a Faust application built by :func:`create_app`.

One agent consumes the three input topics (keyed by ``case_id``, same partition count, so
Faust's assignor gives partition *p* of all three to the same worker) and hands every record to
:class:`streams.kafka.worker.LiveRuntime`, which runs one engine per partition. Checkpoints
(state plus the offsets it covers) live in a changelogged Faust table; records are
acknowledged, so their offsets committed, only once a checkpoint covers them. Rejected records
go to the dead-letter topic with their reason in headers. A one-second timer publishes the read
model, moves quiet partitions' time and checkpoints. The worker's web server serves
``/metrics``, ``/api/kpis``, ``/api/alerts``, ``/api/agents`` and ``/health``.

Live agent states (streams.agents): the agent also consumes the agents topic (same partition
count, so partition *p* of it comes with partition *p* of the inputs); each partition publishes
its contacts' agent facts there, keyed by agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator

from alerts.delivery import AlertmanagerReceiver, Dispatcher, Receiver, WebhookReceiver
from alerts.evaluator import AlertEvent
from alerts.rules import RulesConfig
from kpis.clock import EventClock
from kpis.config import EngineConfig
from streams.audit.archive import LiveArchive
from streams.kafka.settings import KafkaSettings
from streams.kafka.worker import LiveRuntime
from streams.partitioned import Outcome, dead_letter_record
from streams.rejects import RejectWatch
from streams.sinks.readmodel import MemoryReadModel, ReadModelStore, RedisReadModel

log = logging.getLogger("cc_monitor.worker")

CHECKPOINT_TABLE = "checkpoints"
#: records processed between two yields to the event loop
YIELD_EVERY = 500
#: record outcomes that need a seek or a dead letter
END_OFFSETS_TIMEOUT_SECONDS = 10.0
"""How long a tick waits for the broker's end offsets before it counts as not answering."""
FOLLOW_UP = frozenset({"gap", "rejected"})


class RedisSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        None,
        description="redis://host:port/db, or rediss:// for TLS. Without it, /api/kpis shows "
        "this worker's partitions only.",
    )
    password: SecretStr | None = None
    ssl_cafile: str | None = Field(None, description="CA bundle for rediss:// URLs.")
    timeout_seconds: float = Field(2.0, gt=0, description="Per command; then it counts as down.")

    def client(self) -> Any:
        import redis.asyncio as redis

        assert self.url is not None
        opts: dict[str, Any] = {
            "socket_timeout": self.timeout_seconds,
            "socket_connect_timeout": self.timeout_seconds,
        }
        if self.password is not None:
            opts["password"] = self.password.get_secret_value()
        if self.ssl_cafile and self.url.startswith("rediss://"):
            opts["ssl_ca_certs"] = self.ssl_cafile
        return redis.Redis.from_url(self.url, **opts)


class AlertDeliverySettings(BaseModel):
    """Where the evaluating worker sends alert transitions, besides the alerts topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alertmanager_url: str | None = Field(
        None, description="Alertmanager base URL (POST /api/v2/alerts); resent while firing."
    )
    webhook_url: str | None = Field(None, description="Generic webhook, HMAC-SHA256 signed.")
    webhook_secret: SecretStr | None = Field(None, description="The webhook's signing key.")
    resend_seconds: float = Field(60.0, gt=0, description="Firing alerts resent this often.")
    max_pending: int = Field(
        10_000,
        ge=100,
        description="Notifications held per receiver while it is away; past this the oldest "
        "are dropped and counted (Alertmanager holds one per alert, its latest state).",
    )
    batch: int = Field(500, ge=1, description="Notifications per request to a receiver.")
    include_evidence: bool = Field(
        False,
        description="Send alerts' example contact ids to Alertmanager and the webhook (the "
        "report and the alerts topic keep them for audits either way).",
    )
    lease_seconds: float = Field(
        10.0, gt=0, description="Evaluation lease in Redis: another worker takes over after it."
    )

    @model_validator(mode="after")
    def _webhook_signed(self) -> AlertDeliverySettings:
        # an empty key makes a signature anyone can compute
        if self.webhook_url and not (
            self.webhook_secret and self.webhook_secret.get_secret_value()
        ):
            raise ValueError("worker.alerts.webhook_secret is required with a webhook_url")
        return self

    def dispatcher(self, outbox: Path) -> Dispatcher | None:
        receivers: list[Receiver] = []
        if self.alertmanager_url:
            receivers.append(AlertmanagerReceiver(self.alertmanager_url))
        if self.webhook_url:
            secret = self.webhook_secret.get_secret_value().encode() if self.webhook_secret else b""
            receivers.append(WebhookReceiver(self.webhook_url, secret))
        if not receivers:
            return None
        return Dispatcher(
            receivers,
            outbox,
            resend_seconds=self.resend_seconds,
            max_pending=self.max_pending,
            batch=self.batch,
            include_evidence=self.include_evidence,
        )


class ArchiveSettings(BaseModel):
    """The event archive the workers write (docs/audit.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path | None = Field(
        None,
        description="Archive every consumed record here, valid or not. Shared by all workers "
        "(partitions move between them). Off when unset.",
    )
    key: SecretStr | None = Field(
        None,
        description="Seals every manifest entry (HMAC-SHA256) so that `audit verify` with the "
        "key detects a chain recomputed by someone who could rewrite the archive. Keep it out "
        "of the archive's storage (CC_MONITOR_WORKER__ARCHIVE__KEY).",
    )
    retention_days: float | None = Field(
        None, gt=0, description="Segments whose events are all older are deleted (recorded in "
        "the hash chain); kept forever when unset.",
    )  # fmt: skip

    def key_bytes(self) -> bytes | None:
        return self.key.get_secret_value().encode() if self.key is not None else None


class ClockSettings(BaseModel):
    """A simulated clock (the live demo's): the worker's event-time "now" runs ``speed`` times
    faster than the wall clock, from ``event_start`` at wall time ``wall_start``. Unset: the
    wall clock. Every worker and the feeder of one simulation share it (docs/live.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    speed: float = Field(1.0, gt=0, le=1_000_000, description="Event seconds per wall second.")
    wall_start: AwareDatetime | None = Field(
        None, description="The wall-clock instant at which the simulated clock reads event_start."
    )
    event_start: AwareDatetime | None = Field(
        None, description="What the simulated clock reads at wall_start."
    )

    @model_validator(mode="after")
    def _both(self) -> ClockSettings:
        if (self.wall_start is None) != (self.event_start is None):
            raise ValueError("worker.clock needs both wall_start and event_start, or neither")
        if self.speed != 1.0 and self.wall_start is None:
            raise ValueError("worker.clock.speed needs wall_start and event_start")
        return self

    def event_clock(self) -> EventClock:
        if self.wall_start is None or self.event_start is None:
            return EventClock()
        return EventClock(self.wall_start.timestamp(), self.event_start.timestamp(), self.speed)


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app_id: str = Field("cc-monitor", description="Consumer group and table-topic prefix.")
    web_bind: str = Field("127.0.0.1", description="Address of /metrics, /api/kpis, /health.")
    web_port: int = Field(6066, ge=1, le=65535)
    data_dir: Path = Field(Path(".cc-monitor"), description="Faust's local data directory.")
    checkpoint_interval_seconds: float = Field(
        5.0, gt=0, description="Partition checkpoints (and so offset commits) at most this often."
    )
    idle_flush_seconds: float = Field(
        10.0,
        gt=0,
        description="Input quiet for this long: process what waits for the watermark, as a "
        "replay does at the end of its input.",
    )
    group_timeout_seconds: float | None = Field(
        None,
        gt=0,
        description="Consumer-group session and rebalance timeout (Faust's default if unset; "
        "about 6 makes joins on Tansu quick).",
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        description="How long the broker may hold a fetch waiting for data. Faust fixes 1500 "
        "ms, which a broker that waits out the whole time (Tansu) turns into latency.",
    )
    fetch_min_bytes: int = Field(
        1,
        ge=1,
        description="The broker answers a fetch once it has this many bytes (or after "
        "fetch_max_wait_ms). Larger values mean fewer, fuller fetches under load at the cost of "
        "up to fetch_max_wait_ms of latency; see docs/performance.md.",
    )
    dead_letter_max_bytes: int = Field(
        65_536,
        ge=1024,
        le=900_000,
        description="A rejected record larger than this goes to the dead-letter topic cut to "
        "this size, with its whole size and SHA-256 in headers (a broker refuses a message over "
        "its limit, 1 MB by default).",
    )
    agent_states: bool = Field(
        True,
        description="Live agent states (/api/agents, cc_agents, the staffing alerts): each "
        "partition publishes its contacts' agent facts to the agents topic (about three small "
        "records per contact, plus a mark per partition and second). Off: agent states are "
        "replay-only.",
    )
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Names this worker in logs and /health.",
    )
    reject_alarm_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="/health says degraded (and the wallboard shows a banner) while at least "
        "this share of the input records read in the last reject_window_seconds was rejected "
        "(out of range, late, invalid, ...): a worker that throws away what it reads is not ok.",
    )
    reject_window_seconds: float = Field(
        60.0, gt=0, le=86_400, description="The window of reject_alarm_share (wall clock)."
    )
    reject_alarm_min_records: int = Field(
        20, ge=1, description="Fewer records read in the window raise no reject alarm."
    )
    clock: ClockSettings = Field(default_factory=lambda: ClockSettings())
    redis: RedisSettings = Field(default_factory=RedisSettings)
    alerts: AlertDeliverySettings = Field(default_factory=lambda: AlertDeliverySettings())
    archive: ArchiveSettings = Field(default_factory=lambda: ArchiveSettings())


def _faust_options(kafka: KafkaSettings, worker: WorkerSettings) -> dict[str, Any]:
    import faust

    opts: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(",")],
        "store": "memory://",
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        "web_bind": worker.web_bind,
        "web_port": worker.web_port,
        "web_host": worker.web_bind,
        "datadir": str(worker.data_dir),
        "consumer_auto_offset_reset": "earliest",
        # records stay unacknowledged until a checkpoint covers them: do not wait for them
        "stream_wait_empty": False,
        "autodiscover": False,
        # Faust's own views (router, tables, graph, stats) show topology and table contents
        # without authentication: only the worker's endpoints are served
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
    }
    if worker.group_timeout_seconds is not None:
        t = worker.group_timeout_seconds
        opts.update(broker_session_timeout=t, broker_rebalance_timeout=t,
                    broker_heartbeat_interval=max(t / 6, 0.5))  # fmt: skip
    if kafka.producer_max_batch_size:
        opts["producer_max_batch_size"] = kafka.producer_max_batch_size
    if kafka.security_protocol != "PLAINTEXT":
        ctx = kafka.client_options().get("ssl_context")
        if kafka.sasl_mechanism:
            opts["broker_credentials"] = faust.SASLCredentials(
                username=kafka.sasl_username,
                password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
                mechanism=kafka.sasl_mechanism,
                ssl_context=ctx,
            )
        elif ctx is not None:
            opts["broker_credentials"] = faust.SSLCredentials(ctx)
    return opts


class TableCheckpoints:
    """Checkpoint chunks in a Faust table: the local copy for reads, the changelog (to the
    partition the checkpoint belongs to) for durability. Written from timers as well as from
    the agent, so the partition is given, not taken from the current event."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> bytes | None:
        value = self.table.data.get(key.encode())
        return bytes(value) if value is not None else None

    def put(self, partition: int, key: str, value: bytes) -> Awaitable[object]:
        self.table.data[key.encode()] = value
        fut: Awaitable[object] = self.table.send_changelog(partition, key.encode(), value,
                                                           "raw", "raw")  # fmt: skip
        return fut

    def delete(self, partition: int, key: str) -> None:
        self.table.data.pop(key.encode(), None)
        self.table.send_changelog(partition, key.encode(), None, "raw", "raw")


def _fetch_wait(ms: int, min_bytes: int = 1) -> None:
    """Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting for
    it or for ``fetch_min_bytes``; this sets the worker's values on the consumer before it
    starts (aiokafka reads them at start). The wrapper reads the values from the class, so one
    process has one value."""
    from faust.transport.drivers import aiokafka as driver

    cls: Any = driver.AIOKafkaConsumerThread
    cls._cc_fetch_max_wait_ms = ms
    cls._cc_fetch_min_bytes = min_bytes
    if getattr(cls, "_cc_wrapped", False):
        return
    create = cls._create_worker_consumer

    def create_with_wait(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = cls._cc_fetch_max_wait_ms
        consumer._fetch_min_bytes = cls._cc_fetch_min_bytes
        return consumer

    cls._create_worker_consumer = create_with_wait
    cls._cc_original__create_worker_consumer = create  # tests/test_faust_patch.py checks it
    cls._cc_wrapped = True


class RecordAck:
    """Acknowledges one input record: what ``Consumer.ack`` reads of a message (``tp``,
    ``topic``, ``offset``, ``acked``) and the call, in one small object. Faust's own
    ``Message`` (two dozen fields, a reference count, a lock on ack) cost more per record than
    the engine's bookkeeping for it."""

    __slots__ = ("__weakref__", "acked", "consumer", "offset", "topic", "tp")  # weak: Faust's sets

    def __init__(self, consumer: Any, tp: Any, offset: int) -> None:
        self.consumer = consumer
        self.tp = tp
        self.topic = tp.topic
        self.offset = offset
        self.acked = False

    def __call__(self) -> None:
        self.consumer.ack(self)


def _install_batch_fetch() -> None:
    """Hand an app's input records to it in the fetcher's batches.

    Faust dispatches every fetched record on its own: two tasks and an ``asyncio.wait`` in the
    consumer's drain loop, then an event, a flow-controlled queue and the stream machinery, about
    145 us a record, more than decoding and the engine together. An app that sets
    ``_cc_batch = (topic names, coroutine)`` gets its records of those topics as one list of
    ``(tp, aiokafka ConsumerRecord)`` per fetch instead, without a Faust ``Message`` for each;
    every other record (table changelogs during recovery) still goes through Faust's path.
    Offsets stay Faust's: read offsets are set as Faust sets them, and the coroutine
    acknowledges each record (``Consumer.ack``, see :class:`RecordAck`) when it may be
    committed. Records are taken round-robin across partitions, as Faust's ``getmany`` does.
    """
    from faust.transport.consumer import CONSUMER_FETCHING, Consumer

    cls: Any = Consumer
    if getattr(cls, "_cc_batch_fetch", False):
        return
    original = cls._drain_messages

    async def drain(self: Any, fetcher: Any) -> None:
        batched = getattr(self.app, "_cc_batch", None)
        if batched is None:
            return await original(self, fetcher)  # type: ignore[no-any-return]
        topics, on_batch = batched
        app = self.app
        callback = self.callback
        to_message = self._to_message
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = app.topics.acks_enabled_for
        # Upstream's checks, kept in the same order (Consumer.getmany and _drain_messages of
        # faust-streaming 0.15; tests/test_faust_patch.py fails when those change). Left out:
        # the per-record sleep(0) every 100 records (each batch awaits on_batch) and the
        # commit check before every record (here after every batch, on the same counter).
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    # fetched while the flow stopped (a rebalance): back to the committed
                    # offsets, as upstream's getmany does, or these records would be skipped
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning(f"exception performing seek when flow not active {exc}")
                    continue
                generation = app.consumer_generation_id
                batch: list[tuple[Any, Any]] = []
                ends_tracked: set[Any] = set()
                for tp, record in self.scheduler.iterate(records):
                    if not self.flow_active or app.consumer_generation_id != generation:
                        break  # rebalanced meanwhile: the rest is fetched again (as Faust does)
                    if not (active is None or tp in active or tp in self._buffered_partitions):
                        continue  # a paused partition's record (upstream skips it too)
                    if tp not in ends_tracked:  # upstream: per record; once a batch suffices
                        ends_tracked.add(tp)
                        app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    offset = record.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # already read (Faust drops these the same way)
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                        # offsets without records (compaction, transaction markers) count as
                        # acknowledged, or commits would stop below them
                        await self._add_gap(tp, r_offset + 1, offset)
                    if tp.topic in topics:
                        batch.append((tp, record))
                    else:
                        message = to_message(tp, record)
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                if batch:
                    await on_batch(batch)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except (*self.consumer_stopped_errors, asyncio.CancelledError):
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    cls._drain_messages = drain
    cls._cc_original__drain_messages = original  # tests/test_faust_patch.py checks it
    cls._cc_batch_fetch = True


def wallboard_page() -> bytes:
    """The wallboard (streams/kafka/web/wallboard.html) with its font inlined: one
    self-contained page, no request anywhere but this worker's /api endpoints."""
    import base64
    from importlib import resources

    web = resources.files("streams.kafka") / "web"
    font = base64.b64encode((web / "wallboard-font.ttf").read_bytes()).decode()
    return (web / "wallboard.html").read_text(encoding="utf-8").replace("__FONT__", font).encode()


def create_app(
    kafka: KafkaSettings,
    engine: EngineConfig,
    worker: WorkerSettings,
    *,
    registry: CollectorRegistry | None = None,
    read_model: ReadModelStore | None = None,
    rules: RulesConfig | None = None,
    tz: tzinfo = UTC,
) -> Any:
    """Build the worker's Faust app. Registries and stores can be injected (tests). ``tz``:
    the zone of the staffing view's intervals (the settings' ``timezone``)."""
    import faust

    _fetch_wait(worker.fetch_max_wait_ms, worker.fetch_min_bytes)
    _install_batch_fetch()
    app: Any = faust.App(worker.app_id, **_faust_options(kafka, worker))
    t = kafka.topics
    consumed = (*t.inputs(), t.agents) if worker.agent_states else t.inputs()
    inputs = app.topic(*consumed, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=kafka.partitions)  # fmt: skip
    agents_out = app.topic(t.agents, key_type=bytes, value_type=bytes, key_serializer="raw",
                           value_serializer="raw", partitions=kafka.partitions)  # fmt: skip

    async def send_agent(partition: int, key: bytes, value: bytes) -> Awaitable[object]:
        """To the agents topic, partition by agent (streams.agents); the result is done once
        the broker has the record."""
        sent: Awaitable[object] = await agents_out.send(key=key, value=value,
                                                        partition=partition)  # fmt: skip
        return sent

    dead_letter = app.topic(t.dead_letter, key_type=bytes, value_type=bytes,
                            key_serializer="raw", value_serializer="raw")  # fmt: skip
    alerts_topic = app.topic(t.alerts, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")  # fmt: skip
    dispatcher = worker.alerts.dispatcher(worker.data_dir / "alert-outbox.json")
    if dispatcher is not None:
        worker.data_dir.mkdir(parents=True, exist_ok=True)
        dispatcher.start()

    async def notify(event: AlertEvent) -> None:
        """An alert transition, claimed once across workers: to the alerts topic (keyed by
        fingerprint) and to the receivers' durable outbox (delivered with retries)."""
        doc = {"status": event.status, "alert": event.alert.to_dict()}
        await alerts_topic.send(key=event.alert.fingerprint.encode(), value=orjson.dumps(doc),
                                headers={"cc-status": event.status.encode()})  # fmt: skip
        if dispatcher is not None:
            dispatcher.alert(event)

    raw: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")  # fmt: skip
    table = app.Table(
        CHECKPOINT_TABLE,
        default=None,
        partitions=kafka.partitions,
        schema=raw,
        key_type=bytes,
        value_type=bytes,
    )
    if read_model is None:
        read_model = (
            RedisReadModel(worker.redis.client()) if worker.redis.url else MemoryReadModel()
        )
    runtime = LiveRuntime(
        engine,
        kafka.partitions,
        TableCheckpoints(table),
        inputs=t.inputs(),
        registry=registry,
        read_model=read_model,
        checkpoint_interval=worker.checkpoint_interval_seconds,
        idle_flush_seconds=worker.idle_flush_seconds,
        worker_id=worker.worker_id,
        rules=rules if rules is not None else RulesConfig(),
        notify=notify,
        lease_seconds=worker.alerts.lease_seconds,
        archive=(
            LiveArchive(worker.archive.dir, worker.archive.key_bytes())
            if worker.archive.dir is not None
            else None
        ),
        archive_retention_seconds=(
            worker.archive.retention_days * 86400 if worker.archive.retention_days else None
        ),
        agents_topic=t.agents if worker.agent_states else None,
        send=send_agent if worker.agent_states else None,
        tz=tz,
        event_clock=worker.clock.event_clock(),
        rejects=RejectWatch(
            worker.reject_alarm_share, worker.reject_window_seconds, worker.reject_alarm_min_records
        ),
    )
    input_names = set(consumed)

    # input partitions assigned now; refreshed on rebalance signals, read once per record
    current: dict[str, frozenset[Any]] = {"tps": frozenset()}

    def assigned() -> frozenset[Any]:
        return current["tps"]

    def refresh_assignment() -> None:
        current["tps"] = frozenset(
            tp for tp in app.consumer.assignment() if tp.topic in input_names
        )

    seeking: dict[Any, int] = {}

    async def follow_up(tp: Any, record: Any, out: Outcome) -> None:
        """What a record's outcome asks of Kafka: a seek back to a gap, a dead letter."""
        if out.status == "gap":
            if seeking.get(tp) != out.expected:
                seeking[tp] = out.expected
                await app.consumer.seek(tp, out.expected)
            return
        seeking.pop(tp, None)
        if out.status == "rejected":
            key, value, headers = dead_letter_record(
                record.key, record.value or b"", out, worker.dead_letter_max_bytes
            )
            headers["cc-source"] = f"{tp.topic}/{tp.partition}/{record.offset}".encode()
            await dead_letter.send(key=key, value=value, headers=headers)

    async def on_batch(batch: list[tuple[Any, Any]]) -> None:
        consumer = app.consumer
        on_record = runtime.on_record
        tps = assigned()
        for i, (tp, record) in enumerate(batch, 1):
            # revoked while in flight: the new owner processes it
            if tp in tps:
                offset = record.offset
                ack = RecordAck(consumer, tp, offset)
                out = on_record(tp.topic, tp.partition, offset, record.value or b"", ack,
                                record.timestamp or None)  # fmt: skip
                if seeking or out.status in FOLLOW_UP:
                    await follow_up(tp, record, out)
                    tps = assigned()
            if not i % YIELD_EVERY:
                await asyncio.sleep(0)  # the web server and the tick timer get their turn
                tps = assigned()
        await runtime.publish_agents()  # the agent facts the batch released

    # Tables are complete only once Faust's recovery after a rebalance is done: partitions that
    # bring no new records are restored from their checkpoint only then.
    ready = {"tables": False}

    async def tick() -> None:
        tps = assigned()
        if ready["tables"]:
            for p in sorted({tp.partition for tp in tps}):
                runtime.partition(p)  # a quiet partition still gets an engine and a clock
        # End offsets from the broker, not the fetcher's last high-water mark: that one goes
        # stale while Faust pauses a partition whose stream buffer is full, and a partition
        # wrongly taken for caught up would move its watermark past records still unread.
        try:
            # bounded: a request to a broker that is gone can hang for the client's whole
            # request timeout, and this tick also drives checkpoints and the alert stage
            ends = {}
            if tps:
                ask = app.consumer.highwaters(*tps)
                ends = await asyncio.wait_for(ask, END_OFFSETS_TIMEOUT_SECONDS)
            runtime.broker_answered(len(tps))
        except Exception as exc:  # the broker will answer next time; nothing is caught up
            log.debug("end offsets unavailable: %s", exc)
            runtime.broker_failed(f"{type(exc).__name__}: {exc}" if str(exc) else
                                  f"no answer in {END_OFFSETS_TIMEOUT_SECONDS:.0f} s")  # fmt: skip
            ends = {}
        caught_up: dict[int, dict[str, bool]] = {}
        for tp in tps:
            end = ends.get(tp)
            done = False
            if end is not None:
                runtime.report_lag(tp.topic, tp.partition, end)
                owned = runtime.owned.get(tp.partition)
                done = (owned.pe.offsets.get(tp.topic, 0) if owned is not None else 0) >= end
            caught_up.setdefault(tp.partition, {})[tp.topic] = done
        for p, topics in caught_up.items():
            runtime.set_caught_up(p, topics)
        await runtime.tick()

    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        ready["tables"] = False
        current["tps"] = frozenset()
        runtime.revoke({tp.partition for tp in revoked if tp.topic in input_names})

    async def on_assigned(sender: Any, tps: set[Any], **_: Any) -> None:
        refresh_assignment()

    async def on_rebalance_complete(sender: Any, **_: Any) -> None:
        refresh_assignment()
        ready["tables"] = True

    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(runtime.registry),
                         headers={"Content-Type": CONTENT_TYPE_LATEST})  # fmt: skip

    async def kpis(web: Any, request: Any) -> Any:
        return web.json(runtime.kpis())

    async def alerts(web: Any, request: Any) -> Any:
        return web.json(runtime.alerts())

    async def health(web: Any, request: Any) -> Any:
        return web.json(runtime.health())

    async def agents(web: Any, request: Any) -> Any:
        return web.json(runtime.agents())

    page = wallboard_page()

    async def wallboard(web: Any, request: Any) -> Any:
        return web.bytes(page, headers={"Content-Type": "text/html; charset=utf-8",
                                        "Cache-Control": "no-cache"})  # fmt: skip

    async def on_shutdown(sender: Any, **_: Any) -> None:
        runtime.close()

    app.on_before_shutdown.connect(on_shutdown)
    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
    app.on_rebalance_complete.connect(on_rebalance_complete)
    # Input records reach the runtime in the fetcher's batches (see _install_batch_fetch);
    # the topic is still registered with the conductor so that the consumer group subscribes to
    # it and co-assigns the checkpoint table's partitions.
    app.topics.add(inputs)
    app._cc_batch = (input_names, on_batch)
    app.timer(interval=1.0, name="tick")(tick)
    app.page("/metrics")(metrics)
    app.page("/api/kpis")(kpis)
    app.page("/health")(health)
    app.page("/api/alerts")(alerts)
    app.page("/api/agents")(agents)
    app.page("/wallboard")(wallboard)
    return app
