"""What a live worker does with the records it is given, apart from Kafka.

:class:`LiveRuntime` is the run loop's two entry points, :meth:`LiveRuntime.on_record` and
:meth:`LiveRuntime.tick`, over parts that each own one responsibility:

* :class:`streams.kafka.ownership.Ownership`: the partitions owned and their engines;
* :class:`streams.kafka.checkpoint.Checkpointer`: the commit protocol (archive on disk,
  checkpoint durable, then acknowledgements);
* :class:`streams.kafka.gate.ArchiveGate`: the event archive before every acknowledgement;
* :class:`streams.kafka.timekeeper.LiveClock`: the only thing, apart from records, that moves
  a partition's watermark;
* :class:`streams.kafka.leader.AlertLeader`: the alert path (intervals out, lease, evaluation,
  notifications once);
* :class:`streams.kafka.agentsend.AgentSender`: agent facts to the agents topic;
* :class:`streams.kafka.reroute.Forwarder`: records on the wrong partition to theirs;
* :class:`streams.kafka.health.BrokerHealth` and the stores' status: what /health says.

:mod:`streams.kafka.driver` connects it to Kafka (consumer group, the checkpoint topic, the
tick, web views); tests drive it directly with in-memory stores.

Invariant: a record's offset is acknowledged (so may be committed) only after a checkpoint
that covers it has been saved; a restarted or new owner restores that checkpoint and skips
what it covers. So each record changes the state exactly once, whatever crashes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

import orjson
from prometheus_client import CollectorRegistry

from alerts.rules import RulesConfig
from kpis.clock import EventClock, TimePolicy
from kpis.config import EngineConfig
from kpis.decode import REJECT_REASONS
from streams.agents import Outcome
from streams.audit.archive import LiveArchive
from streams.kafka.agentsend import AgentSender, Send
from streams.kafka.checkpoint import Ack, Checkpointer, CheckpointStore, Owned
from streams.kafka.gate import ArchiveGate
from streams.kafka.health import BrokerHealth
from streams.kafka.leader import AlertLeader, Notify
from streams.kafka.ownership import Ownership
from streams.kafka.pipeline import PipelineMetrics, StaffingCollector, StoreStatus
from streams.kafka.reroute import Forward, Forwarder
from streams.kafka.timekeeper import LiveClock
from streams.kafka.views import WorkerViews
from streams.partitioned import partition_doc
from streams.rejects import RejectWatch
from streams.sinks.alertstore import AlertStore, MemoryAlertStore
from streams.sinks.metrics import MetricsCollector, RecordStats
from streams.sinks.readmodel import KpiViewStore, MemoryKpiView

__all__ = ["Ack", "LiveOptions", "LiveRuntime", "Send"]


@dataclass(frozen=True)
class LiveOptions:
    """The settings of one live worker's runtime (from streams.kafka.app's WorkerSettings)."""

    inputs: tuple[str, ...] = ("log",)
    checkpoint_interval: float = 5.0
    idle_flush_seconds: float = 10.0
    worker_id: str = "worker"
    lease_seconds: float = 10.0
    archive_retention_seconds: float | None = None
    #: live agent states (streams.agents): each partition also runs the agents topic's
    #: partition of the same number (only with a ``send``)
    agents_topic: str | None = None
    tz: tzinfo = UTC  # of the staffing view's intervals (alerts.staffing)
    #: event time "now" from the wall clock (a simulated clock in the live demo)
    event_clock: EventClock = field(default_factory=EventClock)
    reject_alarm_share: float = 0.2
    reject_window_seconds: float = 60.0
    reject_alarm_min_records: int = 20
    #: agent pseudonym -> display name (streams.directory), for /api/agents and the wallboard
    agent_names: Mapping[str, str] = field(default_factory=dict)


class LiveRuntime:
    """The live worker's run loop over its parts; see the module docstring."""

    def __init__(
        self,
        config: EngineConfig,
        partitions: int,
        checkpoints: CheckpointStore,
        *,
        options: LiveOptions | None = None,
        registry: CollectorRegistry | None = None,
        read_model: KpiViewStore | None = None,
        alert_store: AlertStore | None = None,
        clock: Callable[[], float] = time.time,
        rules: RulesConfig | None = None,
        notify: Notify | None = None,
        archive: LiveArchive | None = None,
        send: Send | None = None,
        forward: Forward | None = None,
    ) -> None:
        """``clock``: the wall clock of checkpoints, retries and health (event time "now" is
        the options' ``event_clock``)."""
        o = options if options is not None else LiveOptions()
        self.config, self.partitions, self.options, self.clock = config, partitions, o, clock
        self.agents_topic = o.agents_topic if send is not None else None
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = PipelineMetrics.create(self.registry)
        self.read_model: KpiViewStore = read_model if read_model is not None else MemoryKpiView()
        self.view_status = StoreStatus("read model")
        self.gate = ArchiveGate(archive, o.archive_retention_seconds) if archive else None
        self.ownership = Ownership(
            config, partitions, checkpoints, inputs=o.inputs, rules=rules,
            agents_topic=self.agents_topic, checkpoint_interval=o.checkpoint_interval, clock=clock,
            route=forward is not None,
        )  # fmt: skip
        self.checkpointer = Checkpointer(
            checkpoints, o.worker_id, self.metrics, interval=o.checkpoint_interval,
            archive=self.gate, clock=clock,
        )  # fmt: skip
        self.time = LiveClock(
            TimePolicy.of(config), o.inputs, idle_flush_seconds=o.idle_flush_seconds,
            event_clock=o.event_clock, wall=clock,
        )  # fmt: skip
        store = alert_store if alert_store is not None else MemoryAlertStore()
        self.leader = None if rules is None else AlertLeader(
            rules, store, config, partitions, self.metrics, worker_id=o.worker_id,
            lease_seconds=o.lease_seconds, live_agents=self.agents_topic is not None,
            notify=notify, tz=o.tz,
        )  # fmt: skip
        self.sender = AgentSender(send) if send is not None else None
        self.forwarder = Forwarder(forward) if forward is not None else None
        self.last_rerouted = -float("inf")  # wall clock of the last record rerouted
        self.rejects = RejectWatch(o.reject_alarm_share, o.reject_window_seconds,
                                   o.reject_alarm_min_records)  # fmt: skip
        self.broker = BrokerHealth(clock)
        self.records = 0  # records handled since start, redeliveries included
        self.last_docs: dict[int, bytes] = {}
        self.record_stats = RecordStats()
        self.views = WorkerViews(self)
        self._register()

    def _register(self) -> None:
        """The collectors of the exported series (names refused twice at registration)."""
        for reason in REJECT_REASONS:  # every reason has a series from the start (0)
            self.metrics.rejected.labels(reason)
        self.registry.register(MetricsCollector(parts=self.ownership.parts))
        self.registry.register(StaffingCollector(self.views.staffing))
        self.registry.register(self.record_stats)
        # read at each scrape: a request to a broker that is gone may hang rather than fail
        self.metrics.broker_up.set_function(
            lambda: 0.0 if self.broker.down(bool(self.owned)) else 1.0
        )

    @property
    def owned(self) -> dict[int, Owned]:
        return self.ownership.owned

    @property
    def agent_names(self) -> Mapping[str, str]:
        """The agent directory's display names (streams.directory)."""
        return self.options.agent_names

    @property
    def zone(self) -> str:
        """The centre's time zone (of staffing intervals, "today", the wallboard's clock)."""
        return str(self.options.tz)

    @property
    def worker_id(self) -> str:
        return self.options.worker_id

    @property
    def archive(self) -> LiveArchive | None:
        return self.gate.archive if self.gate is not None else None

    # --- the run loop: records ----------------------------------------------------------------

    def on_record(
        self, topic: str, partition: int, offset: int, value: bytes, ack: Ack,
        append_ms: int | None = None,
    ) -> Outcome:  # fmt: skip
        """Process one input record. ``ack`` is called once a checkpoint covers it."""
        now = self.clock()
        self.time.record(now)
        self.records += 1
        # the agents topic is derived from the inputs (their facts): not archived
        gate = self.gate if topic != self.agents_topic else None
        if gate is not None:
            first = gate.held(topic, partition, offset, now)
            if first is not None:  # the caller seeks back to the first record held back
                self.metrics.gaps.inc()
                return Outcome("gap", expected=first)
        owned = self.partition(partition)
        event_now = self.time.event_now(now)
        out = owned.pe.process(topic, offset, value, now=event_now)
        if out.status == "gap":
            self.metrics.gaps.inc()
            return out  # not acknowledged: read again after the caller's seek
        if gate is not None:
            try:
                gate.append(topic, partition, offset, value,
                            owned.pe.last_ts if out.status != "skipped" else None)  # fmt: skip
            except OSError as exc:
                return self._archive_failed(topic, partition, exc, now)
        if out.status == "skipped":
            ack()  # covered by the restored checkpoint already
            return out
        owned.pending.append(ack)
        owned.dirty = True
        self._account(topic, out, owned, now, event_now, append_ms)
        if self.checkpointer.due(owned, now):
            self.checkpoint(partition)
        return out

    def _account(self, topic: str, out: Outcome, owned: Owned, now: float, event_now: float,
                 append_ms: int | None) -> None:  # fmt: skip
        """What one processed record says of the input: real time, rejects, rates, latency."""
        is_input = topic != self.agents_topic
        if out.status == "accepted" and is_input:
            self.time.accepted(event_now, owned)
            self.rejects.observe(now, None)
        elif out.status == "rejected":
            self.metrics.rejected.labels(out.reason).inc()
            if is_input:
                self.rejects.observe(now, out.reason, out.detail)
        elif out.status == "rerouted":
            self.metrics.rerouted.labels(topic).inc()
            self.last_rerouted = now
            self.rejects.observe(now, None)
        self.record_stats.count(topic, out.event_type or "invalid")
        if append_ms is not None and append_ms > 0:
            self.record_stats.observe_latency(max(0.0, now - append_ms / 1000.0))

    def _archive_failed(self, topic: str, partition: int, exc: OSError, now: float) -> Outcome:
        """The archive cannot take a record the engine has just processed: the partition goes
        back to its last checkpoint (its unacknowledged records are consumed again and archived
        then); see streams.kafka.gate."""
        assert self.gate is not None
        self.owned.pop(partition, None)
        self.gate.failed(topic, partition, exc, now)
        expected = self.partition(partition).pe.offsets.get(topic, 0)
        self.metrics.gaps.inc()
        return Outcome("gap", expected=expected)

    # --- partitions ---------------------------------------------------------------------------

    def partition(self, p: int) -> Owned:
        """The engine of partition ``p``, restored from its checkpoint on first use."""
        owned, fresh = self.ownership.restore(p)
        if fresh:
            self.time.restored()
            self.metrics.owned.set(len(self.owned))
        return owned

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions another worker takes over (streams.kafka.ownership)."""
        for p in partitions:
            self.ownership.drop(p)
            if self.gate is not None:
                self.gate.release(p)
        self.metrics.owned.set(len(self.owned))

    def checkpoint(self, partition: int) -> None:
        owned = self.owned.get(partition)
        if owned is not None:
            self.checkpointer.commit(owned, lambda: self.owned.get(partition))

    async def publish_agents(self, marks: bool = False) -> None:
        if self.sender is not None:
            await self.sender.publish([o.pe for o in self.owned.values()], marks)
        if self.forwarder is not None:
            await self.forwarder.publish([o.pe for o in self.owned.values() if o.pe.rerouted])

    # --- the run loop: about once a second ----------------------------------------------------

    def broker_ends(
        self, ends: Mapping[tuple[str, int], int], assigned: Iterable[tuple[str, int]]
    ) -> None:
        """The broker's end offsets of the assigned topic-partitions: lag, lost logs, and which
        partitions have read everything (a topic-partition without an end: not caught up)."""
        caught_up: dict[int, dict[str, bool]] = {}
        for topic, p in assigned:
            end = ends.get((topic, p))
            done = False
            if end is not None:
                self.report_lag(topic, p, end)
                owned = self.owned.get(p)
                done = (owned.pe.offsets.get(topic, 0) if owned is not None else 0) >= end
            caught_up.setdefault(p, {})[topic] = done
        for p, topics in caught_up.items():
            self.set_caught_up(p, topics)

    def set_caught_up(self, partition: int, topics: Mapping[str, bool]) -> None:
        owned = self.owned.get(partition)
        if owned is not None:
            self.time.caught_up(owned, topics)

    async def tick(self) -> None:
        """Learn the centre's clock from the KPI view, move quiet partitions' time, send agent
        facts, publish the KPI view, run the alert path, flush the archive, checkpoint."""
        now = self.clock()
        self.metrics.rejected_share.set(round(self.rejects.share(now), 6))
        others = await self._others()
        centre = self._centre(others)
        if centre is not None:
            self.metrics.event_time_lag.set(max(0.0, self.time.event_now(now) - centre))
            self.time.move(self.owned.values(), centre, now)
        await self.publish_agents(marks=True)  # what the time moved above released
        await self._publish(others)
        if self.leader is not None:
            await self.leader.step(self.owned)
        up = self.view_status.ok and (self.leader is None or self.leader.status.ok is not False)
        self.metrics.redis_up.set(1 if up else 0)
        if self.gate is not None:
            self.gate.tick(now)
        for p, o in list(self.owned.items()):
            if self.checkpointer.due(o, now):
                self.checkpoint(p)

    async def _others(self) -> dict[int, bytes]:
        """The KPI documents of the partitions other workers own."""
        try:
            fetched = await self.read_model.fetch(self.partitions)
        except Exception as exc:  # any store failure: keep processing
            self.view_status.failed(exc)
            return {}
        return {p: d for p, d in fetched.items() if p not in self.owned}

    def _centre(self, others: Mapping[int, bytes]) -> float | None:
        """The centre's latest event time: every partition's, this worker's from memory."""
        latest = [t for t in (_doc_max(d) for d in others.values()) if t is not None]
        latest += [o.pe.max_ts for o in self.owned.values() if o.pe.max_ts > float("-inf")]
        return max(latest) if latest else None

    async def _publish(self, others: dict[int, bytes]) -> None:
        docs = {p: orjson.dumps(partition_doc(o.pe)) for p, o in self.owned.items()}
        try:
            await self.read_model.publish(docs)
            self.view_status.answered()
        except Exception as exc:  # any store failure: keep processing
            self.view_status.failed(exc)
        self.last_docs = {**others, **docs}  # this worker's partitions: its own, freshest

    def close(self) -> None:
        if self.gate is not None:
            self.gate.close()

    # --- broker -------------------------------------------------------------------------------

    def report_lag(self, topic: str, partition: int, highwater: int) -> None:
        """The broker's end offset of a topic-partition: the lag, and a log found to have lost
        records (streams.kafka.ownership.Ownership.log_end; said on /health for
        LOG_LOST_HOLD_SECONDS)."""
        done, why = self.ownership.log_end(topic, partition, highwater)
        if why is not None:
            self.broker.lost(topic, partition, why)
            self.metrics.log_lost.labels(topic, str(partition)).inc()
        self.metrics.consumer_lag.labels(topic, str(partition)).set(max(0, highwater - done))


def _doc_max(raw: bytes) -> float | None:
    v = orjson.loads(raw).get("max_ts")
    return float(v) if v is not None else None
