"""The unit of live computation: one engine per input partition, checkpointed with its offsets.

Input topics are keyed by ``case_id`` and share one partition count, so partition *p* of every
input topic holds every event of the cases that hash to *p*, and whichever worker owns *p* sees
all of them. Each partition gets its own :class:`kpis.engine.Engine` and
:class:`streams.sinks.metrics.MetricsSink`; the KPI totals of a centre are the sums over partitions.

Exactness across crashes (at-least-once delivery, nothing counted twice) rests on one
invariant: **a checkpoint holds a partition's whole state together with the input offsets that
state covers**, and input offsets are committed to Kafka only after a checkpoint covering them
is durable. A worker that takes a partition over restores the latest checkpoint and skips
records below its offsets; records after it are processed once, because they are not in the
restored state. Nothing here touches Kafka or Faust: the worker (:mod:`streams.kafka.app`) moves the
bytes, and :func:`replay_partitioned` drives the same class from a log, which is how a replay
reproduces exactly what the live workers computed.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from alerts.rules import RulesConfig
from alerts.stage import IntervalRecorder, passed, series_of
from kpis.config import EngineConfig
from kpis.decode import Decoder, Rejection
from kpis.engine import Engine
from kpis.interfaces import Labels
from kpis.wire import TYPE_OF, Rec
from streams.agents import AgentPartition, Outcome, Outgoing, encode_fact, encode_mark
from streams.assembly import assemble
from streams.routing import key_of, partition_of
from streams.sinks.metrics import MetricsSink
from streams.sinks.readmodel import DOC_VERSION, finite

CHECKPOINT_VERSION = 1
UNSEEN_TOPIC_GRACE = 10_000
_INF = float("inf")


_ACCEPTED = {t: Outcome("accepted", event_type=t) for t in TYPE_OF.values()}
KEY_LIMIT = 1024
ROUTE_CACHE = 65_536
"""Keys whose partition a live engine remembers (a dict lookup instead of a murmur2 hash)."""


@dataclass(frozen=True)
class Rerouted:
    """A record that arrived on the wrong partition, to be sent to ``partition`` of ``topic``
    keyed by its case; ``source``: "partition/offset" where it arrived."""

    topic: str
    partition: int
    key: bytes
    value: bytes
    source: str


def dead_letter_record(
    key: bytes | None, value: bytes, out: Outcome, max_bytes: int
) -> tuple[bytes | None, bytes, dict[str, bytes]]:
    """The dead letter of a rejected record: key, value and headers (reason, detail). A value
    over ``max_bytes`` (or a key over 1 KiB) is cut, and the headers keep its whole size and
    SHA-256, so the dead letter always fits the broker's limit and still identifies the input."""
    headers = {"cc-reason": out.reason.encode(), "cc-detail": out.detail.encode()[:1000]}
    if len(value) > max_bytes:
        headers["cc-size"] = str(len(value)).encode()
        headers["cc-sha256"] = hashlib.sha256(value).hexdigest().encode()
        headers["cc-truncated"] = b"1"
        value = value[:max_bytes]
    if key is not None and len(key) > KEY_LIMIT:
        headers["cc-key-sha256"] = hashlib.sha256(key).hexdigest().encode()
        key = key[:KEY_LIMIT]
    return key, value, headers


SKIPPED = Outcome("skipped")
# msgspec writes the engine's dataclasses and records as they are (see Engine.snapshot)
_ENCODE = msgspec.json.Encoder().encode


@dataclass
class PartitionEngine:
    """One partition's engine, the metrics it feeds, and the input offsets it has covered."""

    partition: int
    config: EngineConfig
    engine: Engine = field(init=False)
    metrics: MetricsSink = field(default_factory=MetricsSink)
    # topic -> next offset to process; everything below is in this state
    offsets: dict[str, int] = field(default_factory=dict)
    decoder: Decoder = field(default_factory=Decoder)
    processed: int = 0
    # Live: the input topics feeding this partition. The watermark then follows the slowest
    # of them that still has records to read (see streams.kafka.worker); None: events move it.
    inputs: tuple[str, ...] | None = None
    topic_max: dict[str, float] = field(default_factory=dict)
    idle: set[str] = field(default_factory=set)
    _low: float = -_INF  # the slowest input topic's time when last computed
    # Alert rules: this partition's half of their evaluation (alerts.stage); None: no alerts
    rules: RulesConfig | None = None
    recorder: IntervalRecorder | None = field(init=False, default=None)
    # event time of the last record processed, if it decoded (the archive files it by time)
    last_ts: float | None = field(init=False, default=None)
    # Live agent states (streams.agents): the agents topic, whose partition ``partition`` this
    # engine also runs, and how many input partitions publish facts to it. None: no agents.
    agents_topic: str | None = None
    sources: int = 1
    agents: AgentPartition | None = field(init=False, default=None)
    # facts of this partition's contacts for the agents topic, not yet confirmed by the broker
    # (in the checkpoint: sent again after a restore), and the last mark sent
    outbox: list[Outgoing] = field(init=False, default_factory=list)
    inflight: list[Outgoing] = field(init=False, default_factory=list)
    marked: tuple[float, bool] | None = field(init=False, default=None)
    # Live and audit: the input topics' partition count. A record whose key (its case) hashes
    # to another partition is not ingested here but kept in ``rerouted`` (in the checkpoint)
    # until the broker has its copy on the partition it belongs to; there it meets the rest of
    # its case, and a repeat of the copy is a duplicate. 0: not checked (a replay routes by
    # key itself).
    route: int = 0
    rerouted: list[Rerouted] = field(init=False, default_factory=list)
    _routes: dict[bytes, int] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Results do not depend on the batch. Replay: batch=1, so the metrics follow each
        # event. Live: the watermark moves only in advance(), which drains what it passed.
        if self.rules is not None:
            self.recorder = IntervalRecorder(series_of(self.rules), self.partition)
        if self.agents_topic is not None:
            self.agents = AgentPartition(self.partition, self.sources, self.config, self.rules)
        facts = self._fact if self.agents is not None else None
        live = self.inputs is not None
        self.engine = assemble(
            lambda sink: Engine(self.config, sink, batch=1 << 30 if live else 1,
                                auto_watermark=not live, agent_facts=facts, repeats=False),
            self.metrics, self.recorder, queues=True,
            every=self.rules.evaluation_interval_seconds if self.rules is not None else 0.0,
        )  # fmt: skip

    def _fact(self, rec: Rec, ts: float) -> None:
        self.outbox.append(encode_fact(self.partition, rec, ts, self.sources))

    def take_outbox(self, mark: bool = True) -> list[Outgoing]:
        """The facts to send now, then (``mark``) a mark to every agents partition if this
        partition's time, or whether it holds anything back, changed since the last one. They
        stay unconfirmed (in checkpoints) until :meth:`confirm`."""
        out, self.outbox = self.outbox, []
        self.inflight.extend(out)
        state = (self.engine.watermark, self.engine.core.holding() == 0)
        if mark and state[0] > -_INF and state != self.marked:
            self.marked = state
            value = encode_mark(self.partition, *state)
            key = b"mark:%d" % self.partition
            out = [*out, *((a, key, value) for a in range(self.sources))]
        return out

    def confirm(self, sent: list[Outgoing]) -> None:
        """The broker has ``sent`` (as :meth:`take_outbox` gave them)."""
        done = set(map(id, sent))
        self.inflight = [f for f in self.inflight if id(f) not in done]

    def unsent(self, sent: list[Outgoing]) -> None:
        """Sending failed: ``sent`` goes out again, first (and the mark with it)."""
        done = set(map(id, sent))
        self.outbox[:0] = [f for f in self.inflight if id(f) in done]
        self.inflight = [f for f in self.inflight if id(f) not in done]
        self.marked = None

    def alert_progress(self) -> float:
        """The last evaluation tick this partition has passed (see alerts.stage.passed)."""
        assert self.rules is not None
        return passed(self.engine.watermark, self.rules.evaluation_interval_seconds)

    def process(
        self,
        topic: str,
        offset: int,
        value: bytes,
        decoded: tuple[Rec, float] | Rejection | None = None,
        *,
        now: float | None = None,
    ) -> Outcome:
        """Decode and ingest one record of ``topic`` at ``offset``.

        Records below the checkpointed offset are skipped (they are in the state already: a
        redelivery after a restart or a rebalance); a record past the next one due is not
        processed (``gap``: offsets of a topic partition are consecutive). A rejected record
        still advances the offset; the caller dead-letters it with the reason. ``decoded``:
        what :meth:`kpis.decode.Decoder.decode` gave for ``value``, if the caller has it.
        ``now``: the wall clock of a live worker; an event too far ahead of it is rejected
        (``out_of_range``) before it can move this partition's time.
        """
        expected = self.offsets.get(topic)
        if expected is not None:
            if offset < expected:
                return SKIPPED
            if offset > expected:
                # A record ahead of the next one due (delivered from before a rebalance, past
                # the checkpoint this engine was restored from): processing it would skip the
                # ones between. The caller seeks back to ``expected``.
                return Outcome("gap", expected=expected)
        self.offsets[topic] = offset + 1
        if topic == self.agents_topic and self.agents is not None:
            self.last_ts = None
            return self.agents.process(value)
        self.processed += 1
        if decoded is None:
            try:
                decoded = self.decoder.decode(value)
            except Rejection as rej:
                decoded = rej
        if isinstance(decoded, Rejection):
            self.last_ts = None
            return Outcome("rejected", decoded.reason, decoded.detail)
        rec, ts = decoded
        self.last_ts = ts
        etype = TYPE_OF[rec.__class__]
        if self.route:
            key = key_of(rec)
            p = self._routes.get(key)
            if p is None:
                if len(self._routes) >= ROUTE_CACHE:  # bounded: cases come and go
                    self._routes.clear()
                p = self._routes[key] = partition_of(key, self.route)
            if p != self.partition:
                self.rerouted.append(Rerouted(topic, p, key, value, f"{self.partition}/{offset}"))
                return Outcome("rerouted", "misrouted", f"to partition {p}", etype, p)
        if now is not None:
            ahead = self.engine.policy.ahead_of_clock(ts, now)
            if ahead is not None:
                return Outcome("rejected", "out_of_range", ahead, etype)
        try:
            self.engine.ingest(rec, ts)
        except Rejection as rej:
            return Outcome("rejected", rej.reason, rej.detail, etype)
        if self.inputs is not None:
            prev = self.topic_max.get(topic, -_INF)
            if ts > prev:
                self.topic_max[topic] = ts
                # The watermark follows the slowest topic: a topic ahead of it moving further
                # cannot move it. _low is never above the true minimum (topic times only grow;
                # set_idle and the grace below recompute it), so this skips only no-ops.
                if prev <= self._low:
                    self._advance()
            if self.processed == UNSEEN_TOPIC_GRACE:
                self._advance()  # unseen idle topics stop holding the watermark from here
        return _ACCEPTED[etype]

    def _advance(self) -> None:
        wm = self.input_watermark()
        self._low = wm + self.engine.policy.lateness
        self.engine.advance(wm)

    def input_watermark(self) -> float:
        """The slowest input's latest event time, minus the allowed lateness.

        Whether a topic is idle is known only as of the last look at the broker, and a record
        appended since can be older than what the other topics reached meanwhile; so a topic
        holds the watermark at its latest event time, or, if it has delivered nothing yet,
        holds it back entirely. (On real-time input the wall clock moves the watermark past a
        quiet topic; see streams.kafka.worker.) Only a topic that has never delivered a record
        and is
        empty at the broker (``idle``) stops holding it back once this partition has read
        :data:`UNSEEN_TOPIC_GRACE` records from the others, so that a topic nobody writes to
        (a centre without chats) cannot make the reorder buffer grow without bound.
        """
        assert self.inputs is not None
        patient = self.processed < UNSEEN_TOPIC_GRACE
        return self.engine.policy.slowest(
            self.topic_max, self.inputs, waived=() if patient else self.idle
        )

    def set_idle(self, topic: str, idle: bool) -> None:
        """Whether ``topic``'s records of this partition have all been read (the worker knows
        it from the high-water mark); moves the watermark accordingly."""
        if idle:
            self.idle.add(topic)
        else:
            self.idle.discard(topic)
        if self.inputs is not None:
            self._advance()

    @property
    def max_ts(self) -> float:
        return self.engine.max_ts

    def flush(self, event_time: float | None = None) -> None:
        """The input has gone quiet: process everything buffered and every timer due up to
        ``event_time`` (the latest event time over all partitions; default: this one's), as a
        replay does at the end of its input."""
        self.engine.flush()
        if event_time is not None and event_time > self.engine.watermark:
            self.engine.advance(event_time)

    def waiting_now(self) -> dict[Labels, tuple[int, float]]:
        return self.engine.waiting_now()

    # --- checkpoints ----------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The whole state and the offsets it covers, as one compressed blob."""
        doc = {
            "version": CHECKPOINT_VERSION,
            "partition": self.partition,
            "offsets": self.offsets,
            "processed": self.processed,
            "topic_max": self.topic_max,
            "engine": self.engine.snapshot(objects=True),
            "metrics": self.metrics.snapshot(),
            "alerts": self.recorder.snapshot() if self.recorder is not None else None,
            "agents": self.agents.snapshot() if self.agents is not None else None,
            "outbox": [[a, k.decode(), v.decode()] for a, k, v in [*self.inflight, *self.outbox]],
            # decoded records: valid UTF-8
            "rerouted": [
                [r.topic, r.partition, r.key.decode(), r.value.decode(), r.source]
                for r in self.rerouted
            ],
        }
        return zlib.compress(_ENCODE(doc), 1)

    @classmethod
    def from_checkpoint(
        cls,
        partition: int,
        config: EngineConfig,
        blob: bytes | None,
        inputs: tuple[str, ...] | None = None,
        rules: RulesConfig | None = None,
        agents_topic: str | None = None,
        sources: int = 1,
        route: int = 0,
    ) -> PartitionEngine:
        """A partition's engine restored from its latest checkpoint (fresh without one)."""
        pe = cls(partition, config, inputs=inputs, rules=rules, agents_topic=agents_topic,
                 sources=sources, route=route)  # fmt: skip
        if blob is None:
            return pe
        doc = orjson.loads(zlib.decompress(blob))
        if doc.get("version") != CHECKPOINT_VERSION or doc.get("partition") != partition:
            raise ValueError(
                f"checkpoint of partition {doc.get('partition')!r}, version "
                f"{doc.get('version')!r}: expected partition {partition}, "
                f"version {CHECKPOINT_VERSION}"
            )
        pe.offsets = {str(k): int(v) for k, v in doc["offsets"].items()}
        pe.processed = int(doc["processed"])
        pe.topic_max = {str(k): float(v) for k, v in doc.get("topic_max", {}).items()}
        pe.engine.restore(doc["engine"])
        pe.metrics.restore(doc["metrics"])
        if pe.recorder is not None and doc.get("alerts") is not None:
            pe.recorder.restore(doc["alerts"])
        if pe.agents is not None and doc.get("agents") is not None:
            pe.agents.restore(doc["agents"])
        if pe.agents is not None:
            pe.outbox = [(int(a), k.encode(), v.encode()) for a, k, v in doc.get("outbox", [])]
        pe.rerouted = [Rerouted(str(t), int(p), k.encode(), v.encode(), str(src))
                       for t, p, k, v, src in doc.get("rerouted", [])]  # fmt: skip
        return pe


def partition_doc(pe: PartitionEngine) -> dict[str, Any]:
    """The published state of one partition (plain JSON): what the read model
    (:func:`streams.sinks.readmodel.kpi_view`) and ``audit reconcile`` read."""
    m = pe.metrics
    return {
        "version": DOC_VERSION,
        "partition": pe.partition,
        "watermark": finite(pe.engine.watermark),
        "max_ts": finite(pe.engine.max_ts),
        # the input offsets this state covers (audit reconcile replays the archive up to them)
        "offsets": dict(sorted(pe.offsets.items())),
        "counters": [[n, list(lb), v] for (n, lb), v in sorted(m.counters.items())],
        "histograms": [
            [n, list(lb), sum(h[:-1]), h[-1]] for (n, lb), h in sorted(m.histograms.items())
        ],
        "waiting": [[list(lb), n, age] for lb, (n, age) in sorted(pe.waiting_now().items())],
        "handling": [
            [list(lb), n, max(0.0, age)]
            for lb, (n, age) in sorted(pe.engine.handling_now().items())
        ],
        "provisional": [[list(lb), *v] for lb, v in sorted(pe.engine.provisional().items())],
        "agents": pe.agents.doc() if pe.agents is not None else None,
    }


def alert_doc(pe: PartitionEngine) -> dict[str, Any] | None:
    """What a partition publishes on the alert path (streams.sinks.alertstore): the intervals
    its recorders closed that the centre's stage has not evaluated yet, and how far the
    partition has passed (alerts.stage), for the input partition and its agents partition.
    None without rules."""
    if pe.recorder is None:
        return None
    agents = pe.agents
    return {
        "passed": finite(pe.alert_progress()),
        "intervals": [i.frozen() for i in pe.recorder.closed],
        "agents": None
        if agents is None or agents.recorder is None
        else {
            "passed": finite(agents.alert_progress()),
            "intervals": [i.frozen() for i in agents.recorder.closed],
        },
    }


# --- chunking: a checkpoint can exceed one Kafka message (1 MB by default) --------------------

CHUNK_BYTES = 512 * 1024


def split(blob: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [blob[i : i + size] for i in range(0, len(blob), size)] or [b""]


@dataclass(frozen=True)
class Head:
    """The record that makes a checkpoint current. Written after all its chunks: a reader that
    finds a head finds every chunk it names (same changelog partition, so in order)."""

    partition: int
    generation: str
    chunks: int
    offsets: dict[str, int]

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Head:
        d = orjson.loads(raw)
        return cls(int(d["partition"]), str(d["generation"]), int(d["chunks"]),
                   {str(k): int(v) for k, v in d["offsets"].items()})  # fmt: skip


def head_key(partition: int) -> str:
    return f"{partition}/head"


def chunk_key(partition: int, generation: str, i: int) -> str:
    """The key of chunk ``i`` of a checkpoint generation (its head names the generation)."""
    return f"{partition}/{generation}/{i}"


# --- replay with the live system's partitioning -----------------------------------------------


AGENTS_TOPIC = "agents"


def route_agents(engines: Mapping[int, PartitionEngine], topic: str = AGENTS_TOPIC) -> int:
    """Deliver every partition's agent facts and marks to the agents partitions, as the agents
    topic does (in order per source); returns how many records moved."""
    n = 0
    for pe in engines.values():
        out = pe.take_outbox()
        for a, _, value in out:
            target = engines[a]
            target.process(topic, target.offsets.get(topic, 0), value)
        pe.confirm(out)
        n += len(out)
    return n


def replay_partitioned(
    lines: Iterable[bytes],
    partitions: int,
    config: EngineConfig,
    topic: str = "log",
    rules: RulesConfig | None = None,
    *,
    agents: bool = False,
) -> dict[int, PartitionEngine]:
    """Run a log through per-partition engines as the live workers would, each flushed at the
    end of its input (as a live worker does when its input goes quiet).

    Records are routed by the same key and partitioner as the producer; a record that does not
    decode goes to partition 0 (the live path dead-letters it wherever it was). At the end every
    partition is flushed to the latest event time of all, as quiet live workers are.
    """
    decoder = Decoder()
    engines = {p: PartitionEngine(p, config, rules=rules) for p in range(partitions)}
    offsets = dict.fromkeys(range(partitions), 0)
    for raw in lines:
        if not raw.strip():
            continue
        decoded: tuple[Rec, float] | Rejection
        try:
            decoded = decoder.decode(raw)
            p = partition_of(key_of(decoded[0]), partitions)
        except Rejection as rej:
            decoded, p = rej, 0
        engines[p].process(topic, offsets[p], raw, decoded)
        offsets[p] += 1
        if agents:
            route_agents(engines)
    latest = max(pe.max_ts for pe in engines.values())
    for pe in engines.values():
        pe.flush(latest)
    if agents:
        route_agents(engines)
    return engines


def merged(sinks: Iterable[MetricsSink]) -> MetricsSink:
    """The centre's totals: counters and histograms summed over partitions."""
    out = MetricsSink()
    for s in sinks:
        for k, v in s.counters.items():
            out.counters[k] = out.counters.get(k, 0.0) + v
        for k, h in s.histograms.items():
            cur = out.histograms.get(k)
            out.histograms[k] = (
                list(h) if cur is None else [a + b for a, b in zip(cur, h, strict=True)]
            )
    return out
