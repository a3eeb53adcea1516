"""Live agent states: each input partition sends its contacts' agent facts (and each tick its
mark) to the agents topic, keyed by agent (streams.agents).

Invariants: one sender at a time, so a partition's marks never overtake its facts; facts stay
in the partition's checkpoint until the broker has them (sent again after a failure; the
agents partition rejects duplicates).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from streams.partitioned import PartitionEngine

log = logging.getLogger("cc_monitor.worker")

Send = Callable[[int, bytes, bytes], Awaitable[Awaitable[object]]]
"""``send(partition, key, value)`` to the agents topic: awaited, it has the record queued;
the awaitable it returns is done once the broker has it."""


class AgentSender:
    def __init__(self, send: Send) -> None:
        self.send = send
        self._lock = asyncio.Lock()

    async def publish(self, engines: Iterable[PartitionEngine], marks: bool = False) -> None:
        """Send every given partition's agent facts (with ``marks``, its mark too) and wait
        for the broker to have them."""
        async with self._lock:
            for pe in list(engines):
                out = pe.take_outbox(marks)
                if not out:
                    continue
                try:
                    delivered = [await self.send(a, k, v) for a, k, v in out]
                    await asyncio.gather(*delivered)
                except Exception as exc:  # sent again next time; duplicates are rejected there
                    log.warning("agent facts of partition %d not sent: %s", pe.partition, exc)
                    pe.unsent(out)
                    continue
                pe.confirm(out)
