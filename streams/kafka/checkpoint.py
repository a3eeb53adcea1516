"""Partition checkpoints: where they live, how one is written, and the commit protocol.

A checkpoint is a partition's whole state plus the input offsets it covers, written as chunks
and then a head that makes it current. :class:`Checkpointer` is the one place that commits a
partition, as quix-streams' ``Checkpoint`` does, in this order:

1. the archive holds, on disk, every record the checkpoint covers (else: not now);
2. the state is serialized and its chunks and head are written to the store;
3. once the store has them durably, the records it covers are acknowledged (so their offsets
   may be committed to Kafka), and the generation it replaces is dropped.

Invariant: a record is acknowledged only after a checkpoint covering it is durable, so a new
owner restores that checkpoint and skips exactly what it covers (each record counted once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from streams.partitioned import CHUNK_BYTES, Head, PartitionEngine, chunk_key, head_key, split

if TYPE_CHECKING:
    from streams.kafka.gate import ArchiveGate
    from streams.kafka.pipeline import PipelineMetrics

log = logging.getLogger("cc_monitor.worker")

Ack = Callable[[], object]


class CheckpointStore(Protocol):
    """Where partition checkpoints live (a compacted topic in the worker: streams.kafka.driver)."""

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
    """A partition this worker owns at the moment: its engine and the acknowledgements that
    wait for a checkpoint (``dirty``: the state changed since the last one)."""

    pe: PartitionEngine
    pending: list[Ack] = field(default_factory=list)
    dirty: bool = False
    last_checkpoint: float = 0.0
    caught_up: bool = False


class Checkpointer:
    """Commits partitions (see the module docstring for the steps and their order)."""

    def __init__(
        self,
        store: CheckpointStore,
        worker_id: str,
        metrics: PipelineMetrics,
        *,
        interval: float,
        archive: ArchiveGate | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.metrics = metrics
        self.interval = interval
        self.archive = archive
        self.clock = clock
        self.generation = 0
        self._inflight: set[asyncio.Task[None]] = set()

    def due(self, owned: Owned, now: float) -> bool:
        return now - owned.last_checkpoint >= self.interval

    def commit(self, owned: Owned, still_owned: Callable[[], Owned | None]) -> None:
        """Checkpoint one partition if its state changed. ``still_owned``: the partition's
        :class:`Owned` when the write is durable (None once revoked), to give acknowledgements
        back to if the write failed."""
        owned.last_checkpoint = self.clock()
        if not owned.dirty:
            return
        p = owned.pe.partition
        if self.archive is not None and not self.archive.durable(p):
            return  # step 1 failed: tried again at the next checkpoint
        self.generation += 1
        started = time.perf_counter()
        saved = save_checkpoint(self.store, owned.pe, f"{self.worker_id}-{self.generation}")
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        self.metrics.checkpoints.inc()
        self.metrics.checkpoint_bytes.labels(str(p)).set(saved.size)
        acks, owned.pending = owned.pending, []
        owned.dirty = False
        if not saved.pending:
            self._durable(saved, acks)
            return
        # Acknowledge (let the driver commit) only once the broker has the checkpoint.
        task = asyncio.get_running_loop().create_task(self._when_durable(p, saved, acks,
                                                                         still_owned))  # fmt: skip
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _when_durable(
        self, partition: int, saved: Saved, acks: list[Ack], still_owned: Callable[[], Owned | None]
    ) -> None:
        try:
            await asyncio.gather(*saved.pending)
        except Exception as exc:  # the records stay unacknowledged: the next checkpoint
            log.warning("checkpoint of partition %d not written: %s", partition, exc)
            owned = still_owned()
            if owned is not None:
                owned.pending[:0] = acks
                owned.dirty = True
            return
        self._durable(saved, acks)

    def _durable(self, saved: Saved, acks: list[Ack]) -> None:
        for ack in acks:
            ack()
        if saved.previous is not None:
            drop_generation(self.store, saved.previous)
