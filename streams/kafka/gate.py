"""The live worker's archive gate: every record it processes is in the event archive
(streams.audit.archive) before it is acknowledged, and on disk before the checkpoint that
acknowledges it.

Invariants: a topic-partition's archive has one writer; a new owner processes nothing of it
until the previous one has let go (the caller seeks back to the first record held back). An
archive that cannot take a record sends its partition back to its last checkpoint, so the
engine never holds a record the archive does not once a checkpoint acknowledges it.
"""

from __future__ import annotations

import contextlib
import logging
import math

from streams.audit.archive import LiveArchive

log = logging.getLogger("cc_monitor.worker")
ARCHIVE_RETRY_SECONDS = 5.0  # after an archive write failure, before writing again


class ArchiveGate:
    def __init__(self, archive: LiveArchive, retention_seconds: float | None = None) -> None:
        self.archive = archive
        self.retention = retention_seconds
        self.error = ""
        self._expired_at = -math.inf
        self._busy: dict[tuple[str, int], int] = {}
        self._retry_at = -math.inf

    def held(self, topic: str, partition: int, offset: int, now: float) -> int | None:
        """The offset to seek back to while this topic-partition's archive is not ours yet
        (held by another process, or retried after a failure); None: it may be written."""
        if self._ready(topic, partition, now):
            return None
        first = self._busy.setdefault((topic, partition), offset)
        if first == offset:
            log.warning("archive of %s/%d held by another process or failing: waiting",
                        topic, partition)  # fmt: skip
        return first

    def _ready(self, topic: str, partition: int, now: float) -> bool:
        if now < self._retry_at:
            return False
        try:
            return self.archive.ready(topic, partition)
        except OSError as exc:
            self.failed(topic, partition, exc, now)
            return False

    def append(
        self, topic: str, partition: int, offset: int, value: bytes, ts: float | None
    ) -> None:
        """Each offset once (the archive knows its next offset), whatever the engine did.
        Raises OSError: the caller sends the partition back (:meth:`failed`)."""
        if self._busy:
            self._busy.pop((topic, partition), None)
        self.archive.append(topic, partition, offset, value, ts)

    def failed(self, topic: str, partition: int, exc: OSError, now: float) -> None:
        """The archive could not take a record: let go of the partition and retry after
        :data:`ARCHIVE_RETRY_SECONDS` (the caller restores the partition's checkpoint)."""
        log.error("archive of %s/%d not written: %s; partition %d back to its checkpoint, "
                  "retrying in %.0f s", topic, partition, exc, partition,
                  ARCHIVE_RETRY_SECONDS)  # fmt: skip
        self.error = f"{type(exc).__name__}: {exc}"
        self._retry_at = now + ARCHIVE_RETRY_SECONDS
        with contextlib.suppress(OSError):
            self.archive.release(partition)

    def durable(self, partition: int) -> bool:
        """Step one of a checkpoint: what it acknowledges is in the archive, on disk."""
        try:
            self.archive.flush(partition, sync=True)
        except OSError as exc:  # not acknowledged: tried again at the next checkpoint
            log.error("archive of partition %d not written, not checkpointing: %s",
                      partition, exc)  # fmt: skip
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.error = ""
        return True

    def tick(self, now: float) -> None:
        """Flush each tick (a killed worker loses no flushed line); apply retention hourly."""
        try:
            self.archive.flush()
            if self.retention is not None and now - self._expired_at >= 3600:
                self._expired_at = now
                gone = self.archive.expire(now - self.retention)
                if gone:
                    log.info("archive retention: %d segments expired", len(gone))
        except OSError as exc:
            log.error("archive: %s", exc)
            self.error = f"{type(exc).__name__}: {exc}"

    def release(self, partition: int) -> None:
        self.archive.release(partition)

    def close(self) -> None:
        """Shutdown: hand the archive's topic-partitions over (flushed, unsealed)."""
        self.archive.close()
