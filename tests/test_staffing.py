"""The live staffing view (alerts.staffing): the current interval, required agents and the
next interval's forecast from a seasonal baseline."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from alerts.staffing import StaffingLogic, estimated_wait
from kpis.config import EngineConfig
from kpis.erlang import agents_c
from kpis.targets import Targets

Q = ("bank", "voice", "billing")
MONDAY = datetime(2026, 11, 2, tzinfo=UTC).timestamp()


def feed(logic: StaffingLogic, start: float, minutes: int, per_minute: int = 1) -> None:
    counts = {("queued", Q): float(per_minute), ("handle_seconds", Q): float(per_minute),
              ("handle_seconds:sum", Q): 300.0 * per_minute, ("answered", Q): float(per_minute),
              ("answered_in_sl", Q): float(per_minute)}  # fmt: skip
    for m in range(1, minutes + 1):
        logic.on_tick(start + m * 60, 60, counts, {(Q, "available"): 5, (Q, "busy"): 2},
                      {Q: (1, 30.0)})  # fmt: skip


def row(logic: StaffingLogic, tenant: str = "bank") -> dict:  # type: ignore[type-arg]
    return next(r for r in logic.view() if r["tenant"] == tenant and r["queue"] == "billing")


def test_required_now_and_the_forecast_from_previous_weeks() -> None:
    logic = StaffingLogic(UTC, 1800, Targets(EngineConfig()))
    for week in range(3):  # Mondays 10:00-10:30, 30 contacts of 300 s
        feed(logic, MONDAY + week * 7 * 86400 + 10 * 3600, 30)
        feed(logic, MONDAY + week * 7 * 86400 + 10.5 * 3600, 1, per_minute=0)  # closes it
    monday4 = MONDAY + 3 * 7 * 86400
    feed(logic, monday4 + 9.5 * 3600, 10, per_minute=2)  # 09:30-09:40: 20 contacts so far
    r = row(logic)
    assert r["interval"] == "2026-11-23T09:30:00+00:00" and r["offered"] == 20
    assert r["required_agents"] == agents_c(20 * 300 / 600, 300, 20, 0.8)
    assert r["agents_staffed"] == 7 and r["staffing_gap"] == r["required_agents"] - 7
    assert r["contacts_waiting"] == 1 and r["aht_seconds"] == 300
    # next interval, 10:00 on a Monday: three previous Mondays of 30 contacts
    assert r["forecast_offered"] == 30.0
    assert r["forecast_required_agents"] == agents_c(30 * 300 / 1800, 300, 20, 0.8)
    assert row(logic, "*")["forecast_offered"] == 30.0  # over tenants: the tenants' sum
    # the baseline and the current interval survive a checkpoint (plain JSON)
    again = StaffingLogic(UTC, 1800, Targets(EngineConfig()))
    again.restore(orjson.loads(orjson.dumps(logic.snapshot())))
    assert again.view() == logic.view()


def test_a_first_week_forecasts_from_previous_days_and_a_quiet_queue_needs_nobody() -> None:
    logic = StaffingLogic(UTC, 1800, Targets(EngineConfig()))
    feed(logic, MONDAY + 10 * 3600, 30)
    feed(logic, MONDAY + 86400 + 9.5 * 3600, 1, per_minute=0)  # Tuesday 09:30, nothing yet
    r = row(logic)
    assert r["offered"] == 0 and r["required_agents"] == 0  # no load: none needed
    assert r["forecast_offered"] == 30.0  # Monday's 10:00 (no previous Tuesday yet)


def test_the_baseline_is_bounded_to_four_weeks() -> None:
    logic = StaffingLogic(UTC, 1800, Targets(EngineConfig()))
    for week in range(8):
        feed(logic, MONDAY + week * 7 * 86400 + 10 * 3600, 30, per_minute=1 + week)
        feed(logic, MONDAY + week * 7 * 86400 + 10.5 * 3600, 1, per_minute=0)
    assert all(len(v) <= 4 for v in logic.history.values())
    feed(logic, MONDAY + 8 * 7 * 86400 + 9.5 * 3600, 1, per_minute=0)
    assert row(logic)["forecast_offered"] == 30 * (5 + 6 + 7 + 8) / 4  # the last four weeks


def test_today_counts_since_local_midnight_against_the_target() -> None:
    logic = StaffingLogic(UTC, 1800, Targets(EngineConfig()))
    feed(logic, MONDAY + 9 * 3600, 90)  # 09:00-10:30: three intervals, 90 answered in 20 s
    r = row(logic)
    assert r["offered"] == 30 and r["today"]["offered"] == 90  # the interval vs the day
    assert r["today"]["service_level"] == 1.0 and r["service_level_goal"] == 0.8
    assert r["service_level_seconds"] == 20
    feed(logic, MONDAY + 86400 + 60, 1)  # Tuesday 00:01: a new day
    assert row(logic)["today"]["offered"] == 1


def test_the_estimated_wait_follows_the_queue_ahead_and_the_agents() -> None:
    assert estimated_wait(0, 1, 3, 300.0) == 0.0  # an agent free: answered at once
    assert estimated_wait(4, 1, 5, 300.0) == 4 * 300 / 5  # four ahead that no free agent takes
    assert estimated_wait(4, 0, 0, 300.0) is None  # nobody staffed: not measured, not 0
    assert estimated_wait(4, 0, 2, None) is None  # no handle time yet
    logic = StaffingLogic(UTC, 1800, Targets(EngineConfig()))
    feed(logic, MONDAY + 10 * 3600, 10)  # 5 available, 2 busy, 1 waiting, AHT 300 s
    r = row(logic)
    assert r["agents_available"] == 5 and r["estimated_wait_seconds"] == 0.0
    logic.on_tick(MONDAY + 10 * 3600 + 660, 60, {}, {(Q, "busy"): 3}, {Q: (5, 90.0)})
    r = row(logic)
    assert r["agents_available"] == 0 and r["estimated_wait_seconds"] == 6 * 300 / 3
    # a new interval without a handle time yet: today's AHT
    logic.on_tick(MONDAY + 10.5 * 3600 + 60, 60, {}, {(Q, "busy"): 3}, {Q: (2, 90.0)})
    assert row(logic)["estimated_wait_seconds"] == 3 * 300 / 3
    # agents not tracked by the source: not measured
    quiet = StaffingLogic(UTC, 1800, Targets(EngineConfig()))
    quiet.on_tick(MONDAY + 60, 60, {("queued", Q): 1.0}, {}, {Q: (1, 9.0)})
    assert row(quiet)["estimated_wait_seconds"] is None and row(quiet)["agents_available"] is None
