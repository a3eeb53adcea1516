"""Engine semantics: watermark, timers at exact deadlines, duplicates, lateness, eviction."""

from __future__ import annotations

from typing import Any

import pytest

from kpis.config import DAY, EngineConfig
from kpis.decode import Decoder, Rejection
from kpis.engine import Engine
from kpis.interfaces import Labels
from kpis.wire import Rec
from tests.helpers import Log


class Recorder:
    """A sink that records every observation in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Labels, float, Any]] = []

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        self.seen.append(("count", name, labels, ts, evidence))

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self.seen.append(("observe", name, labels, ts, value))

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        self.seen.append(("gauge", name, labels, ts, value))

    def names(self, kind: str = "count") -> list[str]:
        return [s[1] for s in self.seen if s[0] == kind]


def records(log: Log) -> list[tuple[Rec, float]]:
    dec = Decoder()
    return [dec.decode(line) for line in log.lines()]


def engine(batch: int = 1, **cfg: Any) -> tuple[Engine, Recorder]:
    """An engine that drains after every event (as live workers run it) unless told otherwise."""
    rec = Recorder()
    return Engine(EngineConfig(**cfg), rec, batch=batch), rec


def test_callback_breach_is_counted_when_the_watermark_passes_the_deadline() -> None:
    log = Log()
    log.add(0, "callback.requested", "c1", callback_id="cb1")
    lateness = 60.0
    log.add(DAY + lateness, "contact.started", "x1")  # watermark = deadline exactly
    log.add(DAY + lateness + 0.001, "contact.started", "x2")  # watermark just past it
    eng, sink = engine(allowed_lateness_seconds=lateness)
    r = records(log)
    eng.ingest(*r[0])
    eng.ingest(*r[1])
    t0 = log.t0.timestamp()
    assert eng.watermark == t0 + DAY
    assert "callbacks_breached" not in sink.names()
    eng.ingest(*r[2])
    breaches = [s for s in sink.seen if s[1] == "callbacks_breached"]
    assert len(breaches) == 1
    assert breaches[0][3] == t0 + DAY  # event time of the breach: the deadline
    assert breaches[0][4] == "c1"


def test_callback_reached_exactly_at_its_deadline_is_compliant() -> None:
    log = Log()
    log.add(0, "callback.requested", "c1", callback_id="cb1")
    log.add(DAY, "callback.attempted", "o1", callback_id="cb1", outcome="reached")
    log.add(0, "callback.requested", "c2", callback_id="cb2")
    log.add(DAY + 0.001, "callback.attempted", "o2", callback_id="cb2", outcome="reached")
    eng, sink = engine()
    for r in records(log):
        eng.ingest(*r)
    eng.finish()
    names = sink.names()
    assert names.count("callbacks_compliant") == 1
    assert names.count("callbacks_breached") == 1
    assert names.count("dq_unmatched_callback_attempted") == 1  # cb2's attempt came too late


def test_duplicate_event_id_changes_nothing() -> None:
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(5, "queue.entered", "c1", queue="q")
    eng, sink = engine()
    r = records(log)
    eng.ingest(*r[0])
    eng.ingest(*r[1])
    with pytest.raises(Rejection) as err:
        eng.ingest(*r[1])
    assert err.value.reason == "duplicate"
    eng.finish()
    assert sink.names().count("queued") == 1


def test_duplicate_after_processing_is_still_a_duplicate_within_the_horizon() -> None:
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(600, "contact.started", "c2")
    log.add(5000, "contact.started", "c3")
    eng, _ = engine(allowed_lateness_seconds=60, dedupe_horizon_seconds=3600)
    r = records(log)
    for x in r[:2]:
        eng.ingest(*x)
    with pytest.raises(Rejection) as err:  # processed (W = 540 > 0) but remembered
        eng.ingest(*r[0])
    assert err.value.reason == "duplicate"
    eng.ingest(*r[2])  # W = 4940: c1's id is past the horizon, a repeat is simply late
    with pytest.raises(Rejection) as err:
        eng.ingest(*r[0])
    assert err.value.reason == "late"


def test_an_event_buffered_for_hours_of_watermark_is_still_remembered() -> None:
    """A live partition's watermark follows its slowest topic: an event of a topic read far
    ahead waits in the reorder buffer while the watermark moves many horizons; delivered again
    meanwhile (a broker that lost its log, a redelivery), it is a duplicate, not a new event."""
    log = Log()
    log.add(10 * 3600, "contact.started", "ahead")  # from a topic read far ahead
    log.add(0, "contact.started", "c0")
    eng = Engine(EngineConfig(allowed_lateness_seconds=60, dedupe_horizon_seconds=3600),
                 Recorder(), auto_watermark=False)  # fmt: skip
    by_id = {r[0].contact_id: r for r in records(log)}
    ahead, c0 = by_id["ahead"], by_id["c0"]
    eng.ingest(*ahead)
    eng.ingest(*c0)
    for hour in range(1, 10):  # the slow topic moves the watermark 9 h: nine horizons
        eng.advance(c0[1] + hour * 3600)
    assert eng.buffered() == [ahead]  # still waiting
    with pytest.raises(Rejection) as err:
        eng.ingest(*ahead)
    assert err.value.reason == "duplicate"


def test_late_event_is_rejected_and_on_time_disorder_is_accepted() -> None:
    log = Log()
    log.add(100, "contact.started", "c1")
    log.add(50, "contact.started", "c2")  # 50 s behind: within 60 s of lateness
    log.add(39, "contact.started", "c3")  # 61 s behind the max: late
    eng, sink = engine(allowed_lateness_seconds=60)
    r = [Decoder().decode(line) for line in log.lines()]
    by_contact = {x[0].contact_id: x for x in r}
    eng.ingest(*by_contact["c1"])
    eng.ingest(*by_contact["c2"])
    with pytest.raises(Rejection) as err:
        eng.ingest(*by_contact["c3"])
    assert err.value.reason == "late"
    eng.finish()
    # processed in event-time order regardless of arrival
    starts = [s[3] for s in sink.seen if s[1] == "contacts"]
    assert starts == sorted(starts) and len(starts) == 2


def test_ties_are_processed_in_a_fixed_order_whatever_the_arrival() -> None:
    log = Log()
    log.add(10, "contact.ended", "c1", ended_by="customer")
    log.add(10, "queue.entered", "c1", queue="q")
    log.add(10, "contact.started", "c1")
    eng, sink = engine()
    for r in records(log):
        eng.ingest(*r)
    eng.finish()
    # started, queued, then ended: the customer abandoned after 0 s (short); nothing unmatched
    assert sink.names() == [
        "contacts",
        "cases_opened",
        "queued",
        "abandoned",
        "abandoned_short",
        "cases_open_at_end",
    ]


def test_closed_contacts_and_finalized_cases_are_evicted() -> None:
    log = Log()
    for i in range(50):
        c = f"c{i}"
        t = i * 100.0
        log.add(t, "contact.started", c)
        log.add(t + 1, "agent.connected", c, agent_id="a")
        log.add(t + 50, "contact.ended", c, agent_id="a", ended_by="agent")
        log.add(t + 60, "wrapup.ended", c, agent_id="a", resolved=True)
    log.add(9 * DAY, "contact.started", "late-one")
    eng, _ = engine()
    for r in records(log):
        eng.ingest(*r)
    assert set(eng.contacts.contacts) == set()  # the last one is still in the reorder buffer
    assert set(eng.cases.cases) == set()  # resolved + 7 days passed: finalized
    eng.flush()
    assert set(eng.contacts.contacts) == {"late-one"}


def test_state_objects_round_trip_through_plain_dicts() -> None:
    from kpis.state import CallbackState, CaseState, ContactState

    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(1, "agent.connected", "c1", agent_id="a")
    log.add(2, "hold.started", "c1", agent_id="a")
    log.add(3, "callback.requested", "c1", callback_id="cb")
    eng, _ = engine()
    for r in records(log):
        eng.ingest(*r)
    eng.flush()
    c = eng.contacts.contacts["c1"]
    assert ContactState.from_dict(c.to_dict()) == c
    k = eng.cases.cases["c1"]
    assert CaseState.from_dict(k.to_dict()) == k
    cb = eng.callbacks.callbacks["cb"]
    assert CallbackState.from_dict(cb.to_dict()) == cb


def test_restart_from_an_object_snapshot_gives_the_same_observations() -> None:
    """Stop an engine mid-log, checkpoint it as a live partition does (the state objects
    themselves, written by msgspec), restore a new engine from the bytes and re-deliver the
    rest: every observation is the same as in one run."""
    import msgspec
    import orjson

    from cc_monitor.simulator import SimConfig, simulate

    dec = Decoder()
    recs = [dec.decode(orjson.dumps(ev)) for ev in simulate(SimConfig(contacts_per_day=400))]
    straight, whole = engine()
    for r in recs:
        straight.ingest(*r)
    straight.finish()

    for cut in (len(recs) // 3, 2 * len(recs) // 3):
        first, part1 = engine()
        for r in recs[:cut]:
            first.ingest(*r)
        blob = msgspec.json.encode(first.snapshot(objects=True))
        second, part2 = engine()
        second.restore(orjson.loads(blob))
        for r in recs[cut:]:
            second.ingest(*r)
        second.finish()
        assert part1.seen + part2.seen == whole.seen


@pytest.mark.parametrize("batch", [1, 256])
def test_snapshot_restore_continues_exactly_even_with_redelivered_events(batch: int) -> None:
    """A checkpoint is a JSON document; a worker restored from it and fed the stream again from
    a little before the checkpoint (at-least-once redelivery) counts nothing twice."""
    import orjson

    from cc_monitor.simulator import SimConfig, simulate

    dec = Decoder()
    recs = [dec.decode(orjson.dumps(ev)) for ev in simulate(SimConfig(contacts_per_day=400))]
    straight, whole = engine(batch=batch)
    for r in recs:
        straight.ingest(*r)
    straight.finish()

    for cut in (len(recs) // 4, len(recs) // 2, 3 * len(recs) // 4):
        first, part1 = engine(batch=batch)
        for r in recs[:cut]:
            first.ingest(*r)
        snap = orjson.loads(orjson.dumps(first.snapshot()))
        second, part2 = engine(batch=batch)
        second.restore(snap)
        # the checkpoint's offset is `cut`; the stream is redelivered from 20 events earlier
        for r in recs[cut - 20 :]:
            try:
                second.ingest(*r)
            except Rejection as rej:
                assert rej.reason == "duplicate"
        second.finish()
        assert part1.seen + part2.seen == whole.seen


def test_snapshot_of_a_wrong_version_is_refused() -> None:
    eng, _ = engine()
    snap = eng.snapshot()
    assert {"contacts", "cases", "callbacks", "components"} <= set(snap)
    with pytest.raises(ValueError):
        eng.restore(dict(snap, version=99))


def test_advance_moves_time_without_events() -> None:
    """A live worker advances the watermark from its clock: a deadline passes with no event."""
    log = Log()
    log.add(0, "callback.requested", "c1", callback_id="cb1")
    eng, sink = engine(allowed_lateness_seconds=60)
    (rec,) = records(log)
    eng.ingest(*rec)
    t0 = log.t0.timestamp()
    eng.advance(t0 + DAY)  # exactly the deadline: not passed yet
    assert "callbacks_breached" not in sink.names()
    eng.advance(t0 + DAY - 10)  # never backwards
    assert eng.watermark == t0 + DAY
    eng.advance(t0 + DAY + 1)
    assert sink.names().count("callbacks_breached") == 1
    late = Log()
    late.add(DAY - 5, "contact.started", "c2")  # before the clock-driven watermark
    with pytest.raises(Rejection) as err:
        eng.ingest(*records(late)[0])
    assert err.value.reason == "late"


def test_an_id_is_remembered_for_one_to_two_horizons() -> None:
    """docs/kpis.md: at least one dedupe horizon of watermark progress, at most two."""
    horizon, lateness = 3600.0, 60.0

    def run(repeat_at: float, same_time: bool) -> str:
        log = Log()
        log.add(0, "contact.started", "c1")
        log.add(repeat_at, "contact.started", "clock")  # moves the watermark
        eng, _ = engine(allowed_lateness_seconds=lateness, dedupe_horizon_seconds=horizon)
        first, clock = records(log)
        eng.ingest(*first)
        eng.ingest(*clock)
        again = Log()
        again.add(0 if same_time else repeat_at, "contact.started", "c1")
        rec, ts = records(again)[0]
        try:
            eng.ingest(rec, ts)
        except Rejection as rej:
            return rej.reason
        return "accepted"

    # within one horizon: always remembered
    assert run(horizon - 1, same_time=True) == "duplicate"
    assert run(horizon - 1, same_time=False) == "duplicate"
    # past two horizons: forgotten; an exact repeat is late, a reused id with a new time new
    assert run(2 * horizon + lateness + 1, same_time=True) == "late"
    assert run(2 * horizon + lateness + 1, same_time=False) == "accepted"
