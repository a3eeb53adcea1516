"""A live worker's views: ``/api/kpis``, ``/api/agents``, ``/api/alerts`` and ``/health``,
read from its runtime's parts (the documents of the last tick, the alert leader, the stores'
status, the broker, the reject window). Times in RFC 3339 (UTC), as every /api view."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import orjson

from kpis.config import EngineConfig
from streams.agents import agents_view
from streams.kafka.checkpoint import Owned
from streams.kafka.gate import ArchiveGate
from streams.kafka.health import BrokerHealth
from streams.kafka.leader import AlertLeader
from streams.kafka.pipeline import StoreStatus
from streams.kafka.timekeeper import LiveClock
from streams.rejects import RejectWatch
from streams.sinks.readmodel import kpi_view


class Viewed(Protocol):
    """What the views read of a live runtime (streams.kafka.worker.LiveRuntime)."""

    config: EngineConfig
    partitions: int
    last_docs: dict[int, bytes]
    leader: AlertLeader | None
    view_status: StoreStatus
    agents_topic: str | None
    gate: ArchiveGate | None
    clock: Callable[[], float]
    time: LiveClock
    records: int
    rejects: RejectWatch
    broker: BrokerHealth
    last_rerouted: float

    @property
    def zone(self) -> str: ...

    @property
    def agent_names(self) -> Mapping[str, str]: ...

    @property
    def owned(self) -> Mapping[int, Owned]: ...

    @property
    def worker_id(self) -> str: ...


class WorkerViews:
    def __init__(self, runtime: Viewed) -> None:
        self.rt = runtime

    def kpis(self) -> dict[str, object]:
        rt = self.rt
        docs = [orjson.loads(d) for _, d in sorted(rt.last_docs.items())]
        view = kpi_view(docs, rt.partitions)
        view["staffing"] = self.staffing()
        view["timezone"] = rt.zone  # the centre's: the wallboard's clock and "today"
        ok = rt.view_status.ok
        view["read_model"] = "ok" if ok else ("unreachable" if ok is False else "starting")
        return view

    def staffing(self) -> list[dict[str, object]] | None:
        leader = self.rt.leader
        return leader.staffing() if leader is not None else None

    def alerts(self) -> dict[str, object]:
        leader = self.rt.leader
        if leader is None:
            return {"evaluating": False, "evaluated_to": None, "firing": []}
        return leader.view()

    def agents(self) -> dict[str, object]:
        """``/api/agents`` (streams.agents.agents_view), from the same documents as /api/kpis."""
        rt = self.rt
        docs = [orjson.loads(d) for _, d in sorted(rt.last_docs.items())]
        view = agents_view(docs, rt.config.agent_stretch_max_seconds)
        names = rt.agent_names
        for row in view["agents"]:  # display only: a name is never a label or logged
            row["name"] = names.get(row["agent"])
        view["live"] = rt.agents_topic is not None
        return view

    def health(self) -> dict[str, object]:
        rt = self.rt
        problems = self.problems()
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "worker": rt.worker_id,
            "partitions": sorted(rt.owned),
            **{k: {"ok": s.ok, "error": s.error or None} for k, s in self._stores().items()},
            "archive": {"error": rt.gate.error or None} if rt.gate is not None else None,
            "seconds_since_last_record": round(rt.clock() - rt.time.last_record, 3),
            "records": rt.records,
            "input": self._input(),
        }

    def _input(self) -> dict[str, object]:
        """Input records read and rejected in the reject window (RejectWatch)."""
        w = self.rt.rejects
        read, rejected = w.counts(self.rt.clock())
        rej = dict(sorted(rejected.items()))
        return {
            "window_seconds": w.window,
            "read": read,
            "rejected": rej,
            "alarm_share": w.alarm_share,
        }

    def problems(self) -> list[str]:
        """Why this worker is degraded (none: it is ok)."""
        rt = self.rt
        out = [p for s in self._stores().values() if (p := s.problem()) is not None]
        if rt.gate is not None and rt.gate.error:
            out.append(f"archive: {rt.gate.error}")
        out += rt.broker.problems(bool(rt.owned))
        rejecting = rt.rejects.problem(rt.clock())
        if rejecting is not None:
            out.append(rejecting)
        out += self.at_caps()
        out += self.rerouted()
        folded = self.folded()
        if folded:
            out.append(
                "label values folded into 'other' past their caps (docs/live.md): "
                + "; ".join(f"{dim}: {', '.join(ex)}" for dim, ex in folded.items())
            )
        return out

    def rerouted(self) -> list[str]:
        """Records on the wrong partition in the reject window, and those not yet sent on."""
        rt = self.rt
        unsent = sum(len(o.pe.rerouted) for o in rt.owned.values())
        recent = rt.clock() - rt.last_rerouted < rt.rejects.window
        if not (recent or unsent):
            return []
        return [f"records arrive on partitions their case does not hash to (a producer not "
                f"keyed by case_id, docs/live.md): sent on to theirs "
                f"(cc_records_rerouted_total); {unsent} not yet sent"]  # fmt: skip

    def at_caps(self) -> list[str]:
        """What is at its memory cap now on this worker's partitions: new ones are not kept."""
        cfg = self.rt.config
        full: dict[str, int] = {}
        for o in self.rt.owned.values():
            e = o.pe.engine
            for what, n, cap in (("contacts", len(e.contacts.contacts), cfg.max_open_contacts),
                                 ("cases", len(e.cases.cases), cfg.max_open_cases),
                                 ("callbacks", len(e.callbacks.callbacks),
                                  cfg.max_open_callbacks)):  # fmt: skip
                if n >= cap:
                    full[what] = cap
        return [f"open {what} at engine.max_open_{what} ({cap}): new ones are not tracked "
                "(data quality *_over_cap)" for what, cap in sorted(full.items())]  # fmt: skip

    def folded(self) -> dict[str, list[str]]:
        """Per label dimension folded on this worker's partitions: the first folded values'
        digests (never the values)."""
        out: dict[str, list[str]] = {}
        for o in self.rt.owned.values():
            for dim, examples in o.pe.engine.labels.folded_examples().items():
                seen = out.setdefault(dim, [])
                seen += [e for e in examples if e not in seen][: 3 - len(seen)]
        return dict(sorted(out.items()))

    def _stores(self) -> dict[str, StoreStatus]:
        rt = self.rt
        stores = {"read_model": rt.view_status}
        if rt.leader is not None:
            stores["alert_store"] = rt.leader.status
        return stores
