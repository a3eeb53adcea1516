"""An engine with its sinks and the views its alert recorder reads, built in one place for
the three kinds of engine: a replay's (one engine, streams.replay), a live input partition's
(streams.partitioned) and an agents partition's (streams.agents).

Every observation goes to the primary sink (the report, or a partition's Prometheus
aggregates); the alert recorder gets the series the rules read, further sinks what they ask
for (a replay's ledger, its intervals). The recorder is the engine's sink and reads the
engine's queues and agents at each tick, so it is told of them once the engine exists; the
engine's ticks (every evaluation interval of event time) go to ``tick``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from alerts.stage import IntervalRecorder
from kpis.core import TickListener
from kpis.engine import AgentEngine, Engine
from kpis.interfaces import KpiSink, fan_out

E = TypeVar("E", Engine, AgentEngine)


def assemble(
    make: Callable[[KpiSink], E],
    primary: KpiSink,
    recorder: IntervalRecorder | None = None,
    *,
    others: Sequence[tuple[KpiSink, frozenset[str] | None]] = (),
    every: float = 0.0,
    tick: TickListener | None = None,
    queues: bool = False,
    agents: bool = False,
) -> E:
    """The engine ``make`` builds on the fanned-out sink. With a ``recorder``: it watches the
    engine's queues (``queues``) and agents (``agents``: where the engine keeps agent states)
    and the engine ticks every ``every`` seconds to ``tick`` (the recorder's own if None)."""
    branches = [*([(recorder, recorder.series)] if recorder is not None else []), *others]
    engine = make(fan_out(primary, *branches))
    if recorder is not None:
        recorder.watch(
            queues=engine if queues and isinstance(engine, Engine) else None,
            agents=engine.agents if agents else None,
        )
        engine.on_tick(every, tick if tick is not None else recorder.on_tick)
    return engine
