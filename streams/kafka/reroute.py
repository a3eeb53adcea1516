"""Records that arrived on a partition their case does not hash to (a producer that sends
without a key, with another key or to an explicit partition) go to the partition they belong
to, so every event of a case meets in one engine, as in a replay (which routes by key).

Invariants: a rerouted record stays in its source partition's checkpoint until the broker has
the copy (sent again after a failure or a restart); a copy sent twice is a ``duplicate`` on
the target partition (the event id), so the record counts once. The copy carries the header
``cc-rerouted-from: topic/partition/offset``; ``replay kafka:`` skips copies, reading each
record where it first arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from streams.partitioned import PartitionEngine
from streams.routing import REROUTED_HEADER

log = logging.getLogger("cc_monitor.worker")

Forward = Callable[[str, int, bytes, bytes, list[tuple[str, bytes]]], Awaitable[Awaitable[object]]]
"""``forward(topic, partition, key, value, headers)``: awaited, the record is queued; the
awaitable it returns is done once the broker has it."""


class Forwarder:
    def __init__(self, forward: Forward) -> None:
        self.forward = forward
        self._lock = asyncio.Lock()
        self.sent = 0

    async def publish(self, engines: Iterable[PartitionEngine]) -> None:
        """Send every given partition's rerouted records and wait for the broker to have them;
        what failed stays for the next time."""
        async with self._lock:
            for pe in list(engines):
                out = list(pe.rerouted)
                if not out:
                    continue
                try:
                    delivered = [
                        await self.forward(r.topic, r.partition, r.key, r.value,
                                           [(REROUTED_HEADER, f"{r.topic}/{r.source}".encode())])
                        for r in out
                    ]  # fmt: skip
                    await asyncio.gather(*delivered)
                except Exception as exc:  # sent again next time; a repeat is a duplicate there
                    log.warning("rerouted records of partition %d not sent: %s", pe.partition, exc)
                    continue
                done = set(map(id, out))
                pe.rerouted = [r for r in pe.rerouted if id(r) not in done]
                self.sent += len(out)
