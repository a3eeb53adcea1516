"""Kafka topics, routing and producing.

Input topics (names configurable): ``calls`` (voice and video), ``chats`` (chat, e-mail, SMS,
social) and ``ivr`` (``ivr.*`` events), all keyed by ``case_id`` and created with the same
partition count, so the worker that owns partition *p* of each sees every event of a case.
Bad input goes to the dead-letter topic with its reason; alert events to the alerts topic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Topics(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    calls: str = "cc.calls"
    chats: str = "cc.chats"
    ivr: str = "cc.ivr"
    dead_letter: str = "cc.dead-letter"
    alerts: str = "cc.alerts"
    agents: str = Field(
        "cc.agents",
        description="Internal: agent facts of every input partition, keyed by agent, for the "
        "live agent states (same partition count as the inputs).",
    )

    def inputs(self) -> tuple[str, str, str]:
        return (self.calls, self.chats, self.ivr)


class KafkaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: Topics = Field(default_factory=Topics)
    partitions: int = Field(6, ge=1, description="Of every input topic (the same for all).")
    replication_factor: int = Field(1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    producer_max_batch_size: int | None = Field(
        None, description="Bytes per batch. Tansu (tests, demo) needs 16: one record a batch."
    )

    def client_options(self) -> dict[str, Any]:
        """Connection options for aiokafka clients."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            opts["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        return opts


CALL_CHANNELS = frozenset({"voice", "video"})


def topic_for(event_type: str, channel: str, topics: Topics) -> str:
    if event_type.startswith("ivr."):
        return topics.ivr
    return topics.calls if channel in CALL_CHANNELS else topics.chats


async def ensure_topics(settings: KafkaSettings, compacted: Sequence[str] = ()) -> None:
    """Create the topics that do not exist yet (input topics with the same partition count;
    ``compacted``: topics that keep the latest value per key, the workers' checkpoints)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**settings.client_options())
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        t = settings.topics
        wanted = [*t.inputs(), t.agents, t.dead_letter, t.alerts]
        new = [
            NewTopic(name, num_partitions=settings.partitions,
                     replication_factor=settings.replication_factor)
            for name in wanted if name not in existing
        ]  # fmt: skip
        new += [
            NewTopic(name, num_partitions=settings.partitions,
                     replication_factor=settings.replication_factor,
                     topic_configs={"cleanup.policy": "compact"})
            for name in compacted if name not in existing
        ]  # fmt: skip
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def read_topics(
    settings: KafkaSettings,
    topics: Sequence[str],
    poll_ms: int = 500,
    keep: Callable[[bytes], Any] | None = None,
    *,
    copies: bool = True,
) -> dict[tuple[str, int], list[tuple[int, Any]]]:
    """Every record ``(offset, value)`` of ``topics``, per topic-partition in offset order
    (``keep``: what to hold of a value, None to drop it, so memory holds only what is asked;
    the values are then what it returns).

    Read-only: partitions are assigned directly (no consumer group, no offset commits), read
    from their beginning up to the end offsets seen when the read starts, so a live cluster is
    not disturbed and records appended meanwhile are not waited for. ``copies`` False: without
    the copies of rerouted records (:data:`streams.routing.REROUTED_HEADER`), each record read
    where it first arrived."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.routing import REROUTED_HEADER

    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False,
                                **settings.client_options())  # fmt: skip
    try:
        await consumer.start()

        def partitions() -> list[TopicPartition]:
            return [TopicPartition(topic, p) for topic in topics
                    for p in sorted(consumer.partitions_for_topic(topic) or ())]  # fmt: skip

        tps = partitions()
        if not tps:
            await consumer.force_metadata_update()
            tps = partitions()
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        per: dict[tuple[str, int], list[tuple[int, Any]]] = {
            (tp.topic, tp.partition): [] for tp in sorted(tps)
        }
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=poll_ms)
            if not batch:
                break  # nothing more arrives: the end offsets were all read
            for tp, msgs in batch.items():
                for m in msgs:
                    if m.offset >= ends[tp]:
                        todo.discard(tp)
                        break
                    value = m.value or b""
                    if not copies and any(k == REROUTED_HEADER for k, _ in m.headers or ()):
                        kept = None
                    else:
                        kept = value if keep is None else keep(value)
                    if kept is not None:
                        per[tp.topic, tp.partition].append((m.offset, kept))
                    if m.offset + 1 >= ends[tp]:
                        todo.discard(tp)
    finally:
        await consumer.stop()
    return per


async def read_range(
    settings: KafkaSettings, start: float | None, end: float | None, poll_ms: int = 500
) -> list[bytes]:
    """The input topics' events with event time in ``[start, end)``, merged by event time.

    Read-only (:func:`read_topics`). Each topic-partition is in consumption order; the merge
    keeps that order and interleaves them by event time (as a replay of a live archive does:
    :func:`streams.inputs.lines.in_time_order`), so the engine sees what a worker owning all of
    them would.
    """
    from kpis.decode import event_meta
    from streams.inputs.lines import merge_timed, one_line, timed

    def keep(value: bytes) -> tuple[float, bytes] | None:
        line = one_line(value)
        ts = event_meta(line)[1]  # each record parsed once, here
        if ts is None or ((start is None or ts >= start) and (end is None or ts < end)):
            return timed(ts, line)
        return None

    per = await read_topics(settings, settings.topics.inputs(), poll_ms, keep, copies=False)
    streams = ([v for _, v in records] for _, records in sorted(per.items()))
    return list(merge_timed(streams))
