"""How much of what a live worker reads it throws away, over a sliding window of wall time.

A worker that rejects most of its input (events too far ahead of its clock, late, invalid)
still answers its scrapes and serves the last figures it had; without this it would say "ok"
while its wallboard froze. :class:`RejectWatch` counts each input record's outcome in one-second
buckets and names the problem while the rejected share of the window is at or over the alarm
share. Pure: the wall time is passed in.

Invariants: memory is one bucket per second of the window (``window`` seconds at most, bounded
by the setting), and a bucket holds one counter per rejection reason (a fixed set).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Bucket:
    second: int
    read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class RejectWatch:
    """The rejected share of the input records read in the last ``window`` seconds."""

    def __init__(self, alarm_share: float = 0.2, window: float = 60.0, min_records: int = 20):
        self.alarm_share = alarm_share
        self.window = window
        self.min_records = min_records
        self._buckets: deque[_Bucket] = deque()
        self.last_detail: dict[str, str] = {}  # reason -> the latest rejection's detail

    def observe(self, now: float, reason: str | None, detail: str = "") -> None:
        """One input record read at wall time ``now``: accepted (``reason`` None) or rejected."""
        second = int(now)
        buckets = self._buckets
        if not buckets or buckets[-1].second != second:
            buckets.append(_Bucket(second))
            self._expire(now)
        b = buckets[-1]
        b.read += 1
        if reason is not None:
            b.rejected[reason] += 1
            if detail:
                self.last_detail[reason] = detail

    def _expire(self, now: float) -> None:
        oldest = now - self.window
        buckets = self._buckets
        while buckets and buckets[0].second + 1 <= oldest:
            buckets.popleft()

    def counts(self, now: float) -> tuple[int, Counter[str]]:
        """Records read and rejections by reason in the window ending at ``now``."""
        self._expire(now)
        read = 0
        rejected: Counter[str] = Counter()
        for b in self._buckets:
            read += b.read
            rejected.update(b.rejected)
        return read, rejected

    def share(self, now: float) -> float:
        read, rejected = self.counts(now)
        return sum(rejected.values()) / read if read else 0.0

    def problem(self, now: float) -> str | None:
        """Why the input is mostly thrown away (None: it is not)."""
        read, rejected = self.counts(now)
        total = sum(rejected.values())
        if read < self.min_records or total < self.alarm_share * read:
            return None
        reasons = ", ".join(f"{r} {n:,}" for r, n in rejected.most_common())
        top = rejected.most_common(1)[0][0]
        detail = self.last_detail.get(top)
        why = f"; latest {top}: {detail}" if detail else ""
        return (f"rejecting {total / read:.0%} of the input read in the last "
                f"{self.window:g} s ({total:,} of {read:,}: {reasons}){why}")  # fmt: skip
