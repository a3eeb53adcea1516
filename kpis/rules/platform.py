"""Platform: the status of components (trunks, IVR servers, CTI), for incidents (장애)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler
from kpis.rules.base import Rule, RuleContext
from kpis.state import NO_LABEL

STATUS_VALUE = {"up": 1.0, "degraded": 0.5, "down": 0.0}


class PlatformRules(Rule):
    name = "platform"

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        # "tenant\x1fcomponent" -> (status, since)
        self.components: dict[str, tuple[str, float]] = {}

    def handlers(self) -> Mapping[str, Handler]:
        return {"system.status": self._on_system_status}

    def _on_system_status(self, rec: w.SystemStatus, ts: float) -> None:
        tenant = rec.tenant or NO_LABEL
        component = rec.component
        status = rec.status
        key = tenant + "\x1f" + component
        labels = (tenant, component)
        previous = self.components.get(key)
        self.sink.count("system_reports", labels, ts)
        if previous is not None and previous[0] == status:
            return
        if status == "down":
            self.sink.count("system_down", labels, ts)
        if previous is not None and previous[0] == "down":
            self.sink.observe("system_downtime_seconds", labels, ts, ts - previous[1])
        self.sink.gauge("system_status", labels, ts, STATUS_VALUE[status])
        self.components[key] = (status, ts)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        if objects:
            return {"components": dict(self.components)}
        return {"components": {k: list(v) for k, v in self.components.items()}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "components" in snap:
            self.components = {k: (str(v[0]), float(v[1])) for k, v in snap["components"].items()}
