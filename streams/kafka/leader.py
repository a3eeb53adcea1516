"""The alert path's owner in a live worker: every partition records its closed intervals
(alerts.stage.IntervalRecorder) and publishes them to the alert store; the one worker that
holds the store's lease evaluates the centre's rules over all of them and notifies.

Invariants:

* Intervals leave a partition (its recorder, so its checkpoint) only once the stage that
  evaluated them has been saved (``evaluated_to``): a leader on another worker, or after a
  restart, still finds every interval it has not evaluated.
* Once-only paging: a notification is sent only by whoever first claims its key
  (fingerprint, start, status) in the store, so a new leader that evaluates a tick again (its
  predecessor died before saving the stage) does not page twice.
* Any store failure: processing goes on; the stage in memory may be ahead of what was
  notified and saved, so it is dropped and loaded again from the saved one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, tzinfo

import orjson

from alerts.evaluator import Alert, AlertEvent
from alerts.rules import RulesConfig
from alerts.stage import AlertStage
from kpis.config import EngineConfig
from kpis.targets import Targets
from streams.kafka.checkpoint import Owned
from streams.kafka.pipeline import PipelineMetrics, StoreStatus
from streams.partitioned import alert_doc
from streams.sinks.alertstore import AlertStore

log = logging.getLogger("cc_monitor.worker")

Notify = Callable[[AlertEvent], Awaitable[None]]
EVALUATE_PER_TICK = 2000
"""Alert-rule evaluation ticks per worker tick at most (a backlog's are spread over ticks)."""


class AlertLeader:
    def __init__(
        self,
        rules: RulesConfig,
        store: AlertStore,
        config: EngineConfig,
        partitions: int,
        metrics: PipelineMetrics,
        *,
        worker_id: str,
        lease_seconds: float = 10.0,
        live_agents: bool = False,
        notify: Notify | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        """``live_agents``: agents partitions n..2n-1 hold the agents (streams.agents) and
        record intervals too. ``tz``: the zone of the staffing view's intervals."""
        self.rules = rules
        self.store = store
        self.config = config
        self.partitions = partitions
        self.metrics = metrics
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.live_agents = live_agents
        self.notify = notify
        self.tz = tz
        self.status = StoreStatus("alert store")
        self.stage: AlertStage | None = None  # while this worker leads
        self.evaluated_to: float | None = None
        self._events: list[AlertEvent] = []
        self._set_firing([])

    async def step(self, owned: Mapping[int, Owned]) -> None:
        """One tick of the alert path: publish this worker's intervals, evaluate if leading,
        then drop what the saved stage has evaluated."""
        try:
            await self.store.publish_intervals(
                {p: orjson.dumps(alert_doc(o.pe)) for p, o in owned.items()}
            )
            if await self.store.lead(self.worker_id, self.lease_seconds):
                await self._evaluate(owned)
            else:
                self._follow()
                self.evaluated_to = await self.store.evaluated_to()
            self.status.answered()
        except Exception as exc:  # any store failure: keep processing, try again next tick
            self.status.failed(exc)
            self.stage = None
            self._events = []
            return
        done = self.evaluated_to
        if done is None:
            return
        for o in owned.values():
            for rec in (o.pe.recorder, o.pe.agents.recorder if o.pe.agents else None):
                if rec is not None and rec.closed and rec.closed[0].at <= done:
                    rec.closed = [i for i in rec.closed if i.at > done]

    def _follow(self) -> None:
        if self.stage is not None:
            log.info("alert evaluation: lease lost")
            self.stage = None
            self._set_firing([])

    async def _stage(self) -> AlertStage:
        if self.stage is not None:
            return self.stage
        n = self.partitions
        stage = AlertStage(
            self.rules,
            self,
            # input partitions 0..n-1, and with live agent states agents partitions n..2n-1
            range(2 * n if self.live_agents else n),
            Targets(self.config),
            tz=self.tz,
            interval_seconds=(self.config.interval_minutes or 30) * 60.0,
            staff_from=range(n, 2 * n) if self.live_agents else (),
        )
        blob = await self.store.load_stage()
        if blob is not None:
            stage.restore(orjson.loads(blob))
        log.info("alert evaluation: lease taken, evaluated to %s", stage.evaluated_to)
        self.stage = stage
        return stage

    async def _evaluate(self, owned: Mapping[int, Owned]) -> None:
        stage = await self._stage()
        n = self.partitions
        progress: dict[int, float] = {}
        for p, o in owned.items():  # this worker's partitions: from memory
            if o.pe.recorder is not None:
                stage.offer(o.pe.recorder.closed)
                progress[p] = o.pe.alert_progress()
            agents = o.pe.agents
            if agents is not None and agents.recorder is not None:
                stage.offer(agents.recorder.closed)
                progress[n + p] = agents.alert_progress()
        for p, raw in (await self.store.fetch_intervals(n)).items():
            if p in owned:
                continue  # offered from memory above
            doc = orjson.loads(raw)
            if doc is None:
                continue
            for q, part in ((p, doc), (n + p, doc.get("agents"))):
                if part is not None:
                    stage.offer_plain(part["intervals"])
                    progress[q] = part["passed"] if part["passed"] is not None else -math.inf
        if not stage.release(progress, limit=EVALUATE_PER_TICK):
            return
        events, self._events = self._events, []
        for ev in events:
            a = ev.alert
            if await self.store.claim(f"{a.fingerprint}:{a.starts_at:.3f}:{ev.status}"):
                self.metrics.notifications.labels(ev.status).inc()
                if self.notify is not None:
                    await self.notify(ev)
        await self.store.save_stage(orjson.dumps(stage.snapshot()), stage.evaluated_to)
        self.evaluated_to = stage.evaluated_to
        self._set_firing(stage.logic.firing())

    def alert(self, event: AlertEvent) -> None:
        """The stage's sink: events are notified after the release that produced them."""
        self._events.append(event)

    def _set_firing(self, firing: list[Alert]) -> None:
        """One series per enabled rule (0 when not firing, so panels show a zero, not a gap)."""
        counts = {name: 0 for name, rule in self.rules.rules.items() if rule.enabled}
        for a in firing:
            counts[a.rule] = counts.get(a.rule, 0) + 1
        for name, k in counts.items():
            self.metrics.alerts_firing.labels(name, self.rules.rules[name].severity).set(k)

    def view(self) -> dict[str, object]:
        """``/api/alerts``: firing alerts, as the leader sees them (other workers: not
        evaluating); times in RFC 3339 (UTC), as every /api view gives them."""
        stage = self.stage
        firing = []
        for a in stage.logic.firing() if stage is not None else ():
            d = a.to_dict()
            d["starts_at"] = rfc3339(a.starts_at)
            d["ends_at"] = rfc3339(a.ends_at)
            firing.append(d)
        return {
            "evaluating": stage is not None,
            "evaluated_to": rfc3339(self.evaluated_to),
            "firing": firing,
        }

    def staffing(self) -> list[dict[str, object]] | None:
        """The centre's staffing now and next interval (alerts.staffing), on the worker that
        evaluates the alert rules (None elsewhere)."""
        return (
            self.stage.staffing.view()
            if self.stage is not None and self.stage.staffing is not None
            else None
        )


def rfc3339(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
