"""Which partition a record goes to: the same answer for the producer, the live worker and a
partitioned replay."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

from kpis.wire import TYPE_OF, Rec

REROUTED_HEADER = "cc-rerouted-from"
"""The header of a record's copy sent on to the partition its key belongs to
(streams.kafka.reroute): ``topic/partition/offset`` where it arrived."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java client and aiokafka alike) gives a key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


_COMPLAINTS = frozenset(cls for cls, t in TYPE_OF.items() if t.startswith("complaint."))


def key_of(rec: Rec) -> bytes:
    """The message key of an event: its case, or its contact when it names no case; a
    complaint's events, its complaint id (they may come through other contacts than the one
    it was opened on, and the complaint rules need nothing of a contact's state)."""
    if rec.__class__ in _COMPLAINTS:
        complaint: str = rec.complaint_id  # type: ignore[attr-defined]
        return complaint.encode()
    return (rec.case_id or rec.contact_id).encode()
