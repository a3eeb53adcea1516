"""Which input partitions this worker owns, and their engines.

Invariant: a partition's engine is restored from its latest checkpoint on first use, and a
revoked partition is forgotten without saving, so a worker that lost a partition can never
overwrite the new owner's checkpoint with an older state (the new owner processes the
unacknowledged records again from that checkpoint).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from alerts.rules import RulesConfig
from kpis.config import EngineConfig
from streams.kafka.checkpoint import CheckpointStore, Owned, load_checkpoint
from streams.partitioned import PartitionEngine
from streams.sinks.metrics import Part

log = logging.getLogger("cc_monitor.worker")


class Ownership:
    def __init__(
        self,
        config: EngineConfig,
        partitions: int,
        store: CheckpointStore,
        *,
        inputs: tuple[str, ...],
        rules: RulesConfig | None = None,
        agents_topic: str | None = None,
        checkpoint_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        route: bool = False,
    ) -> None:
        """``route``: records on a partition their case does not hash to are rerouted
        (streams.kafka.reroute)."""
        self.route = partitions if route else 0
        self.config = config
        self.partitions = partitions
        self.store = store
        self.inputs = inputs
        self.rules = rules
        self.agents_topic = agents_topic
        self.checkpoint_interval = checkpoint_interval
        self.clock = clock
        self.owned: dict[int, Owned] = {}

    def get(self, p: int) -> Owned | None:
        return self.owned.get(p)

    def restore(self, p: int) -> tuple[Owned, bool]:
        """The engine of partition ``p``; True: restored just now from its checkpoint."""
        owned = self.owned.get(p)
        if owned is not None:
            return owned, False
        blob = load_checkpoint(self.store, p)
        pe = PartitionEngine.from_checkpoint(p, self.config, blob, self.inputs, self.rules,
                                             self.agents_topic, self.partitions,
                                             self.route)  # fmt: skip
        # partitions' checkpoints spread over the interval, not all in the same moment:
        # together they would hold up every partition's records for all their durations
        spread = self.checkpoint_interval * (p % self.partitions) / self.partitions
        owned = self.owned[p] = Owned(pe, last_checkpoint=self.clock() - spread)
        log.info("partition %d: resumed at offsets %s", p, pe.offsets or "start")
        return owned, True

    def drop(self, p: int) -> bool:
        if self.owned.pop(p, None) is None:
            return False
        log.info("partition %d: revoked", p)
        return True

    def log_end(self, topic: str, partition: int, end: int) -> tuple[int, str | None]:
        """The broker's end offset of a topic-partition against what its engine covers: the
        offset done, and why, when the log ends below it. That means the log lost records
        (broker storage lost, an unclean leader election, a topic deleted and created again):
        records written there from now on would otherwise be skipped as "already processed".
        Policy (docs/live.md): continue from the log's end and keep the state (what was
        processed was processed)."""
        owned = self.owned.get(partition)
        done = owned.pe.offsets.get(topic, 0) if owned is not None else 0
        if owned is None or done <= end:
            return done, None
        why = (
            f"{topic}/{partition}: the log ends at offset {end}, the checkpoint covers up to "
            f"{done}: records were lost by the broker; continuing from offset {end}"
        )
        log.warning("%s", why)
        owned.pe.offsets[topic] = end
        owned.dirty = True
        return end, why

    def parts(self) -> list[Part]:
        """What the Prometheus aggregates export, per owned partition."""
        parts: list[Part] = []
        for p, o in sorted(self.owned.items()):
            parts.append(({"partition": str(p)}, o.pe.metrics, o.pe.waiting_now))
            if o.pe.agents is not None:  # its series are the agents': never the same names
                parts.append(({"partition": str(p)}, o.pe.agents.metrics, None))
        return parts
