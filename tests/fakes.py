"""Test doubles shared by the live-path tests: what the broker, the consumer group, Redis and
the clock are to a worker run in process (tests/test_live.py and the modules built on it)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from alerts.evaluator import AlertEvent
from alerts.rules import RulesConfig
from cc_monitor.simulator import SimConfig, simulate
from kpis.config import EngineConfig
from kpis.decode import Decoder
from streams.kafka.checkpoint import MemoryCheckpoints
from streams.kafka.settings import Topics, topic_for
from streams.kafka.worker import LiveOptions, LiveRuntime
from streams.partitioned import key_of, partition_of
from streams.sinks.alertstore import MemoryAlertStore
from streams.sinks.readmodel import MemoryKpiView

TOPICS = Topics()
INPUTS = TOPICS.inputs()


@lru_cache(maxsize=1)
def day() -> tuple[bytes, ...]:
    cfg = SimConfig(contacts_per_day=1200, bad_lines_per_day=0)
    return tuple(orjson.dumps(ev) for ev in simulate(cfg))


def records_by_tp(lines: tuple[bytes, ...], partitions: int) -> dict[tuple[str, int], list[bytes]]:
    """What the producer writes: topic by type and channel, partition by case."""
    dec = Decoder()
    out: dict[tuple[str, int], list[bytes]] = {}
    for raw in lines:
        rec, _ = dec.decode(raw)
        etype = orjson.loads(raw)["type"]
        tp = (topic_for(etype, rec.channel, TOPICS), partition_of(key_of(rec), partitions))
        out.setdefault(tp, []).append(raw)
    return out


class Consumer:
    """A consumer group's view of one worker: per-topic-partition positions, committed offsets
    that advance only over acknowledged records, and uneven fetches across topics (a topic
    read far ahead of another is what a real consumer does)."""

    def __init__(self, data: Mapping[tuple[str, int], list[bytes]], committed: dict[Any, int]):
        self.data = data
        self.committed = committed
        self.acked: dict[tuple[str, int], set[int]] = {tp: set() for tp in data}
        self.owned: set[int] = set()

    def ack(self, tp: tuple[str, int], offset: int) -> Any:
        def done() -> None:
            acked = self.acked[tp]
            acked.add(offset)
            nxt = self.committed.get(tp, 0)
            while nxt in acked:
                acked.discard(nxt)
                nxt += 1
            self.committed[tp] = nxt

        return done

    def run(
        self, rt: LiveRuntime, owned: set[int], rng: random.Random, stop_after: int | None = None,
        topics: tuple[str, ...] | None = None,
    ) -> int:  # fmt: skip
        self.owned = owned
        pos = {tp: self.committed.get(tp, 0) for tp in self.data
               if tp[1] in owned and (topics is None or tp[0] in topics)}  # fmt: skip
        n = 0
        while True:
            if rt.sender is not None or rt.forwarder is not None:
                asyncio.run(rt.publish_agents())  # agent facts, rerouted records
            live = [tp for tp, o in pos.items() if o < len(self.data[tp])]
            if not live:
                return n
            tp = rng.choice(live)
            for _ in range(rng.randint(1, 400)):  # one fetch: a batch of one topic-partition
                o = pos[tp]
                if o >= len(self.data[tp]):
                    break
                rt.on_record(tp[0], tp[1], o, self.data[tp][o], self.ack(tp, o))
                pos[tp] = o + 1
                n += 1
                if stop_after is not None and n >= stop_after:
                    return n

    def quiesce(self, rt: LiveRuntime) -> None:
        """Everything read: each topic at its end, the input idle, a final tick. As the app's
        tick does, every assigned partition gets its engine, also one with nothing left to
        read after a restart (restored from its checkpoint)."""
        for p in sorted(self.owned):
            rt.partition(p)
        for _ in range(3 if rt.sender is not None else 1):
            if rt.sender is not None:  # the agent facts and marks the last tick sent
                self.run(rt, self.owned, random.Random(0), topics=(TOPICS.agents,))
            for p in list(rt.owned):
                rt.set_caught_up(p, dict.fromkeys(INPUTS, True))
            rt.time.last_record = -1e9
            asyncio.run(rt.tick())


class AgentsTopic:
    """The agents topic (streams.agents) of a test: what workers send lands in ``data``, read
    back like the inputs."""

    def __init__(self, data: dict[tuple[str, int], list[bytes]], partitions: int) -> None:
        self.data = data
        for a in range(partitions):
            data.setdefault((TOPICS.agents, a), [])

    async def __call__(self, partition: int, key: bytes, value: bytes) -> Any:
        self.data[(TOPICS.agents, partition)].append(value)
        return asyncio.sleep(0)


class InputsTopic:
    """The input topics as a worker reroutes records to them (streams.kafka.reroute): a copy
    lands at the end of its topic-partition in ``data``, read back like the others."""

    def __init__(self, data: dict[tuple[str, int], list[bytes]]) -> None:
        self.data = data
        self.sent: list[tuple[str, int, bytes, list[tuple[str, bytes]]]] = []

    async def __call__(self, topic: str, partition: int, key: bytes, value: bytes,
                       headers: list[tuple[str, bytes]]) -> Any:  # fmt: skip
        self.data.setdefault((topic, partition), []).append(value)
        self.sent.append((topic, partition, key, headers))
        return asyncio.sleep(0)


class Clock:
    def __init__(self) -> None:
        self.t = 1_795_000_000.0  # 2026-11-18: the simulated log (2026-11-02) is history

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


class Shared:
    """What Redis is to the workers of one test: the KPI view and the alert store."""

    def __init__(self, view: Any = None, alerts: Any = None) -> None:
        self.view = view if view is not None else MemoryKpiView()
        self.alerts = alerts if alerts is not None else MemoryAlertStore()


def runtime(
    store: MemoryCheckpoints, partitions: int, shared: Shared | None = None,
    rules: RulesConfig | None = None, config: EngineConfig | None = None,
    agents: AgentsTopic | None = None, *, notify: Notified | None = None, name: str = "worker",
    archive: Any = None, forward: InputsTopic | None = None,
) -> LiveRuntime:  # fmt: skip
    """A worker as the tests run it: fast checkpoints, a test clock, in-memory stores (shared
    between the workers of one test through ``shared``), live agent states with ``agents``."""
    shared = shared or Shared()
    topic = TOPICS.agents if agents else None
    options = LiveOptions(inputs=INPUTS, checkpoint_interval=0.05, idle_flush_seconds=5,
                          worker_id=name, agents_topic=topic)  # fmt: skip
    return LiveRuntime(config or EngineConfig(), partitions, store, registry=CollectorRegistry(),
                       read_model=shared.view, alert_store=shared.alerts, clock=Clock(),
                       rules=rules, notify=notify, archive=archive, send=agents,
                       forward=forward, options=options)  # fmt: skip


class Notified:
    """The alert notifications a deployment sends (alerts topic, receivers)."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    async def __call__(self, event: AlertEvent) -> None:
        self.events.append(event)
