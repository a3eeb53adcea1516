"""What a live worker does with the records it is given, apart from Faust.

:class:`LiveRuntime` owns the per-partition engines of the partitions assigned to this worker,
decides when to checkpoint, which input offsets may be committed, what goes to the dead-letter
topic, and what the pipeline metrics say. :mod:`streams.kafka.app` connects it to Faust (agents,
tables, timers, web views); tests drive it directly with in-memory stores.

Invariants:

* A record's offset is acknowledged (so may be committed) only after a checkpoint that covers
  it has been saved; a restarted or new owner restores that checkpoint and skips what it
  covers. So each record changes the state exactly once, whatever crashes.
* Time: a partition's watermark follows the slowest of its input topics (a topic read ahead
  cannot make another's records late). On real-time input (records arrive within the allowed
  lateness of their event time) the wall clock also moves caught-up partitions, to now minus
  the allowed lateness, so deadlines pass in quiet hours. On historical input (a replay through
  Kafka, a backlog) the wall clock says nothing about event time: when the input has been quiet
  for ``idle_flush_seconds`` and every owned partition has read everything, they are flushed to
  the centre's latest event time (shared through the read model), as a replay is at the end of
  its input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.evaluator import Alert, AlertEvent
from alerts.rules import RulesConfig
from alerts.stage import AlertStage
from kpis.clock import EventClock, TimePolicy
from kpis.config import EngineConfig
from kpis.decode import REJECT_REASONS
from kpis.targets import Targets
from streams.agents import agents_view
from streams.audit.archive import LiveArchive
from streams.partitioned import (
    CHUNK_BYTES,
    Head,
    Outcome,
    PartitionEngine,
    chunk_key,
    head_key,
    partition_doc,
    split,
)
from streams.rejects import RejectWatch
from streams.sinks.metrics import MetricsCollector, Part, RecordStats
from streams.sinks.readmodel import MemoryReadModel, ReadModelStore, kpi_view

log = logging.getLogger("cc_monitor.worker")
ARCHIVE_RETRY_SECONDS = 5.0  # after an archive write failure, before writing again

Ack = Callable[[], object]
Send = Callable[[int, bytes, bytes], Awaitable[Awaitable[object]]]
"""``send(partition, key, value)`` to the agents topic: awaited, it has the record queued;
the awaitable it returns is done once the broker has it."""


class CheckpointStore(Protocol):
    """Where partition checkpoints live (a changelogged Faust table in the worker)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, partition: int, key: str, value: bytes) -> Awaitable[object] | None:
        """Store a value; returns what to await for it to be durable (None: it is)."""

    def delete(self, partition: int, key: str) -> object: ...


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: bytes) -> None:
        self.data[key] = value

    def delete(self, partition: int, key: str) -> None:
        self.data.pop(key, None)


@dataclass
class Saved:
    size: int
    pending: list[Awaitable[object]]  # durable when all are done
    previous: Head | None  # the generation this one replaces: drop it once durable


def save_checkpoint(store: CheckpointStore, pe: PartitionEngine, generation: str) -> Saved:
    """Write a partition's checkpoint as chunks, then the head that makes it current (same
    changelog partition, so a reader that sees the head sees its chunks)."""
    blob = pe.checkpoint()
    chunks = split(blob, CHUNK_BYTES)
    p = pe.partition
    old = store.get(head_key(p))
    writes = [store.put(p, chunk_key(p, generation, i), chunk) for i, chunk in enumerate(chunks)]
    head = Head(p, generation, len(chunks), dict(pe.offsets))
    writes.append(store.put(p, head_key(p), head.to_bytes()))
    prev = Head.from_bytes(old) if old is not None else None
    return Saved(len(blob), [w for w in writes if w is not None],
                 prev if prev is not None and prev.generation != generation else None)  # fmt: skip


def drop_generation(store: CheckpointStore, head: Head) -> None:
    for i in range(head.chunks):
        store.delete(head.partition, chunk_key(head.partition, head.generation, i))


def load_checkpoint(store: CheckpointStore, partition: int) -> bytes | None:
    raw = store.get(head_key(partition))
    if raw is None:
        return None
    head = Head.from_bytes(raw)
    parts = [store.get(chunk_key(partition, head.generation, i)) for i in range(head.chunks)]
    if any(c is None for c in parts):
        raise RuntimeError(f"checkpoint of partition {partition} is missing chunks")
    return b"".join(c for c in parts if c is not None)


@dataclass
class Owned:
    """A partition this worker owns at the moment."""

    pe: PartitionEngine
    pending: list[Ack] = field(default_factory=list)
    dirty: bool = False
    last_checkpoint: float = 0.0
    caught_up: bool = False


Notify = Callable[[AlertEvent], Awaitable[None]]


BROKER_STALE_SECONDS = 20.0
EVALUATE_PER_TICK = 2000
"""Alert-rule evaluation ticks per worker tick at most (a backlog's are spread over ticks)."""
NO_PARTITION_GRACE_SECONDS = 60.0
LOG_LOST_HOLD_SECONDS = 3600.0


@dataclass
class PipelineMetrics:
    """Metrics updated now and then; the per-record ones are :class:`RecordStats`."""

    rejected: Counter
    event_time_lag: Gauge
    consumer_lag: Gauge
    checkpoints: Counter
    checkpoint_bytes: Gauge
    redis_up: Gauge
    owned: Gauge
    gaps: Counter
    checkpoint_seconds: Histogram
    alerts_firing: Gauge
    notifications: Counter
    log_lost: Counter
    broker_up: Gauge
    rejected_share: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        return cls(
            rejected=Counter("cc_events_rejected", "Input records dead-lettered, by reason.",
                             ["reason"], registry=registry),
            event_time_lag=Gauge(
                "cc_event_time_lag_seconds",
                "Wall clock minus the latest event time this worker has processed.",
                registry=registry,
            ),
            consumer_lag=Gauge("cc_consumer_lag", "Records not yet consumed, per partition.",
                               ["topic", "partition"], registry=registry),
            checkpoints=Counter("cc_checkpoints", "Partition checkpoints saved.",
                                registry=registry),
            checkpoint_bytes=Gauge("cc_checkpoint_bytes", "Size of the latest checkpoint.",
                                   ["partition"], registry=registry),
            redis_up=Gauge("cc_redis_up", "1 while the read model store answers.",
                           registry=registry),
            owned=Gauge("cc_partitions_owned", "Input partitions this worker owns.",
                        registry=registry),
            checkpoint_seconds=Histogram(
                "cc_checkpoint_duration_seconds",
                "Time to serialize and hand over one partition checkpoint (processing waits).",
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=registry,
            ),
            gaps=Counter("cc_offset_gaps", "Records delivered ahead of the next offset due "
                         "(stale after a rebalance); read again after a seek.",
                         registry=registry),
            alerts_firing=Gauge("cc_alerts_firing", "Alerts firing, on the worker that "
                                "evaluates the rules (0 elsewhere: sum over workers).",
                                ["alertname", "severity"], registry=registry),
            notifications=Counter("cc_alert_notifications", "Alert transitions notified "
                                  "(alerts topic and receivers), once across workers.",
                                  ["status"], registry=registry),
            log_lost=Counter("cc_input_log_lost", "A partition's log found ending before the "
                             "offsets its checkpoint covers (records lost by the broker, a "
                             "topic recreated); it continues from the log's end.",
                             ["topic", "partition"], registry=registry),
            broker_up=Gauge("cc_broker_up", "0 once the broker has failed the worker's end-offset "
                            "request, or not answered it for 20 s; else 1.", registry=registry),
            rejected_share=Gauge("cc_input_rejected_share", "Share of the input records read in "
                                 "the last worker.reject_window_seconds that were rejected; "
                                 "/health is degraded at worker.reject_alarm_share.",
                                 registry=registry),
        )  # fmt: skip


class LiveRuntime:
    """The live worker's state and decisions; see the module docstring for the invariants."""

    def __init__(
        self,
        config: EngineConfig,
        partitions: int,
        checkpoints: CheckpointStore,
        *,
        inputs: tuple[str, ...] = ("log",),
        registry: CollectorRegistry | None = None,
        read_model: ReadModelStore | None = None,
        checkpoint_interval: float = 5.0,
        idle_flush_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
        worker_id: str = "worker",
        rules: RulesConfig | None = None,
        notify: Notify | None = None,
        lease_seconds: float = 10.0,
        archive: LiveArchive | None = None,
        archive_retention_seconds: float | None = None,
        agents_topic: str | None = None,
        send: Send | None = None,
        tz: tzinfo = UTC,
        event_clock: EventClock | None = None,
        rejects: RejectWatch | None = None,
    ) -> None:
        """``agents_topic`` and ``send``: live agent states (streams.agents); each partition
        also runs that topic's partition of the same number, and ``send`` publishes the
        facts and marks of its contacts there. ``event_clock``: event time "now" from the
        wall clock (a simulated clock in the live demo; the wall clock itself by default);
        ``clock`` stays the wall clock of checkpoints, retries and health."""
        self.config = config
        self.tz = tz  # of the staffing view's intervals (alerts.staffing)
        self.policy = TimePolicy.of(config)  # the engines' own: when the wall clock moves time
        self.partitions = partitions
        self.checkpoints = checkpoints
        self.inputs = inputs
        self.registry = registry if registry is not None else CollectorRegistry()
        self.read_model: ReadModelStore = (
            read_model if read_model is not None else MemoryReadModel()
        )
        self.checkpoint_interval = checkpoint_interval
        self.idle_flush_seconds = idle_flush_seconds
        self.clock = clock
        self.event_clock = event_clock if event_clock is not None else EventClock()
        self.rejects = rejects if rejects is not None else RejectWatch()
        self.worker_id = worker_id
        self.owned: dict[int, Owned] = {}
        self.records = 0  # records handled since start, redeliveries included
        self.realtime = False
        self._inflight: set[asyncio.Task[None]] = set()
        self.agents_topic = agents_topic if send is not None else None
        self.send = send
        self._send_lock = asyncio.Lock()
        self.metrics = PipelineMetrics.create(self.registry)
        for reason in REJECT_REASONS:  # every reason has a series from the start (0)
            self.metrics.rejected.labels(reason)
        self.registry.register(MetricsCollector(parts=self._parts))
        self.registry.register(StaffingCollector(self))
        self.record_stats = RecordStats()
        self.registry.register(self.record_stats)
        self.last_record = clock()
        self.flushed_to: float | None = None
        self.generation = 0
        self.read_model_ok: bool | None = None
        self.read_model_error = ""
        self.last_docs: dict[int, bytes] = {}
        # Alerts (alerts.stage): every partition records its intervals; the worker holding the
        # lease in the store evaluates the centre's rules and notifies.
        self.rules = rules
        self.notify = notify
        self.lease_seconds = lease_seconds
        self.stage: AlertStage | None = None  # while this worker leads
        self.evaluated_to: float | None = None
        self._alert_events: list[AlertEvent] = []
        self._set_firing([])
        # The event archive (streams.audit.archive): every record this worker processes, written
        # before it is acknowledged and on disk before the checkpoint that acknowledges it.
        self.archive = archive
        self.archive_retention = archive_retention_seconds
        self.archive_error = ""
        self._archive_expired_at = -math.inf
        self._busy: dict[tuple[str, int], int] = {}
        self._archive_retry_at = -math.inf
        # What /health reports of the broker and the assignment: known once the app's tick
        # has asked (a runtime driven without a broker, in tests, reports neither).
        self.started_at = clock()
        self.broker_ok_at: float | None = None
        self.broker_error = ""
        self.assignment_known = False
        self.log_lost: dict[tuple[str, int], tuple[float, str]] = {}
        # read at each scrape: a request to a broker that is gone may hang rather than fail
        self.metrics.broker_up.set_function(lambda: 0.0 if self.broker_down() else 1.0)

    # --- partitions ---------------------------------------------------------------------------

    def _parts(self) -> list[Part]:
        parts: list[Part] = []
        for p, o in sorted(self.owned.items()):
            parts.append(({"partition": str(p)}, o.pe.metrics, o.pe.waiting_now))
            if o.pe.agents is not None:  # its series are the agents': never the same names
                parts.append(({"partition": str(p)}, o.pe.agents.metrics, None))
        return parts

    def partition(self, p: int) -> Owned:
        """The engine of partition ``p``, restored from its checkpoint on first use."""
        owned = self.owned.get(p)
        if owned is None:
            blob = load_checkpoint(self.checkpoints, p)
            pe = PartitionEngine.from_checkpoint(p, self.config, blob, self.inputs, self.rules,
                                                 self.agents_topic, self.partitions)  # fmt: skip
            # partitions' checkpoints spread over the interval, not all in the same moment:
            # together they would hold up every partition's records for all their durations
            spread = self.checkpoint_interval * (p % self.partitions) / self.partitions
            owned = self.owned[p] = Owned(pe, last_checkpoint=self.clock() - spread)
            self.flushed_to = None  # a restored state may hold back what a flush processes
            self.metrics.owned.set(len(self.owned))
            log.info("partition %d: resumed at offsets %s", p, pe.offsets or "start")
        return owned

    def revoke(self, partitions: set[int]) -> None:
        """Forget partitions another worker takes over. Their unacknowledged records are
        processed again by the new owner from the last checkpoint; nothing is saved here, so
        a worker that lost a partition can never overwrite the new owner's checkpoint with
        an older state."""
        for p in partitions:
            if self.owned.pop(p, None) is not None:
                log.info("partition %d: revoked", p)
            if self.archive is not None:
                self.archive.release(p)
        self.metrics.owned.set(len(self.owned))

    # --- records ------------------------------------------------------------------------------

    def on_record(
        self, topic: str, partition: int, offset: int, value: bytes, ack: Ack,
        append_ms: int | None = None,
    ) -> Outcome:  # fmt: skip
        """Process one input record. ``ack`` is called once a checkpoint covers it."""
        now = self.clock()
        self.last_record = now
        self.flushed_to = None
        self.records += 1
        # the agents topic is derived from the inputs (their facts): not archived
        archive = self.archive if topic != self.agents_topic else None
        if archive is not None and not self._archive_ready(topic, partition, now):
            # the previous owner still holds this topic-partition's archive: nothing is
            # processed until it lets go; the caller seeks back to the first record held back
            first = self._busy.setdefault((topic, partition), offset)
            if first == offset:
                log.warning("archive of %s/%d held by another process or failing: waiting",
                            topic, partition)  # fmt: skip
            self.metrics.gaps.inc()
            return Outcome("gap", expected=first)
        owned = self.partition(partition)
        event_now = self.event_clock.at(now)
        out = owned.pe.process(topic, offset, value, now=event_now)
        if out.status == "gap":
            self.metrics.gaps.inc()
            return out  # not acknowledged: read again after the caller's seek
        if archive is not None:
            # each offset once (the archive knows its next offset), whatever the engine did
            if self._busy:
                self._busy.pop((topic, partition), None)
            ts = owned.pe.last_ts if out.status != "skipped" else None
            try:
                archive.append(topic, partition, offset, value, ts)
            except OSError as exc:
                return self._archive_failed(topic, partition, exc, now)
        if out.status == "skipped":
            ack()  # covered by the restored checkpoint already
            return out
        owned.pending.append(ack)
        owned.dirty = True
        if out.status == "accepted" and topic != self.agents_topic:
            # real-time input: records arrive within the allowed lateness of their event time
            self.realtime = self.policy.realtime(event_now, owned.pe.max_ts)
            self.rejects.observe(now, None)
        elif out.status == "rejected":
            self.metrics.rejected.labels(out.reason).inc()
            if topic != self.agents_topic:
                self.rejects.observe(now, out.reason, out.detail)
        stats = self.record_stats
        stats.count(topic, out.event_type or "invalid")
        if append_ms is not None and append_ms > 0:
            stats.observe_latency(max(0.0, now - append_ms / 1000.0))
        if now - owned.last_checkpoint >= self.checkpoint_interval:
            self.checkpoint(partition)
        return out

    def _archive_ready(self, topic: str, partition: int, now: float) -> bool:
        assert self.archive is not None
        if now < self._archive_retry_at:
            return False
        try:
            return self.archive.ready(topic, partition)
        except OSError as exc:
            self._archive_failed(topic, partition, exc, now)
            return False

    def _archive_failed(self, topic: str, partition: int, exc: OSError, now: float) -> Outcome:
        """The archive cannot take a record the engine has just processed. The partition goes
        back to its last checkpoint (its unacknowledged records are consumed again and archived
        then) and the archive is retried after :data:`ARCHIVE_RETRY_SECONDS`: the engine never
        holds a record the archive does not, once a checkpoint acknowledges it."""
        assert self.archive is not None
        log.error("archive of %s/%d not written: %s; partition %d back to its checkpoint, "
                  "retrying in %.0f s", topic, partition, exc, partition,
                  ARCHIVE_RETRY_SECONDS)  # fmt: skip
        self.archive_error = f"{type(exc).__name__}: {exc}"
        self._archive_retry_at = now + ARCHIVE_RETRY_SECONDS
        self.owned.pop(partition, None)
        with contextlib.suppress(OSError):
            self.archive.release(partition)
        expected = self.partition(partition).pe.offsets.get(topic, 0)
        self.metrics.gaps.inc()
        return Outcome("gap", expected=expected)

    def checkpoint(self, partition: int) -> None:
        """Save partition's state and offsets, then acknowledge what it covers."""
        owned = self.owned.get(partition)
        if owned is None:
            return
        owned.last_checkpoint = self.clock()
        if not owned.dirty:
            return
        if self.archive is not None:
            try:  # what a checkpoint acknowledges is in the archive, on disk
                self.archive.flush(partition, sync=True)
            except OSError as exc:  # not acknowledged: tried again at the next checkpoint
                log.error("archive of partition %d not written, not checkpointing: %s",
                          partition, exc)  # fmt: skip
                self.archive_error = f"{type(exc).__name__}: {exc}"
                return
            self.archive_error = ""
        self.generation += 1
        started = time.perf_counter()
        saved = save_checkpoint(self.checkpoints, owned.pe, f"{self.worker_id}-{self.generation}")
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        self.metrics.checkpoints.inc()
        self.metrics.checkpoint_bytes.labels(str(partition)).set(saved.size)
        acks, owned.pending = owned.pending, []
        owned.dirty = False
        if not saved.pending:
            self._durable(saved, acks)
            return
        # Acknowledge (let Faust commit) only once the changelog has the checkpoint: Faust's
        # own flush before a commit gives up after 0.1 s, so it is no guarantee.
        task = asyncio.get_running_loop().create_task(self._when_durable(partition, saved, acks))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _when_durable(self, partition: int, saved: Saved, acks: list[Ack]) -> None:
        try:
            await asyncio.gather(*saved.pending)
        except Exception as exc:  # the records stay unacknowledged: the next checkpoint
            log.warning("checkpoint of partition %d not written: %s", partition, exc)
            owned = self.owned.get(partition)
            if owned is not None:
                owned.pending[:0] = acks
                owned.dirty = True
            return
        self._durable(saved, acks)

    def _durable(self, saved: Saved, acks: list[Ack]) -> None:
        for ack in acks:
            ack()
        if saved.previous is not None:
            drop_generation(self.checkpoints, saved.previous)

    async def publish_agents(self, marks: bool = False) -> None:
        """Send every owned partition's agent facts (and with ``marks``, each tick, its mark)
        to the agents topic, and wait for the broker to have them (they stay in checkpoints
        until then). One sender at a time, so a partition's marks never overtake its facts."""
        if self.send is None:
            return
        async with self._send_lock:
            for o in list(self.owned.values()):
                out = o.pe.take_outbox(marks)
                if not out:
                    continue
                try:
                    delivered = [await self.send(a, k, v) for a, k, v in out]
                    await asyncio.gather(*delivered)
                except Exception as exc:  # sent again next time; duplicates are rejected there
                    log.warning("agent facts of partition %d not sent: %s", o.pe.partition, exc)
                    o.pe.unsent(out)
                    continue
                o.pe.confirm(out)

    async def settle(self) -> None:
        """Wait for checkpoints being written (tests, shutdown)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    # --- time ---------------------------------------------------------------------------------

    def set_caught_up(self, partition: int, topics: dict[str, bool]) -> None:
        """Which of the partition's input topics have been read to their high-water mark."""
        owned = self.owned.get(partition)
        if owned is not None:
            before = owned.pe.engine.watermark
            for topic, done in topics.items():
                if topic != self.agents_topic:
                    owned.pe.set_idle(topic, done)
            owned.caught_up = all(topics.get(t, False) for t in self.inputs)
            # (the agents topic's time is its sources' marks, not its own end)
            owned.dirty = owned.dirty or owned.pe.engine.watermark != before

    async def tick(self) -> None:
        """Periodic work (about once a second): learn the centre's clock from the read model,
        move quiet partitions' time, flush when the input is idle, publish this worker's
        partitions, checkpoint."""
        now = self.clock()
        event_now = self.event_clock.at(now)
        self.metrics.rejected_share.set(round(self.rejects.share(now), 6))
        try:
            fetched = await self.read_model.fetch(self.partitions)
        except Exception as exc:  # any store failure: keep processing
            self._store_failed(exc)
            fetched = {}
        others = {p: d for p, d in fetched.items() if p not in self.owned}
        latest = [t for t in (_doc_max(d) for d in others.values()) if t is not None]
        latest += [o.pe.max_ts for o in self.owned.values() if o.pe.max_ts > float("-inf")]
        centre = max(latest) if latest else None
        if centre is not None:
            self.metrics.event_time_lag.set(max(0.0, event_now - centre))
            # Real-time input (the latest records arrived within the allowed lateness of their
            # event time): anything older than now - lateness is late by definition, so the
            # wall clock moves caught-up partitions, and deadlines pass in quiet hours. Never on
            # historical input (a replay through Kafka, a backlog), where partitions' positions
            # in event time differ by more than the allowed lateness.
            wall = self.policy.wall(event_now)
            if self.realtime:
                for o in self.owned.values():
                    if o.caught_up and wall > o.pe.engine.watermark:
                        o.pe.engine.advance(wall)
                        o.dirty = True
            # Historical input (a replay through Kafka, a backlog) gone quiet: what the
            # watermark holds back is processed, as at a replay's end; again whenever the
            # centre's clock moved on (other workers' partitions).
            idle = now - self.last_record >= self.idle_flush_seconds
            flushed = self.flushed_to is not None and self.flushed_to >= centre
            caught_up = all(o.caught_up for o in self.owned.values())
            if not self.realtime and idle and not flushed and caught_up:
                for o in self.owned.values():
                    o.pe.flush(centre)
                    o.dirty = True
                self.flushed_to = centre
                log.info("input idle for %.0f s: flushed to the latest event time",
                         now - self.last_record)  # fmt: skip
        await self.publish_agents(marks=True)  # what the time moved above released
        docs = {p: orjson.dumps(partition_doc(o.pe)) for p, o in self.owned.items()}
        try:
            await self.read_model.publish(docs)
            if self.read_model_ok is False:
                log.info("read model store reachable again; caught up")
            self.read_model_ok = True
            self.read_model_error = ""
        except Exception as exc:  # any store failure: keep processing
            self._store_failed(exc)
        self.metrics.redis_up.set(1 if self.read_model_ok else 0)
        self.last_docs = {**others, **docs}  # this worker's partitions: its own, freshest
        if self.rules is not None:
            await self._alerts()
        if self.archive is not None:
            self._archive_tick(now)
        for p, o in list(self.owned.items()):
            if now - o.last_checkpoint >= self.checkpoint_interval:
                self.checkpoint(p)

    def _archive_tick(self, now: float) -> None:
        """Flush the archive each tick (a killed worker loses no flushed line); apply
        retention hourly."""
        assert self.archive is not None
        try:
            self.archive.flush()
            if self.archive_retention is not None and now - self._archive_expired_at >= 3600:
                self._archive_expired_at = now
                gone = self.archive.expire(now - self.archive_retention)
                if gone:
                    log.info("archive retention: %d segments expired", len(gone))
        except OSError as exc:
            log.error("archive: %s", exc)
            self.archive_error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Shutdown: hand the archive's topic-partitions over (flushed, unsealed)."""
        if self.archive is not None:
            self.archive.close()

    async def _alerts(self) -> None:
        """Evaluate the centre's alert rules if this worker holds the lease, then drop the
        intervals the stage has evaluated (they stay in checkpoints and documents until then,
        so a stage on another worker, or after a restart, still finds them).

        Once-only paging: a notification is sent only by whoever first claims its key
        (fingerprint, start, status) in the store, so a new leader that evaluates a tick again
        (its predecessor died before saving the stage) does not page twice."""
        assert self.rules is not None
        store = self.read_model
        try:
            leads = await store.lead(self.worker_id, self.lease_seconds)
            if not leads:
                if self.stage is not None:
                    log.info("alert evaluation: lease lost")
                    self.stage = None
                    self._set_firing([])
                self.evaluated_to = await store.evaluated_to()
            else:
                await self._evaluate()
        except Exception as exc:  # any store failure: keep processing, try again next tick
            self._store_failed(exc)
            # the stage in memory may be ahead of what was notified and saved: start again
            # from the saved one (the claims keep what was already sent from being resent)
            self.stage = None
            self._alert_events = []
            return
        done = self.evaluated_to
        if done is not None:
            for o in self.owned.values():
                for rec in (o.pe.recorder, o.pe.agents.recorder if o.pe.agents else None):
                    if rec is not None and rec.closed and rec.closed[0].at <= done:
                        rec.closed = [i for i in rec.closed if i.at > done]

    async def _evaluate(self) -> None:
        assert self.rules is not None
        store = self.read_model
        n = self.partitions
        if self.stage is None:
            # input partitions 0..n-1, and with live agent states agents partitions n..2n-1
            every = range(2 * n if self.agents_topic is not None else n)
            stage = AlertStage(
                self.rules,
                self,
                every,
                Targets(self.config),
                tz=self.tz,
                interval_seconds=(self.config.interval_minutes or 30) * 60.0,
                # the agent engines' partitions hold the agents (none without live states)
                staff_from=range(n, 2 * n) if self.agents_topic is not None else (),
            )
            blob = await store.load_stage()
            if blob is not None:
                stage.restore(orjson.loads(blob))
            log.info("alert evaluation: lease taken, evaluated to %s", stage.evaluated_to)
            self.stage = stage
        stage = self.stage
        progress: dict[int, float] = {}
        for p, o in self.owned.items():  # this worker's partitions: from memory, not documents
            if o.pe.recorder is not None:
                stage.offer(o.pe.recorder.closed)
                progress[p] = o.pe.alert_progress()
            agents = o.pe.agents
            if agents is not None and agents.recorder is not None:
                stage.offer(agents.recorder.closed)
                progress[n + p] = agents.alert_progress()
        for p, raw in self.last_docs.items():
            if p in self.owned:
                continue
            doc = orjson.loads(raw)
            parts = [(p, doc.get("alerts"))]
            if doc.get("agents") is not None:
                parts.append((n + p, doc["agents"].get("alerts")))
            for q, alerts in parts:
                if alerts is None:
                    continue
                stage.offer_plain(alerts["intervals"])
                progress[q] = alerts["passed"] if alerts["passed"] is not None else -math.inf
        if not stage.release(progress, limit=EVALUATE_PER_TICK):
            return
        events, self._alert_events = self._alert_events, []
        for ev in events:
            a = ev.alert
            if await store.claim(f"{a.fingerprint}:{a.starts_at:.3f}:{ev.status}"):
                self.metrics.notifications.labels(ev.status).inc()
                if self.notify is not None:
                    await self.notify(ev)
        await store.save_stage(orjson.dumps(stage.snapshot()), stage.evaluated_to)
        self.evaluated_to = stage.evaluated_to
        self._set_firing(stage.logic.firing())

    def _set_firing(self, firing: list[Alert]) -> None:
        """One series per enabled rule (0 when not firing, so panels show a zero, not a gap)."""
        if self.rules is None:
            return
        counts = {name: 0 for name, rule in self.rules.rules.items() if rule.enabled}
        for a in firing:
            counts[a.rule] = counts.get(a.rule, 0) + 1
        for name, n in counts.items():
            self.metrics.alerts_firing.labels(name, self.rules.rules[name].severity).set(n)

    def alert(self, event: AlertEvent) -> None:
        """The stage's sink: events are notified after the release that produced them."""
        self._alert_events.append(event)

    def alerts(self) -> dict[str, object]:
        """Firing alerts, as the leader sees them (other workers: not evaluating); times in
        RFC 3339 (UTC), as every /api view gives them."""
        stage = self.stage
        firing = []
        for a in stage.logic.firing() if stage is not None else ():
            d = a.to_dict()
            d["starts_at"] = _rfc3339(a.starts_at)
            d["ends_at"] = _rfc3339(a.ends_at)
            firing.append(d)
        return {
            "evaluating": stage is not None,
            "evaluated_to": _rfc3339(self.evaluated_to),
            "firing": firing,
        }

    def _store_failed(self, exc: Exception) -> None:
        if self.read_model_ok is not False:
            log.warning("read model store unreachable, processing goes on: %s", exc)
        self.read_model_ok = False
        self.read_model_error = f"{type(exc).__name__}: {exc}"

    # --- views ---------------------------------------------------------------------------------

    def kpis(self) -> dict[str, object]:
        docs = [orjson.loads(d) for _, d in sorted(self.last_docs.items())]
        view = kpi_view(docs, self.partitions)
        view["staffing"] = self.staffing()
        view["read_model"] = "ok" if self.read_model_ok else (
            "unreachable" if self.read_model_ok is False else "starting")  # fmt: skip
        return view

    def staffing(self) -> list[dict[str, object]] | None:
        """The centre's staffing now and next interval (alerts.staffing), on the worker that
        evaluates the alert rules (None elsewhere)."""
        return self.stage.staffing.view() if self.stage is not None else None

    def agents(self) -> dict[str, object]:
        """``/api/agents`` (streams.agents.agents_view), from the same documents as /api/kpis."""
        docs = [orjson.loads(d) for _, d in sorted(self.last_docs.items())]
        view = agents_view(docs, self.config.agent_stretch_max_seconds)
        view["live"] = self.agents_topic is not None
        return view

    def health(self) -> dict[str, object]:
        problems = self.problems()
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "worker": self.worker_id,
            "partitions": sorted(self.owned),
            "read_model": {
                "ok": self.read_model_ok,
                "error": self.read_model_error or None,
            },
            "archive": {"error": self.archive_error or None} if self.archive is not None else None,
            "seconds_since_last_record": round(self.clock() - self.last_record, 3),
            "records": self.records,
            "input": self._input_health(),
        }

    def _input_health(self) -> dict[str, object]:
        """Input records read and rejected in the reject window (RejectWatch)."""
        read, rejected = self.rejects.counts(self.clock())
        return {"window_seconds": self.rejects.window, "read": read,
                "rejected": dict(sorted(rejected.items())),
                "alarm_share": self.rejects.alarm_share}  # fmt: skip

    def report_lag(self, topic: str, partition: int, highwater: int) -> None:
        """The broker's end offset of a topic-partition. One below the offsets the checkpoint
        covers means the log lost records (broker storage lost, an unclean leader election, a
        topic deleted and created again): records written there from now on would otherwise
        be skipped as "already processed". Policy (docs/live.md): continue from the log's end,
        keep the state (what was processed was processed), count it, and say so on /health
        for LOG_LOST_HOLD_SECONDS."""
        owned = self.owned.get(partition)
        done = owned.pe.offsets.get(topic, 0) if owned is not None else 0
        if owned is not None and done > highwater:
            why = (f"{topic}/{partition}: the log ends at offset {highwater}, the checkpoint "
                   f"covers up to {done}: records were lost by the broker; continuing from "
                   f"offset {highwater}")  # fmt: skip
            log.warning("%s", why)
            owned.pe.offsets[topic] = highwater
            owned.dirty = True
            self.log_lost[(topic, partition)] = (self.clock(), why)
            self.metrics.log_lost.labels(topic, str(partition)).inc()
            done = highwater
        self.metrics.consumer_lag.labels(topic, str(partition)).set(max(0, highwater - done))

    def broker_answered(self, assigned: int) -> None:
        """The app's tick asked (``assigned``: input partitions held; with none, nothing was
        asked of the broker and only the assignment is known)."""
        self.assignment_known = True
        if assigned:
            self.broker_ok_at = self.clock()
            self.broker_error = ""

    def broker_failed(self, error: str) -> None:
        self.broker_error = error[:300]
        self.assignment_known = True

    def _broker_silent_for(self) -> float:
        since = self.broker_ok_at if self.broker_ok_at is not None else self.started_at
        return self.clock() - since

    def broker_down(self) -> bool:
        """The last end-offset request failed, or none was answered for BROKER_STALE_SECONDS
        while partitions are held (without partitions nothing is asked)."""
        if not self.assignment_known:
            return False
        return bool(self.broker_error) or (
            bool(self.owned) and self._broker_silent_for() > BROKER_STALE_SECONDS
        )

    def problems(self) -> list[str]:
        """Why this worker is degraded (none: it is ok)."""
        now = self.clock()
        out: list[str] = []
        if self.read_model_ok is False:
            out.append(f"read model unreachable: {self.read_model_error}")
        if self.archive_error:
            out.append(f"archive: {self.archive_error}")
        if self.assignment_known:
            silent = self._broker_silent_for()
            if self.owned and silent > BROKER_STALE_SECONDS:
                error = f": {self.broker_error}" if self.broker_error else ""
                out.append(f"broker not answering for {silent:.0f} s{error}")
            elif not self.owned and now - self.started_at > NO_PARTITION_GRACE_SECONDS:
                out.append("no input partition assigned (is the broker reachable? "
                           f"{self.broker_error or 'no error seen'})")  # fmt: skip
        for when, why in self.log_lost.values():
            if now - when < LOG_LOST_HOLD_SECONDS:
                out.append(why)
        rejecting = self.rejects.problem(now)
        if rejecting is not None:
            out.append(rejecting)
        return out


class StaffingCollector(Collector):
    """``cc_required_agents`` and ``cc_forecast_offered`` per queue, from the staffing view of
    the worker evaluating the rules (the others export none: a dashboard takes the max)."""

    def __init__(self, runtime: LiveRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        labels = ["tenant", "channel", "queue", "horizon"]
        required = GaugeMetricFamily(
            "cc_required_agents",
            "Agents a queue needs for its service-level target (Erlang C): for the current "
            "interval's load so far (horizon=now) and the next interval's forecast (next).",
            labels=labels,
        )
        forecast = GaugeMetricFamily(
            "cc_forecast_offered",
            "Contacts expected in the next interval (same weekday and interval of previous weeks).",
            labels=labels[:3],
        )
        for row in self.runtime.staffing() or ():
            if row["tenant"] == "*":
                continue  # rollups belong to queries
            lb = [str(row["tenant"]), str(row["channel"]), str(row["queue"])]
            for key, horizon in (("required_agents", "now"), ("forecast_required_agents", "next")):
                value = row[key]
                if isinstance(value, int | float):
                    required.add_metric([*lb, horizon], float(value))
            offered = row["forecast_offered"]
            if isinstance(offered, int | float):
                forecast.add_metric(lb, float(offered))
        yield required
        yield forecast


def _rfc3339(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def _doc_max(raw: bytes) -> float | None:
    v = orjson.loads(raw).get("max_ts")
    return float(v) if v is not None else None
