"""Live agent states: the agents' state machine fed from every partition, keyed by agent.

An agent works on contacts of every input partition (partitions split contacts by case), so no
partition's engine can keep an agent's state. Each partition's engine resolves the *agent facts*
of its contacts instead (:class:`kpis.rules.agents.AgentFacts`: a login, a pause, a connect, the
end of a contact or of its after-contact work, with agent, tenant and queue filled in) and the
worker publishes them to the agents topic, keyed by agent, so partition *a* of that topic holds
every fact of the agents that hash to *a*. :class:`AgentPartition` runs
:class:`kpis.engine.AgentEngine` on it.

Time. Facts from different source partitions arrive interleaved, each source at its own pace.
Besides its facts, every source partition publishes *marks* to every agents partition: its
watermark, and whether it had nothing buffered (flushed). A fact is released at or after its
source's watermark passes it, and the mark follows the facts in the same topic partition, so
once every source has marked past ``W``, every fact before ``W`` has arrived. The agent engine's
watermark is therefore the lowest source mark, and it processes facts in the core's (time,
type, event id) order: the order a replay's single engine gives the same facts, hence the same
states, time in state and staffing as the replay.

Exactness across crashes: facts not yet confirmed by the broker are part of the source
partition's checkpoint (its outbox) and are sent again after a restore; a fact that arrives
twice is recognized by the agent engine's dedupe and counted as ``agent.repeat`` (an expected
resend, not a dead letter).
The agents topic's offsets are checkpointed with the agent engine's state, like the inputs'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from alerts.rules import RulesConfig
from alerts.stage import IntervalRecorder, passed, series_of
from kpis.catalogue import AGENT, ALL, names, ratio_value, ratio_values
from kpis.config import EngineConfig
from kpis.decode import Rejection
from kpis.engine import AgentEngine
from kpis.rules.agents import STATES
from kpis.wire import TYPE_OF, AnyRec, Rec
from streams.assembly import assemble
from streams.routing import partition_of
from streams.sinks.metrics import MetricsSink
from streams.sinks.readmodel import finite

_INF = math.inf


class Envelope(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One record of the agents topic: a fact (``ts``, ``fact``) or a mark (``wm``)."""

    src: int
    wm: float | None = None
    flushed: bool = False
    ts: float | None = None
    fact: AnyRec | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Envelope).decode

Outgoing = tuple[int, bytes, bytes]
"""(agents partition, key, value): one record for the agents topic."""


def fact_key(rec: Rec) -> bytes:
    return f"{rec.tenant or '-'}\x1f{rec.agent_id}".encode()


def encode_fact(src: int, rec: Rec, ts: float, partitions: int) -> Outgoing:
    key = fact_key(rec)
    return partition_of(key, partitions), key, _encode(Envelope(src, ts=ts, fact=rec))  # type: ignore[arg-type]


def encode_mark(src: int, watermark: float, flushed: bool) -> bytes:
    return _encode(Envelope(src, wm=watermark, flushed=flushed))


@dataclass(frozen=True)
class Outcome:
    """What became of one input record (of an input topic or of the agents topic)."""

    # "accepted", "rejected", "skipped" (covered by the checkpoint), "gap", or "rerouted" (on
    # the wrong partition: forwarded to partition ``expected``)
    status: str
    reason: str = ""
    detail: str = ""
    event_type: str = ""
    expected: int = -1  # for a gap: the offset to read from; rerouted: the partition


_FACT = Outcome("accepted", event_type="agent.fact")
_MARK = Outcome("accepted", event_type="agent.mark")
_REPEAT = Outcome("accepted", event_type="agent.repeat")


@dataclass
class AgentPartition:
    """Partition ``partition`` of the agents topic: its agent engine, the metrics it feeds and
    the marks of the ``sources`` input partitions."""

    partition: int
    sources: int
    config: EngineConfig
    rules: RulesConfig | None = None
    engine: AgentEngine = field(init=False)
    metrics: MetricsSink = field(default_factory=MetricsSink)
    marks: dict[int, float] = field(default_factory=dict)
    flushed: dict[int, bool] = field(default_factory=dict)
    recorder: IntervalRecorder | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.rules is not None:
            # the alert stage's partitions: input partitions 0..n-1, agents partitions n..2n-1
            self.recorder = IntervalRecorder(series_of(self.rules), self.sources + self.partition)
        config = self.config
        self.engine = assemble(
            lambda sink: AgentEngine(config, sink),
            self.metrics,
            self.recorder,
            agents=True,
            every=self.rules.evaluation_interval_seconds if self.rules is not None else 0.0,
        )

    def process(self, value: bytes) -> Outcome:
        """One record of the agents topic; anything that is not a fact or a mark of a known
        source is rejected with the reason (the worker dead-letters it)."""
        try:
            env = _decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Outcome("rejected", "malformed_record", f"not an agent fact: {exc}"[:300])
        if not 0 <= env.src < self.sources:
            return Outcome("rejected", "schema", f"source partition {env.src} unknown")
        if env.fact is not None:
            ts = env.ts
            if ts is None or not math.isfinite(ts) or env.fact.agent_id is None:
                return Outcome("rejected", "schema", "a fact needs ts and an agent")
            try:
                self.engine.ingest(env.fact, ts)
            except Rejection as rej:
                if rej.reason == "duplicate":
                    # a fact sent again by a partition restored from its checkpoint: expected,
                    # counted (cc_events_consumed_total{type="agent.repeat"}), not a dead letter
                    return _REPEAT
                return Outcome("rejected", rej.reason, rej.detail, TYPE_OF[type(env.fact)])
            return _FACT
        if env.wm is None or math.isnan(env.wm):
            return Outcome("rejected", "schema", "neither a fact nor a mark")
        if env.wm > self.marks.get(env.src, -_INF):
            self.marks[env.src] = env.wm
        self.flushed[env.src] = env.flushed
        self.advance()
        return _MARK

    def advance(self) -> None:
        """To the slowest source's mark, once every source has marked (just past it when all
        have nothing buffered: their facts at that very time are all in, as at a replay's end)."""
        if len(self.marks) < self.sources:
            return
        low = min(self.marks.values())
        if all(self.flushed.get(s, False) for s in range(self.sources)):
            low = math.nextafter(low, _INF)
        if low > self.engine.watermark:
            self.engine.advance(low)

    def alert_progress(self) -> float:
        assert self.rules is not None
        return passed(self.engine.watermark, self.rules.evaluation_interval_seconds)

    # --- checkpoints and documents --------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "engine": self.engine.snapshot(objects=True),
            "metrics": self.metrics.snapshot(),
            "marks": [[s, w] for s, w in sorted(self.marks.items())],
            "flushed": [[s, f] for s, f in sorted(self.flushed.items())],
            "alerts": self.recorder.snapshot() if self.recorder is not None else None,
        }

    def restore(self, doc: Mapping[str, Any]) -> None:
        self.engine.restore(dict(doc["engine"]))
        self.metrics.restore(doc["metrics"])
        self.marks = {int(s): float(w) for s, w in doc["marks"]}
        self.flushed = {int(s): bool(f) for s, f in doc["flushed"]}
        if self.recorder is not None and doc.get("alerts") is not None:
            self.recorder.restore(doc["alerts"])

    def doc(self) -> dict[str, Any]:
        """What the read model publishes of this agents partition (see :func:`agents_view`)."""
        m = self.metrics
        wm = self.engine.watermark
        # the agents' time: every source has passed it (its lowest mark; a replay of the same
        # input ends there, so the states in progress are counted up to it, as a replay does)
        now = min(self.marks.values()) if len(self.marks) == self.sources else wm
        return {
            "watermark": finite(wm),
            "now": finite(min(now, wm)),
            "counters": [[n, list(lb), v] for (n, lb), v in sorted(m.counters.items())],
            "histograms": [
                [n, list(lb), sum(h[:-1]), h[-1]] for (n, lb), h in sorted(m.histograms.items())
            ],
            "gauges": [[n, list(lb), v] for (n, lb), v in sorted(m.gauges.items())],
            "agents": [
                [a.tenant, a.agent, a.state, a.since, sorted(a.queues), a.tracked]
                for _, a in sorted(self.engine.agents.agents.items())
            ],
        }


AGENT_COUNTS = names(AGENT, "count")
AGENT_DURATIONS = names(AGENT, "duration")


def agents_view(docs: Iterable[Mapping[str, Any]], cap: float) -> dict[str, Any]:
    """``/api/agents``: one row per pseudonymous agent (and tenant), from the partition
    documents: contacts handled, means of handle / talk / hold / after-contact work, transfers
    and survey answers (from the input partitions), time in each state and occupancy (from the
    agents partitions; the current state's time counted up to the agents' watermark, as a
    replay's end counts it, at most ``cap`` seconds), and the state now. Per tenant and agent,
    and per agent over all tenants (``*``), as the replay report's agent rows."""
    counts: dict[tuple[str, str], dict[str, float]] = {}
    durations: dict[tuple[str, str], dict[str, list[float]]] = {}
    now: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        parts = [doc]
        if doc.get("agents") is not None:
            parts.append(doc["agents"])
        for part in parts:
            for name, labels, v in part["counters"]:
                if name in AGENT_COUNTS and len(labels) == 2:
                    for key in AGENT.scopes(tuple(labels)):
                        row = counts.setdefault((key[0], key[1]), {})
                        row[name] = row.get(name, 0.0) + v
            for name, labels, n, total in part["histograms"]:
                if name in AGENT_DURATIONS and len(labels) == 2:
                    for key in AGENT.scopes(tuple(labels)):
                        d = durations.setdefault((key[0], key[1]), {}).setdefault(name, [0, 0])
                        d[0] += n
                        d[1] += total
        agents = doc.get("agents")
        if agents is None:
            continue
        wm = agents.get("now", agents.get("watermark"))
        for tenant, agent, state, since, queues, tracked in agents["agents"]:
            open_for = min(cap, max(0.0, wm - since)) if wm is not None else 0.0
            if tracked and state != "offline" and open_for > 0:
                name = f"agent_{state}_seconds"
                for key in AGENT.scopes((tenant, agent)):
                    d = durations.setdefault((key[0], key[1]), {}).setdefault(name, [0, 0])
                    d[0] += 1
                    d[1] += open_for
            now[(tenant, agent)] = {
                "state": state if tracked else None,
                "queues": queues,
                "state_seconds": round(open_for, 3) if tracked else None,
            }
    rows = []
    for key in sorted(set(counts) | set(durations)):
        c = counts.get(key, {})
        dd = durations.get(key, {})
        metrics: dict[str, Any] = {name: int(c.get(name, 0.0)) for name in AGENT_COUNTS}
        metrics.update(ratio_values(AGENT, c))
        for name in AGENT_DURATIONS:
            n, total = dd.get(name, [0, 0])
            metrics[name] = {"count": int(n), "sum": round(total, 3),
                             "mean": round(total / n, 3) if n else None}  # fmt: skip
        busy = sum(dd.get(f"agent_{s}_seconds", [0, 0])[1] for s in ("busy", "after_work"))
        staffed = busy + dd.get("agent_available_seconds", [0, 0])[1]
        metrics["agent_occupancy"] = ratio_value(busy, staffed)
        away = dd.get("agent_away_seconds", [0, 0])[1]
        metrics["agent_utilisation"] = ratio_value(busy, staffed + away)
        if key[0] == ALL:  # over tenants: the agent's state where it is in one tenant only
            found = [v for (t, ag), v in now.items() if ag == key[1]]
            state = found[0] if len(found) == 1 else None
        else:
            state = now.get(key)
        rows.append({"tenant": key[0], "agent": key[1],
                     "state": state["state"] if state else None,
                     "queues": state["queues"] if state else None,
                     "state_seconds": state["state_seconds"] if state else None,
                     "metrics": metrics})  # fmt: skip
    per_state = {s: sum(1 for v in now.values() if v["state"] == s) for s in STATES}
    return {"agents": rows, "states": per_state}
