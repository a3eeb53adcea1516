"""What /health says of a live worker: ok only while the data flows.

The broker and the assignment are known once the app's tick has asked (a runtime driven
without a broker, in tests, reports neither). A worker is degraded while a shared store does
not answer, the archive fails, the broker has not answered for ``BROKER_STALE_SECONDS``, no
input partition is assigned after ``NO_PARTITION_GRACE_SECONDS``, a partition's log was found
to have lost records (for ``LOG_LOST_HOLD_SECONDS``), or it rejects a large share of what it
reads (streams.rejects).
"""

from __future__ import annotations

import time
from collections.abc import Callable

BROKER_STALE_SECONDS = 20.0
NO_PARTITION_GRACE_SECONDS = 60.0
LOG_LOST_HOLD_SECONDS = 3600.0


class BrokerHealth:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started_at = clock()
        self.ok_at: float | None = None
        self.error = ""
        self.assignment_known = False
        self.log_lost: dict[tuple[str, int], tuple[float, str]] = {}

    def answered(self, assigned: int) -> None:
        """The app's tick asked (``assigned``: input partitions held; with none, nothing was
        asked of the broker and only the assignment is known)."""
        self.assignment_known = True
        if assigned:
            self.ok_at = self.clock()
            self.error = ""

    def failed(self, error: str) -> None:
        self.error = error[:300]
        self.assignment_known = True

    def lost(self, topic: str, partition: int, why: str) -> None:
        self.log_lost[(topic, partition)] = (self.clock(), why)

    def _silent_for(self) -> float:
        since = self.ok_at if self.ok_at is not None else self.started_at
        return self.clock() - since

    def down(self, owns: bool) -> bool:
        """The last end-offset request failed, or none was answered for BROKER_STALE_SECONDS
        while partitions are held (without partitions nothing is asked)."""
        if not self.assignment_known:
            return False
        return bool(self.error) or (owns and self._silent_for() > BROKER_STALE_SECONDS)

    def problems(self, owns: bool) -> list[str]:
        now = self.clock()
        out: list[str] = []
        if self.assignment_known:
            silent = self._silent_for()
            if owns and silent > BROKER_STALE_SECONDS:
                error = f": {self.error}" if self.error else ""
                out.append(f"broker not answering for {silent:.0f} s{error}")
            elif not owns and now - self.started_at > NO_PARTITION_GRACE_SECONDS:
                out.append("no input partition assigned (is the broker reachable? "
                           f"{self.error or 'no error seen'})")  # fmt: skip
        for when, why in self.log_lost.values():
            if now - when < LOG_LOST_HOLD_SECONDS:
                out.append(why)
        return out
