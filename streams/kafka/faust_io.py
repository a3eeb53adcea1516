"""What the worker uses of Faust, and the two places it goes around it.

* :func:`faust_options`: the app's options from the settings.
* :class:`TableCheckpoints`: the checkpoint store in a changelogged Faust table.
* :func:`install_fetch_wait`: the fetch wait and minimum bytes Faust does not expose.
* :func:`install_batch_fetch` and :class:`RecordAck`: input records in the fetcher's batches,
  without a Faust ``Message`` each (docs/architecture.md, "Faust": why, with the measurements).
  tests/test_faust_patch.py fails when the upstream code these follow changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from streams.kafka.settings import KafkaSettings
from streams.kafka.worker_settings import WorkerSettings


def faust_options(kafka: KafkaSettings, worker: WorkerSettings) -> dict[str, Any]:
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


def install_fetch_wait(ms: int, min_bytes: int = 1) -> None:
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


def install_batch_fetch() -> None:
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
