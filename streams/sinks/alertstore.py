"""The alert path's shared store: the closed intervals each input and agents partition has
recorded for the alert rules (alerts.stage), and the coordination of the one worker that
evaluates them (its lease, the stage's saved state, the notifications already sent).

It is apart from the KPI view (:mod:`streams.sinks.readmodel`): the intervals are the alert
stage's input, not something /api/kpis shows, and a failure here is the alert path's.
Redis keys, all under ``cc-monitor:alerts:``: ``intervals:P`` (partition P's unevaluated
intervals and how far it has passed), ``lease``, ``stage``, ``evaluated-to`` and
``sent:<fingerprint>:<start>:<status>``.

Invariants: interval documents are whole states, so publishing is idempotent and the owner
after a rebalance overwrites; a notification is sent only by whoever first claims its key,
so a new leader that evaluates a tick again does not page twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

ALERTS_PREFIX = "cc-monitor:alerts:"
SENT_TTL_SECONDS = 30 * 86400


class AlertStore(Protocol):
    async def publish_intervals(self, docs: Mapping[int, bytes]) -> None:
        """Each partition's interval document (streams.partitioned.alert_doc)."""

    async def fetch_intervals(self, partitions: int) -> dict[int, bytes]: ...

    async def lead(self, worker: str, ttl: float) -> bool:
        """Take or extend the alert-evaluation lease; True while ``worker`` holds it."""
        ...

    async def load_stage(self) -> bytes | None: ...

    async def save_stage(self, blob: bytes, evaluated_to: float | None) -> None: ...

    async def evaluated_to(self) -> float | None: ...

    async def claim(self, key: str) -> bool:
        """True the first time ``key`` is claimed (a notification to send once)."""
        ...


class MemoryAlertStore:
    """A process-local store: one worker with no Redis configured (the embedded demo)."""

    def __init__(self) -> None:
        self.intervals: dict[int, bytes] = {}
        self.stage: bytes | None = None
        self.stage_to: float | None = None
        self.claimed: set[str] = set()
        self.leader: str | None = None  # no expiry in one process; see expire_lease

    async def publish_intervals(self, docs: Mapping[int, bytes]) -> None:
        self.intervals.update(docs)

    async def fetch_intervals(self, partitions: int) -> dict[int, bytes]:
        return {p: d for p, d in self.intervals.items() if p < partitions}

    async def lead(self, worker: str, ttl: float) -> bool:
        if self.leader is None:
            self.leader = worker
        return self.leader == worker

    def expire_lease(self) -> None:
        """What the lease's time-to-live does in Redis when its holder stops renewing it."""
        self.leader = None

    async def load_stage(self) -> bytes | None:
        return self.stage

    async def save_stage(self, blob: bytes, evaluated_to: float | None) -> None:
        self.stage, self.stage_to = blob, evaluated_to

    async def evaluated_to(self) -> float | None:
        return self.stage_to

    async def claim(self, key: str) -> bool:
        if key in self.claimed:
            return False
        self.claimed.add(key)
        return True


_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RedisAlertStore:
    def __init__(self, client: Any, prefix: str = ALERTS_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    async def publish_intervals(self, docs: Mapping[int, bytes]) -> None:
        if docs:
            await self.client.mset({f"{self.prefix}intervals:{p}": d for p, d in docs.items()})

    async def fetch_intervals(self, partitions: int) -> dict[int, bytes]:
        values = await self.client.mget([f"{self.prefix}intervals:{p}" for p in range(partitions)])
        return {p: v for p, v in enumerate(values) if v is not None}

    async def lead(self, worker: str, ttl: float) -> bool:
        key, ms = f"{self.prefix}lease", int(ttl * 1000)
        if await self.client.set(key, worker, nx=True, px=ms):
            return True
        return bool(await self.client.eval(_EXTEND, 1, key, worker, ms))

    async def load_stage(self) -> bytes | None:
        value: bytes | None = await self.client.get(f"{self.prefix}stage")
        return value

    async def save_stage(self, blob: bytes, evaluated_to: float | None) -> None:
        a = self.prefix
        await self.client.mset({f"{a}stage": blob, f"{a}evaluated-to": orjson.dumps(evaluated_to)})

    async def evaluated_to(self) -> float | None:
        raw = await self.client.get(f"{self.prefix}evaluated-to")
        value = orjson.loads(raw) if raw is not None else None
        return float(value) if value is not None else None

    async def claim(self, key: str) -> bool:
        return bool(
            await self.client.set(f"{self.prefix}sent:{key}", b"1", nx=True, ex=SENT_TTL_SECONDS)
        )
