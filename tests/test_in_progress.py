"""Contacts in progress and the longest one, as the live view (/api/kpis) and the wallboard
show them: timed from when the current agent took the contact, gone when it ends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from kpis.config import EngineConfig
from kpis.decode import Decoder
from kpis.engine import Engine
from streams.partitioned import PartitionEngine, partition_doc
from streams.sinks.metrics import MetricsSink
from streams.sinks.readmodel import kpi_view

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()


def ev(kind: str, cid: str, at: float, **fields: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{cid}-{kind}-{at}",
            "type": kind,
            "contact_id": cid,
            "ts": datetime.fromtimestamp(T0 + at, UTC).isoformat(),
            "channel": "voice",
            "tenant": "bank",
            "queue": "cards",
            **fields,
        }
    )


def feed(engine: Engine, lines: list[bytes]) -> None:
    dec = Decoder()
    for line in lines:
        engine.ingest(*dec.decode(line))
    engine.core.flush()  # processed up to the last event


CALLS = [
    ev("contact.started", "c1", 0, direction="inbound"),
    ev("queue.entered", "c1", 1),
    ev("agent.connected", "c1", 10, agent_id="a1"),
    ev("contact.started", "c2", 20, direction="inbound"),
    ev("queue.entered", "c2", 21),
    ev("agent.connected", "c2", 40, agent_id="a2"),
]


def test_in_progress_counts_open_contacts_and_times_the_longest() -> None:
    eng = Engine(EngineConfig(), MetricsSink())
    feed(eng, CALLS)
    assert eng.handling_now(100.0 + T0) == {("bank", "voice", "cards"): (2, 90.0)}
    # a transfer: the time runs from the new agent's connection
    feed(eng, [ev("contact.transferred", "c1", 50, to_agent_id="a3"),
               ev("agent.connected", "c1", 55, agent_id="a3")])  # fmt: skip
    assert eng.handling_now(100.0 + T0) == {("bank", "voice", "cards"): (2, 60.0)}
    # ended (in after-contact work): no longer in progress
    feed(eng, [ev("contact.ended", "c2", 60, ended_by="customer")])
    assert eng.handling_now(100.0 + T0) == {("bank", "voice", "cards"): (1, 45.0)}
    feed(eng, [ev("contact.ended", "c1", 70, ended_by="agent")])
    assert eng.handling_now(100.0 + T0) == {}


def test_waiting_is_not_in_progress_and_the_view_rolls_up() -> None:
    pe = PartitionEngine(0, EngineConfig())
    feed(pe.engine, [*CALLS, ev("contact.started", "c3", 45, direction="inbound"),
                     ev("queue.entered", "c3", 46)])  # fmt: skip
    doc = orjson.loads(orjson.dumps(partition_doc(pe)))
    view = kpi_view([doc], 1)
    rows = {(r["tenant"], r["channel"], r["queue"]): r["metrics"] for r in view["kpis"]}
    for key in [("bank", "voice", "cards"), ("*", "*", "*"), ("*", "voice", "cards")]:
        m = rows[key]
        # at the watermark (the last event, 46 s): c1 with a1 since 10 s, c2 with a2 since 40 s
        assert (m["contacts_in_progress"], m["longest_in_progress_seconds"]) == (2, 36.0), key
        assert m["contacts_waiting"] == 1
    # a document without the field (an older worker's) reads as nothing in progress
    doc.pop("handling")
    old = kpi_view([doc], 1)["kpis"][0]["metrics"]
    assert (old["contacts_in_progress"], old["longest_in_progress_seconds"]) == (0, 0.0)
