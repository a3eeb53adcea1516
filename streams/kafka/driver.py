"""The live worker on aiokafka: consumer group, checkpoint topic, tick, web server.

:class:`KafkaDriver` runs a :class:`streams.kafka.worker.LiveRuntime` against a broker, with
nothing between the fetched records and the runtime (docs/architecture.md, "Faust", says why
the worker no longer runs on Faust, with the measurements):

* **Group and assignment.** One consumer in the group ``worker.app_id`` subscribes to the
  input topics (and the agents topic). They have the same partition count, and the range
  assignor gives each member the same partition numbers of every topic it subscribes to, so
  partition *p* of all of them goes to one worker.
* **Checkpoints** (:class:`CheckpointTopic`): a compacted topic, ``<app_id>-checkpoints-
  changelog``, partition *p* holding input partition *p*'s chunks and head. When partitions
  are assigned, their checkpoint partitions are read to the end before a record is processed
  (the rebalance waits for it).
* **Offsets.** A record is acknowledged once a durable checkpoint covers it; the driver
  commits, per topic-partition, the offset after the highest acknowledged record (a
  checkpoint covers every record below its offsets), each tick and before a revocation.
  Nothing is committed automatically.
* **Records** go one by one to :meth:`LiveRuntime.on_record` in the batches ``getmany``
  returns; an outcome ``gap`` seeks back, ``rejected`` sends a dead letter.
* **Tick** (one a second): the broker's end offsets, then :meth:`LiveRuntime.tick`, then the
  commits. **Web**: aiohttp serves ``/metrics``, ``/api/*``, ``/health``, ``/wallboard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts.evaluator import AlertEvent
from streams.agents import Outcome
from streams.delivery import Dispatcher
from streams.kafka.settings import KafkaSettings
from streams.kafka.worker import LiveRuntime
from streams.kafka.worker_settings import WorkerSettings
from streams.partitioned import dead_letter_record

log = logging.getLogger("cc_monitor.worker")

#: records processed between two yields to the event loop
YIELD_EVERY = 500
END_OFFSETS_TIMEOUT_SECONDS = 10.0
"""How long a tick waits for the broker's end offsets before it counts as not answering."""
#: record outcomes that need a seek or a dead letter
FOLLOW_UP = frozenset({"gap", "rejected"})
RESTORE_POLL_MS = 200
RESTORE_TIMEOUT_SECONDS = 60.0


def checkpoint_topic(worker: WorkerSettings) -> str:
    """The checkpoints' compacted topic (the name the Faust table's changelog had)."""
    return f"{worker.app_id}-checkpoints-changelog"


class CheckpointTopic:
    """Checkpoint chunks and heads (streams.kafka.checkpoint) in a compacted topic: the local
    copy for reads, the topic for durability. ``put`` returns what to await for the broker
    to have the write; a key's partition is the input partition it belongs to."""

    def __init__(self, producer: Any, topic: str, kafka: KafkaSettings) -> None:
        self.producer = producer
        self.topic = topic
        self.kafka = kafka
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: bytes) -> Awaitable[object]:
        self.data[key] = value
        return self._send(partition, key, value)

    def delete(self, partition: int, key: str) -> None:
        self.data.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._send(partition, key, None))
        task.add_done_callback(_log_failure)

    async def _send(self, partition: int, key: str, value: bytes | None) -> object:
        sent = await self.producer.send(self.topic, value, key=key.encode(), partition=partition)
        return await sent

    async def restore(self, partitions: set[int]) -> None:
        """Read the checkpoint partitions to their end (tombstones delete), retried until
        done: a partition must not be processed from anything but its latest checkpoint."""
        while True:
            try:
                await asyncio.wait_for(self._read(partitions), RESTORE_TIMEOUT_SECONDS)
                return
            except Exception as exc:  # the broker away or restarting: read them again
                log.warning("checkpoints of partitions %s not read (%s); again",
                            sorted(partitions), f"{type(exc).__name__}: {exc}")  # fmt: skip
                await asyncio.sleep(1.0)

    async def _read(self, partitions: set[int]) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.kafka.settings import ensure_topics

        if not partitions:
            return
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False,
                                    **self.kafka.client_options())  # fmt: skip
        await consumer.start()
        try:
            if self.topic not in await consumer.topics():
                # a broker that lost its storage lost the topic too: what this worker wrote is
                # still in ``data``; the topic is made again for the next writes
                await ensure_topics(self.kafka, [self.topic])
                log.warning("checkpoint topic %s missing: created again", self.topic)
                return
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            n = 0
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(*tps, timeout_ms=RESTORE_POLL_MS)
                for records in batch.values():
                    for r in records:
                        key = r.key.decode()
                        if r.value is None:
                            self.data.pop(key, None)
                        else:
                            self.data[key] = r.value
                        n += 1
            log.info("checkpoints of partitions %s read (%d records)", sorted(partitions), n)
        finally:
            await consumer.stop()


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("checkpoint tombstone not written: %s", task.exception())


class Acks:
    """Per topic-partition, the offset to commit: after the highest acknowledged record."""

    def __init__(self) -> None:
        self.done: dict[Any, int] = {}
        self.committed: dict[Any, int] = {}

    def due(self, tps: set[Any] | frozenset[Any]) -> dict[Any, int]:
        return {tp: o for tp, o in self.done.items() if tp in tps and self.committed.get(tp) != o}

    def forget(self, tps: set[Any]) -> None:
        for tp in tps:
            self.done.pop(tp, None)
            self.committed.pop(tp, None)


class RecordAck:
    """Acknowledges one input record (called once a durable checkpoint covers it)."""

    __slots__ = ("acks", "offset", "tp")

    def __init__(self, acks: Acks, tp: Any, offset: int) -> None:
        self.acks = acks
        self.tp = tp
        self.offset = offset

    def __call__(self) -> None:
        done = self.acks.done
        if self.offset >= done.get(self.tp, 0):
            done[self.tp] = self.offset + 1


class KafkaDriver:
    """Between the broker and the runtime; see the module docstring."""

    def __init__(self, kafka: KafkaSettings, worker: WorkerSettings, producer: Any,
                 dispatcher: Dispatcher | None) -> None:  # fmt: skip
        t = kafka.topics
        self.kafka = kafka
        self.worker = worker
        self.producer = producer
        self.dispatcher = dispatcher
        self.consumed = (*t.inputs(), t.agents) if worker.agent_states else t.inputs()
        self.checkpoints = CheckpointTopic(producer, checkpoint_topic(worker), kafka)
        self.runtime: LiveRuntime  # set once built (it takes this driver's sends)
        self.consumer: Any = None
        self.acks = Acks()
        self.tps: frozenset[Any] = frozenset()  # assigned now
        self.seeking: dict[Any, int] = {}
        self.stopping = asyncio.Event()
        # set once the assigned partitions' checkpoints are read: the fetcher may hand over
        # their records while the rebalance listener still reads them
        self.ready = asyncio.Event()

    # --- what the runtime sends ---------------------------------------------------------------

    async def send_agent(self, partition: int, key: bytes, value: bytes) -> Awaitable[object]:
        """To the agents topic, partition by agent (streams.agents); the result is done once
        the broker has the record."""
        sent: Awaitable[object] = await self.producer.send(
            self.kafka.topics.agents, value, key=key, partition=partition
        )
        return sent

    async def forward(self, topic: str, partition: int, key: bytes, value: bytes,
                      headers: list[tuple[str, bytes]]) -> Awaitable[object]:  # fmt: skip
        """A record rerouted to the input partition its key belongs to (streams.kafka.reroute);
        the result is done once the broker has it."""
        sent: Awaitable[object] = await self.producer.send(
            topic, value, key=key, partition=partition, headers=headers
        )
        return sent

    async def notify(self, event: AlertEvent) -> None:
        """An alert transition, claimed once across workers: to the alerts topic (keyed by
        fingerprint) and to the receivers' durable outbox (delivered with retries)."""
        doc = {"status": event.status, "alert": event.alert.to_dict()}
        # awaited until the broker has it: the claim is taken, so this is the only send
        headers = [("cc-status", event.status.encode())]
        await self.producer.send_and_wait(
            self.kafka.topics.alerts,
            orjson.dumps(doc),
            key=event.alert.fingerprint.encode(),
            headers=headers,
        )
        if self.dispatcher is not None:
            self.dispatcher.alert(event)

    # --- the consumer group -------------------------------------------------------------------

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

        w = self.worker
        opts: dict[str, Any] = {}
        if w.group_timeout_seconds is not None:
            ms = int(w.group_timeout_seconds * 1000)
            opts = {"session_timeout_ms": ms, "rebalance_timeout_ms": ms,
                    "heartbeat_interval_ms": max(ms // 6, 500)}  # fmt: skip
        self.consumer = AIOKafkaConsumer(
            group_id=w.app_id, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=w.fetch_max_wait_ms, fetch_min_bytes=w.fetch_min_bytes,
            # partition p of every topic to the same member (same partition counts)
            partition_assignment_strategy=(RangePartitionAssignor,),
            **opts, **self.kafka.client_options(),
        )  # fmt: skip
        self.consumer.subscribe(list(self.consumed), listener=_listener(self))
        await self.consumer.start()

    async def on_revoked(self, revoked: set[Any]) -> None:
        self.ready.clear()
        await self.commit(set(revoked))
        self.tps = frozenset()
        self.acks.forget(set(revoked))
        self.runtime.revoke({tp.partition for tp in revoked})

    async def on_assigned(self, assigned: set[Any]) -> None:
        """Before any record of them: the assigned partitions' checkpoints, read to the end,
        and their engines (a partition with nothing new to read still gets one)."""
        parts = {tp.partition for tp in assigned}
        await self.checkpoints.restore(parts - set(self.runtime.owned))
        for p in sorted(parts):
            self.runtime.partition(p)
        self.tps = frozenset(assigned)
        self.ready.set()

    async def commit(self, tps: set[Any] | frozenset[Any]) -> None:
        """The acknowledged offsets of ``tps`` not committed yet."""
        from aiokafka.structs import OffsetAndMetadata

        due = self.acks.due(tps)
        if not due:
            return
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in due.items()})
        except Exception as exc:  # committed next time (a record is never lost, only redelivered)
            log.warning("offset commit failed: %s", exc)
            return
        self.acks.committed.update(due)

    # --- records ------------------------------------------------------------------------------

    async def consume(self) -> None:
        from aiokafka.errors import KafkaError

        while not self.stopping.is_set():
            try:
                batches = await self.consumer.getmany(timeout_ms=1000)
            except KafkaError as exc:  # the broker away: /health says so; fetch again
                log.warning("fetch failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if batches:
                await self.ready.wait()
            for tp, records in batches.items():
                await self.on_batch(tp, records)
            await self.runtime.publish_agents()  # the agent facts the batches released

    async def on_batch(self, tp: Any, records: list[Any]) -> None:
        on_record = self.runtime.on_record
        for i, record in enumerate(records, 1):
            if tp not in self.tps:
                return  # revoked meanwhile: the new owner processes it
            out = on_record(tp.topic, tp.partition, record.offset, record.value or b"",
                            RecordAck(self.acks, tp, record.offset),
                            record.timestamp or None)  # fmt: skip
            if (self.seeking or out.status in FOLLOW_UP) and await self.follow_up(tp, record, out):
                return  # sought back: the rest of this batch comes again
            if not i % YIELD_EVERY:
                await asyncio.sleep(0)  # the web server and the tick get their turn

    async def follow_up(self, tp: Any, record: Any, out: Outcome) -> bool:
        """What a record's outcome asks of Kafka: a seek back to a gap (True), a dead letter."""
        if out.status == "gap":
            if self.seeking.get(tp) != out.expected:
                self.seeking[tp] = out.expected
                self.consumer.seek(tp, out.expected)
            return True
        self.seeking.pop(tp, None)
        if out.status == "rejected":
            key, value, headers = dead_letter_record(
                record.key, record.value or b"", out, self.worker.dead_letter_max_bytes
            )
            headers["cc-source"] = f"{tp.topic}/{tp.partition}/{record.offset}".encode()
            await self.producer.send(self.kafka.topics.dead_letter, value, key=key,
                                     headers=list(headers.items()))  # fmt: skip
        return False

    # --- the tick -----------------------------------------------------------------------------

    async def ticks(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)
            try:
                await self.tick()
            except Exception:  # a tick must never stop the worker's clock
                log.exception("tick failed")

    async def tick(self) -> None:
        tps = self.tps
        asked = self._done(tps)
        ends = await self.end_offsets(tps)
        for tp, end in ends.items():
            # records appended and processed while the request was on its way: the answer is
            # older than what was processed, not a log that lost records
            if asked.get(tp, 0) <= end:
                ends[tp] = max(end, self._done({tp}).get(tp, 0))
        self.runtime.broker_ends({(tp.topic, tp.partition): e for tp, e in ends.items()},
                                 [(tp.topic, tp.partition) for tp in tps])  # fmt: skip
        await self.runtime.tick()
        await self.commit(tps)

    def _done(self, tps: frozenset[Any] | set[Any]) -> dict[Any, int]:
        """The offset each topic-partition's engine has processed up to, now."""
        owned = self.runtime.owned
        return {tp: owned[tp.partition].pe.offsets.get(tp.topic, 0)
                for tp in tps if tp.partition in owned}  # fmt: skip

    async def end_offsets(self, tps: frozenset[Any]) -> dict[Any, int]:
        """End offsets from the broker. Bounded: a request to a broker that is gone can hang
        for the client's whole request timeout, and the tick also drives checkpoints and the
        alert path."""
        try:
            ends: dict[Any, int] = {}
            if tps:
                ask = self.consumer.end_offsets(list(tps))
                ends = await asyncio.wait_for(ask, END_OFFSETS_TIMEOUT_SECONDS)
            self.runtime.broker.answered(len(tps))
            return ends
        except Exception as exc:  # the broker will answer next time; nothing is caught up
            log.debug("end offsets unavailable: %s", exc)
            why = str(exc) and f"{type(exc).__name__}: {exc}"
            self.runtime.broker.failed(why or f"no answer in {END_OFFSETS_TIMEOUT_SECONDS:.0f} s")
            return {}

    # --- run ----------------------------------------------------------------------------------

    async def run(self, web: Callable[[], Awaitable[Any]]) -> None:
        """Until SIGINT / SIGTERM: the web server first (a taken port fails at once), then
        the group, the records and the tick; then a clean stop (commits, archive handed
        over)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        runner = await web()
        await self.producer.start()
        try:
            await self.start()
            loops = [asyncio.create_task(self.consume()), asyncio.create_task(self.ticks())]
            stop = asyncio.create_task(self.stopping.wait())
            await asyncio.wait([*loops, stop], return_when=asyncio.FIRST_COMPLETED)
            self.stopping.set()
            for task in loops:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    stop.cancel()
                    raise task.exception()  # type: ignore[misc]  # a failed loop fails the worker
                task.cancel()
        finally:
            if self.consumer is not None:
                with contextlib.suppress(Exception):
                    await self.commit(self.tps)
                await self.consumer.stop()
            self.runtime.close()
            await self.producer.stop()
            await runner.cleanup()


def _listener(driver: KafkaDriver) -> Any:
    """aiokafka's rebalance listener: the group waits for these to finish."""
    from aiokafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: set[Any]) -> None:
            await driver.on_revoked(revoked)

        async def on_partitions_assigned(self, assigned: set[Any]) -> None:
            await driver.on_assigned(assigned)

    return Listener()


def web_app(runtime: LiveRuntime, page: bytes, runbooks: bytes | None = None) -> Any:
    """The worker's views: /metrics, /api/kpis, /api/alerts, /api/agents, /health,
    /wallboard and the runbooks its alert links point to (docs/runbooks.md); nothing else."""
    from aiohttp import web

    def json_view(view: Callable[[], object]) -> Any:
        async def handler(request: Any) -> Any:
            return web.Response(body=orjson.dumps(view()), content_type="application/json")

        return handler

    async def metrics(request: Any) -> Any:
        return web.Response(body=generate_latest(runtime.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})  # fmt: skip

    async def wallboard(request: Any) -> Any:
        return web.Response(body=page, headers={"Content-Type": "text/html; charset=utf-8",
                                                "Cache-Control": "no-cache"})  # fmt: skip

    v = runtime.views
    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/wallboard", wallboard)
    if runbooks is not None:

        async def runbook(request: Any) -> Any:
            return web.Response(body=runbooks,
                                headers={"Content-Type": "text/html; charset=utf-8"})  # fmt: skip

        app.router.add_get("/docs/runbooks.md", runbook)
    for path, view in (("/api/kpis", v.kpis), ("/health", v.health), ("/api/alerts", v.alerts),
                       ("/api/agents", v.agents)):  # fmt: skip
        app.router.add_get(path, json_view(view))
    return app
