"""Intraday intervals: traffic, busy agents, required agents and the forecast per queue."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cc_monitor.simulator import SimConfig, simulate
from kpis.config import DAY, EngineConfig
from kpis.erlang import agents_c
from tests.helpers import ALL, Log, replay_lines, replay_log, row


def call(log: Log, c: str, t: float, wait: float, talk: float, queue: str = "billing") -> None:
    log.add(t, "contact.started", c)
    log.add(t, "queue.entered", c, queue=queue)
    log.add(t + wait, "agent.connected", c, queue=queue, agent_id="a-" + c)
    log.add(t + wait + talk, "contact.ended", c, queue=queue, agent_id="a-" + c, ended_by="agent")
    log.add(t + wait + talk + 60, "wrapup.ended", c, queue=queue, agent_id="a-" + c)


def rows_of(rep: dict, queue: str = "billing") -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["interval"][11:16]: r for r in rep["intervals"]
            if r["queue"] == queue and r["tenant"] == ALL}  # fmt: skip


def test_an_interval_counts_its_traffic_and_spreads_busy_time(tmp_path: Path) -> None:
    # T0 = 09:00 UTC. c1 queued 09:10, answered 09:10:30, talks 25 min, wrap-up 1 min: its
    # agent is busy 09:10:30-09:36:30 (19.5 min in the first half hour, 6.5 in the second)
    log = Log()
    call(log, "c1", 600, 30, 1500)
    call(log, "c2", 1500, 10, 240)  # 09:25, 4 min talk: ends 09:30:10 + wrap-up
    log.add(2000, "contact.started", "c3")
    log.add(2000, "queue.entered", "c3", queue="billing")  # 09:33:20
    log.add(2100, "queue.abandoned", "c3", queue="billing")
    log.add(2101, "contact.ended", "c3", queue="billing", ended_by="customer")
    rep = replay_log(log, tmp_path)
    first, second = rows_of(rep)["09:00"], rows_of(rep)["09:30"]
    assert (first["offered"], first["answered"], first["abandoned"]) == (2, 2, 0)
    assert (second["offered"], second["abandoned"]) == (1, 1)
    assert first["asa_seconds"] == 20.0 and first["service_level"] == 0.5
    busy_first = (1170 + 290) / 1800  # c1 09:10:30-09:30, c2 09:25:10-09:30
    busy_second = (390 + 10) / 1800  # c1 to 09:36:30 (wrap-up included), c2 to 09:30:10
    assert first["busy_agents"] == round(busy_first, 3)
    assert second["busy_agents"] == round(busy_second, 3)
    assert first["aht_seconds"] is None  # no agent part ended in it
    assert second["aht_seconds"] == (1560 + 300) / 2
    # offered 1 at the interval's handle time: load 930 / 1800 erlangs
    assert second["required_agents"] == agents_c(930 / 1800, 930, 20, 0.8) == 2
    assert first["required_agents"] is None  # no handle time measured in it
    assert rep["intervals"][0]["interval"] == "2026-11-02T09:00:00+00:00"


@pytest.mark.slow
def test_interval_sums_equal_the_queue_totals_and_required_agents_are_erlangs(
    tmp_path: Path,
) -> None:
    lines = [orjson.dumps(e) for e in simulate(SimConfig(contacts_per_day=1500, days=2))]
    rep = replay_lines(lines, tmp_path)
    for queue in ("billing", "cards", "chat", "email"):
        channel = {"chat": "chat", "email": "email"}.get(queue, "voice")
        total = row(rep, channel, queue)
        mine = [r for r in rep["intervals"] if r["queue"] == queue and r["tenant"] == ALL
                and r["channel"] == channel]  # fmt: skip
        for name in ("offered", "answered", "abandoned", "answered_in_sl"):
            counted = total["queued" if name == "offered" else name]
            assert sum(r[name] for r in mine) == counted, (queue, name)
        per_tenant = [r for r in rep["intervals"] if r["queue"] == queue and r["tenant"] == "bank"]
        assert sum(r["offered"] for r in per_tenant) == total["queued"]
    busy = [r for r in rep["intervals"] if r["queue"] == "billing" and r["tenant"] == ALL
            and r["required_agents"]]  # fmt: skip
    r = max(busy, key=lambda r: r["offered"])
    load = r["offered"] * r["aht_seconds"] / 1800
    assert r["required_agents"] == agents_c(load, r["aht_seconds"], 20.0, 0.8)
    # abandonment relieves the queue: Erlang A never asks for more agents than Erlang C
    both = [r for r in busy if r["required_agents_erlang_a"] is not None]
    assert both and all(r["required_agents_erlang_a"] <= r["required_agents"] for r in both)


def test_the_forecast_is_the_same_weekday_and_interval_of_the_weeks_before(
    tmp_path: Path,
) -> None:
    log = Log()
    for week, n in enumerate((2, 4, 6)):  # Mondays 09:00: 2, then 4, then 6 calls
        for i in range(n):
            call(log, f"w{week}c{i}", week * 7 * DAY + i * 60, 5, 120)
    call(log, "tue", DAY, 5, 120)  # a Tuesday does not count for Mondays
    rep = replay_log(log, tmp_path)
    mondays = [r for r in rep["intervals"] if r["queue"] == "billing" and r["tenant"] == ALL
               and r["interval"][11:16] == "09:00"]  # fmt: skip
    by_day = {r["interval"][:10]: r for r in mondays}
    assert by_day["2026-11-02"]["forecast_offered"] is None  # no earlier Monday
    assert by_day["2026-11-09"]["forecast_offered"] == 2
    assert by_day["2026-11-16"]["forecast_offered"] == 3  # (2 + 4) / 2
    assert by_day["2026-11-16"]["forecast_required_agents"] >= 1
    assert by_day["2026-11-03"]["forecast_offered"] is None


def test_15_minute_intervals_and_a_daylight_saving_day(tmp_path: Path) -> None:
    log = Log()
    call(log, "c1", 0, 5, 60)
    call(log, "c2", 900, 5, 60)
    rep = replay_log(log, tmp_path, EngineConfig(interval_minutes=15))
    assert sorted(rows_of(rep)) == ["09:00", "09:15"]
    # Europe/Berlin, 2026-10-25 has 25 hours: 03:00 local comes twice; intervals keep
    # their wall-clock start with the offset
    from datetime import UTC, datetime

    from tests.helpers import Log as L

    log = L(datetime(2026, 10, 25, 0, 15, tzinfo=UTC))  # 02:15 CEST (+02:00)
    call(log, "c1", 0, 5, 60)
    call(log, "c2", 3600, 5, 60)  # 02:15 CET (+01:00): the hour repeated
    rep = replay_log(log, tmp_path, tz="Europe/Berlin")
    starts = [r["interval"] for r in rep["intervals"] if r["tenant"] == ALL and r["offered"]]
    assert starts == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]


def test_intervals_can_be_left_out(tmp_path: Path) -> None:
    log = Log()
    call(log, "c1", 0, 5, 60)
    rep = replay_log(log, tmp_path, EngineConfig(interval_minutes=0))
    assert "intervals" not in rep and row(rep, "voice", "billing")["answered"] == 1


def test_the_forecast_keys_history_by_local_wall_clock_interval(tmp_path: Path) -> None:
    """1999-04-02 (Israel's summer time began that Friday): 10:00 local is the 18th half hour
    after midnight there, not the 20th. The forecast of that day's 10:00 is made from the
    Friday before at 10:00 (it once took 09:00's: every slot an hour off)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Jerusalem")
    log = Log(datetime(1999, 3, 26, 10, 5, tzinfo=zone))
    for i in range(10):  # Friday 1999-03-26, 10:05-10:14 local
        call(log, f"a{i}", i * 60, 5, 60)
    week = (datetime(1999, 4, 2, 10, 5, tzinfo=zone) - log.t0).total_seconds()
    for i in range(4):  # the DST Friday, 10:05 local
        call(log, f"b{i}", week + i * 60, 5, 60)
    rep = replay_log(log, tmp_path, tz="Asia/Jerusalem")
    by = {r["interval"]: r for r in rep["intervals"] if r["tenant"] == ALL}
    dst = by["1999-04-02T10:00:00+03:00"]
    assert dst["offered"] == 4
    assert dst["forecast_offered"] == 10  # the Friday before, same wall-clock half hour


def test_the_forecast_blends_the_weeks_before_todays_volume_and_the_interval_before() -> None:
    from kpis.intervals import SCALE_LIMITS, blend

    assert blend(None, 0, 0, 5) is None  # no history: no forecast (the first week)
    assert blend(10, 0, 0, None) == 10  # an opening interval: the weeks before alone
    assert blend(10, 0, 0, 4) == 7  # half the weeks before, half the interval before
    # today runs 50 % above the same intervals of the weeks before: the seasonal scales
    assert blend(10, 150, 100, None) == 15
    assert blend(10, 1000, 100, None) == 10 * SCALE_LIMITS[1]  # bounded
    assert blend(10, 15, 10, None) == 10  # too little so far to scale
