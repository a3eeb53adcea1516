"""Publishing events to Kafka: ``cc-monitor produce`` (logs, any import format) and
``cc-monitor tail`` (a live Asterisk queue_log).

Every event is validated by the same decoder as replay before it is sent, keyed by its
``case_id`` (a complaint's events by their ``complaint_id``, streams.routing) to its input
topic. Bad input is never dropped silently: it goes to the dead-letter topic with its reason,
source and line in the headers, and is counted.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kpis.decode import Decoder, Rejection
from kpis.state import NO_LABEL
from kpis.wire import TYPE_OF, Rec
from streams.inputs.files import ImportStats, Source, SourceStats, iter_lines
from streams.inputs.importers.base import Importer, RowProblem
from streams.inputs.privacy import Pseudonymizer
from streams.kafka.settings import KafkaSettings, ensure_topics, topic_for
from streams.routing import key_of


@dataclass
class ProduceStats:
    produced: int = 0
    dead_lettered: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


_PSEUDONYM = re.compile(rb"p-[0-9a-f]{20}")
PSEUDONYMIZED_FIELDS = ("customer_id", "agent_id")


def pseudonymized(raw: bytes, rec: Rec, pseudonymize: Pseudonymizer) -> bytes:
    """``raw`` with its customer and agent ids replaced by their pseudonyms (ids that are
    pseudonyms already are kept, so producing a produced log again changes nothing; so is the
    engine's "no agent" id, ``-``)."""
    ids = {f: v for f in PSEUDONYMIZED_FIELDS if (v := getattr(rec, f)) != NO_LABEL}
    if not any(v and not _PSEUDONYM.fullmatch(v.encode()) for v in ids.values()):
        return raw
    doc = orjson.loads(raw)
    for field_name, value in ids.items():
        if value and not _PSEUDONYM.fullmatch(value.encode()):
            doc[field_name] = pseudonymize(value)
    return orjson.dumps(doc)


class EventProducer:
    def __init__(
        self,
        settings: KafkaSettings,
        max_line_bytes: int = 65_536,
        pseudonymize: Pseudonymizer | None = None,
    ) -> None:
        """``pseudonymize``: every event's customer and agent ids are replaced by their
        pseudonyms before they reach a topic (ids that are pseudonyms already are kept)."""
        self.settings = settings
        self.pseudonymize = pseudonymize
        self.decoder = Decoder(max_line_bytes)
        self.stats = ProduceStats()
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        await ensure_topics(self.settings)
        opts = self.settings.client_options()
        if self.settings.producer_max_batch_size:
            opts["max_batch_size"] = self.settings.producer_max_batch_size
        self._producer = AIOKafkaProducer(acks="all", **opts)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, raw: bytes, source: str, line: int) -> bool:
        """Validate and publish one event; False if it went to the dead-letter topic."""
        try:
            rec, _ = self.decoder.decode(raw)
        except Rejection as rej:
            await self.dead_letter(raw, rej.reason, rej.detail, source, line)
            return False
        if self.pseudonymize is not None:
            raw = pseudonymized(raw, rec, self.pseudonymize)
        etype = TYPE_OF[rec.__class__]
        topic = topic_for(etype, rec.channel, self.settings.topics)
        key = key_of(rec)  # the live worker routes by the same key (streams.routing)
        await self._producer.send(topic, raw, key=key, headers=[("cc-type", etype.encode())])
        self.stats.produced += 1
        self.stats.per_topic[topic] = self.stats.per_topic.get(topic, 0) + 1
        return True

    async def dead_letter(
        self, raw: bytes, reason: str, detail: str, source: str, line: int
    ) -> None:
        headers = [("cc-reason", reason.encode()), ("cc-detail", detail.encode()[:1000]),
                   ("cc-source", source.encode()), ("cc-line", str(line).encode())]  # fmt: skip
        await self._producer.send(self.settings.topics.dead_letter, raw[:1_000_000],
                                  headers=headers)  # fmt: skip
        self.stats.dead_lettered += 1
        self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1

    async def flush(self) -> None:
        await self._producer.flush()


async def produce_paths(
    paths: Sequence[str],
    settings: KafkaSettings,
    importer: Importer | None = None,
    max_line_bytes: int = 65_536,
    pseudonymize: Pseudonymizer | None = None,
) -> ProduceStats:
    """Publish event logs (JSON Lines, gzip, stdin, or an import format) to the topics."""
    producer = EventProducer(settings, max_line_bytes, pseudonymize)
    await producer.start()
    try:
        for path in paths:
            source = Source(path)
            if importer is None:
                stream, _ = source.open()
                try:
                    lines = iter_lines(stream, SourceStats(path), max_line_bytes)
                    for n, raw in enumerate(lines, 1):
                        if raw is None:
                            why = f"over {max_line_bytes} bytes"
                            await producer.dead_letter(b"", "oversized", why, path, n)
                        elif raw.strip():
                            await producer.send(raw, path, n)
                finally:
                    if stream is not sys.stdin.buffer:
                        stream.close()
            else:
                events = importer.events(source, SourceStats(path), ImportStats(importer.name),
                                         max_line_bytes)  # fmt: skip
                for n, item in events:
                    if isinstance(item, RowProblem):
                        await producer.dead_letter(b"", item.reason, item.detail, path, n)
                    else:
                        await producer.send(orjson.dumps(item), path, n)
        await producer.flush()
    finally:
        await producer.stop()
    return producer.stats


async def follow(
    path: Path, stop: asyncio.Event, poll: float = 0.2, from_start: bool = False
) -> AsyncIterator[bytes]:
    """Lines appended to a file, as ``tail -F`` sees them: survives truncation (starts again
    at the top) and rotation (finishes the old file, then reads the new one from its start)."""
    f = None
    inode = None
    buf = b""
    first = True
    while not stop.is_set():
        if f is None:
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed on rotation or at the end
            except FileNotFoundError:
                await asyncio.sleep(poll)
                continue
            inode = os.fstat(f.fileno()).st_ino
            if first and not from_start:
                f.seek(0, os.SEEK_END)
            first = False
        chunk = f.read(1 << 16)
        if chunk:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != inode:  # rotated: the old file is complete
            if buf:
                yield buf
            buf = b""
            f.close()
            f = None
        elif st.st_size < f.tell():  # truncated in place
            f.seek(0)
            buf = b""
        else:
            await asyncio.sleep(poll)
    if f is not None:
        f.close()


async def tail_queue_log(
    path: Path,
    settings: KafkaSettings,
    stop: asyncio.Event,
    from_start: bool = False,
    poll: float = 0.2,
    pseudonymize: Pseudonymizer | None = None,
) -> ProduceStats:
    """Convert a live Asterisk queue_log into events and publish them as lines arrive."""
    from streams.inputs.importers.queue_log import QueueLog

    producer = EventProducer(settings, pseudonymize=pseudonymize)
    await producer.start()
    convert = QueueLog().converter()
    stats = ImportStats("queue_log")
    n = 0
    try:
        async for raw in follow(path, stop, poll, from_start):
            n += 1
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                events = convert.line(text, stats)
            except ValueError as exc:
                await producer.dead_letter(raw, "malformed_record", str(exc), str(path), n)
                continue
            for ev in events:
                await producer.send(orjson.dumps(ev), str(path), n)
            await producer.flush()
    finally:
        await producer.stop()
    return producer.stats
