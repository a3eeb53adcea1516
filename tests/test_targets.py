"""Targets per queue and priority, business-hours calendars, and the figures they move."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from alerts.evaluator import AlertLogic
from cc_monitor.simulator import SimConfig, simulate
from kpis.config import DAY, EngineConfig
from kpis.targets import BusinessClock, Calendar, Targets
from tests.builders import Events, only, ticks
from tests.helpers import ALL, Log, replay_lines, replay_log, row

H = 3600.0
OFFICE = {"monday": ["09:00-17:00"], "tuesday": ["09:00-17:00"], "wednesday": ["09:00-17:00"],
          "thursday": ["09:00-17:00"], "friday": ["09:00-17:00"]}  # fmt: skip


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- which target applies -----------------------------------------------------------------------


def test_the_most_specific_rule_wins_value_by_value_and_ties_go_to_the_earlier() -> None:
    config = EngineConfig(targets=[
        {"channel": "voice", "service_level_seconds": 30, "service_level_goal": 0.8},
        {"queue": "billing", "service_level_seconds": 15},
        {"queue": "billing", "service_level_seconds": 99, "first_response_seconds": 99},
        {"queue": "billing", "priority": 1, "first_response_seconds": 60},
        {"tenant": "bank", "channel": "voice", "queue": "billing", "resolution_seconds": 3600},
    ])  # fmt: skip
    t = Targets(config)
    top = t.of("bank", "voice", "billing", 1)
    assert top.resolution_seconds == 3600  # three names: the most specific
    assert top.first_response_seconds == 60  # queue + priority beats the queue alone
    assert top.service_level_seconds == 15  # queue rules (one name each): the earlier
    assert top.service_level_goal == 0.8  # only the channel rule sets it
    other = t.of("bank", "voice", "billing", None)
    assert other.first_response_seconds == 99 and other.service_level_seconds == 15
    cards = t.of("bank", "voice", "cards", None)
    assert (cards.service_level_seconds, cards.first_response_seconds) == (30, None)
    chat = t.of("bank", "chat", "chat", None)
    assert chat.service_level_seconds == 20 and chat.service_level_goal is None  # defaults


def test_targets_are_checked_when_loaded() -> None:
    with pytest.raises(ValidationError, match="no calendar 'ofice'; did you mean 'office'"):
        EngineConfig(calendars={"office": OFFICE}, targets=[{"queue": "q", "calendar": "ofice"}])
    with pytest.raises(ValidationError, match="priority"):
        EngineConfig(targets=[{"priority": 10}])
    with pytest.raises(ValidationError, match="not an interval"):
        Calendar(monday=["9-17"])
    with pytest.raises(ValidationError, match="overlaps"):
        Calendar(monday=["09:00-13:00", "12:00-18:00"])
    with pytest.raises(ValidationError, match="at least one open interval"):
        Calendar(holidays=[date(2026, 12, 25)])


# --- business hours -----------------------------------------------------------------------------


def test_business_seconds_across_both_daylight_saving_changes() -> None:
    # New York: 2026-03-08 has 23 hours, 2026-11-01 has 25 (both Sundays, open all day)
    clock = BusinessClock(Calendar(timezone="America/New_York", sunday=["00:00-24:00"]))
    ny = ZoneInfo("America/New_York")

    def day(d: date) -> float:
        start = datetime(d.year, d.month, d.day, tzinfo=ny).timestamp()
        return clock.seconds(start, start + 2 * DAY)

    assert day(date(2026, 3, 8)) == 23 * H
    assert day(date(2026, 11, 1)) == 25 * H
    assert day(date(2026, 11, 8)) == 24 * H
    # an interval that starts in the hour skipped in spring
    short = BusinessClock(Calendar(timezone="America/New_York", sunday=["02:30-04:00"]))
    start = datetime(2026, 3, 8, tzinfo=ny).timestamp()
    assert short.seconds(start, start + DAY) == 0.5 * H  # 03:30 (new time) to 04:00


def test_split_shift_midnight_holiday_and_a_closed_weekend() -> None:
    cal = Calendar(
        timezone="Asia/Seoul",
        monday=["09:00-12:00", "13:00-18:00"], tuesday=["09:00-12:00", "13:00-18:00"],
        wednesday=["09:00-12:00", "13:00-18:00"], thursday=["09:00-12:00", "13:00-18:00"],
        friday=["09:00-12:00", "13:00-18:00", "22:00-24:00"], saturday=["00:00-06:00"],
        holidays=[date(2026, 12, 25)],
    )  # fmt: skip
    clock = BusinessClock(cal)
    # the lunch break does not count
    assert clock.seconds(ts("2026-11-02T11:00+09:00"), ts("2026-11-02T14:00+09:00")) == 2 * H
    # across midnight, Friday night into Saturday morning
    assert clock.seconds(ts("2026-11-06T23:00+09:00"), ts("2026-11-07T01:00+09:00")) == 2 * H
    # a contact that spans the closed weekend: Saturday 06:00 to Monday 09:00 is closed
    assert clock.seconds(ts("2026-11-06T17:00+09:00"), ts("2026-11-09T10:00+09:00")) == (
        1 * H + 2 * H + 6 * H + 1 * H
    )
    assert clock.add(ts("2026-11-06T17:00+09:00"), 10 * H) == ts("2026-11-09T10:00+09:00")
    # Christmas (a Friday) is closed all day, night shift included
    assert clock.seconds(ts("2026-12-25T00:00+09:00"), ts("2026-12-26T00:00+09:00")) == 0
    assert clock.seconds(ts("2026-12-24T17:00+09:00"), ts("2026-12-28T10:00+09:00")) == (
        1 * H + 6 * H + 1 * H
    )
    assert clock.seconds(ts("2026-11-02T14:00+09:00"), ts("2026-11-02T11:00+09:00")) == 0


# --- the engine uses them -----------------------------------------------------------------------


def queued_call(log: Log, c: str, t: float, queue: str, wait: float, **kw: Any) -> None:
    log.add(t, "contact.started", c, tenant="bank", **kw)
    log.add(t, "queue.entered", c, tenant="bank", queue=queue, **kw)
    log.add(t + wait, "agent.connected", c, tenant="bank", queue=queue, agent_id="a")
    log.add(t + wait + 60, "contact.ended", c, tenant="bank", queue=queue, agent_id="a",
            ended_by="agent", resolved=True)  # fmt: skip


def test_service_level_and_first_response_per_queue_and_priority(tmp_path: Path) -> None:
    log = Log()
    queued_call(log, "b1", 0, "billing", 25)
    queued_call(log, "b2", 100, "billing", 50, priority=1)
    queued_call(log, "c1", 200, "cards", 25)
    config = EngineConfig(targets=[
        {"queue": "billing", "service_level_seconds": 30, "first_response_seconds": 40},
        {"queue": "billing", "priority": 1, "service_level_seconds": 60,
         "first_response_seconds": 45},
    ])  # fmt: skip
    rep = replay_log(log, tmp_path, config)
    billing, cards = row(rep, "voice", "billing"), row(rep, "voice", "cards")
    assert billing["answered_in_sl"] == 2  # 25 s within 30; 50 s within the priority's 60
    assert cards["answered_in_sl"] == 0  # 25 s over the channel's 20
    assert billing["first_response_targeted"] == 2 and billing["first_response_met"] == 1
    assert billing["first_response_sla"] == 0.5
    assert cards["first_response_targeted"] == 0 and cards["first_response_sla"] is None
    per_queue = {(t["queue"]): t for t in rep["targets"]}
    assert per_queue["billing"]["service_level_seconds"] == 30
    assert per_queue["billing"]["first_response_sla"] == 0.5
    assert per_queue["cards"]["first_response_seconds"] is None


def test_business_time_first_response_and_resolution(tmp_path: Path) -> None:
    # T0 is Monday 2026-11-02 09:00 UTC; an e-mail at Friday 16:00, answered Monday 10:00
    assert datetime(2026, 11, 2, tzinfo=UTC).weekday() == 0
    log = Log()
    fri = 4 * DAY + 7 * H
    log.add(fri, "contact.started", "m1", "email", queue="email")
    log.add(fri, "queue.entered", "m1", "email", queue="email")
    log.add(fri + 66 * H, "agent.message", "m1", "email", queue="email", agent_id="a")
    log.add(fri + 67 * H, "case.resolved", "m1", "email")
    config = EngineConfig(
        calendars={"office": {"timezone": "UTC", **OFFICE}},
        targets=[{"channel": "email", "first_response_seconds": 4 * H,
                  "resolution_seconds": 3 * H, "calendar": "office"}],
    )  # fmt: skip
    m = row(replay_log(log, tmp_path, config), "email", "email")
    assert m["first_response_seconds"]["mean"] == 66 * H  # calendar time
    assert m["first_response_business_seconds"]["mean"] == 2 * H  # Fri 16-17, Mon 9-10
    assert m["first_response_met"] == 1
    assert m["resolution_business_seconds"]["mean"] == 3 * H
    assert m["resolution_met"] == 1 and m["resolution_sla"] == 1.0
    plain = row(replay_log(log, tmp_path, EngineConfig()), "email", "email")
    assert plain["first_response_business_seconds"]["count"] == 0


def test_callbacks_stay_on_the_wall_clock_unless_a_calendar_is_named(tmp_path: Path) -> None:
    log = Log()
    fri = 4 * DAY + 7 * H  # Friday 16:00 UTC
    log.add(fri, "callback.requested", "c1", callback_id="cb1")
    log.add(fri + 66 * H, "callback.attempted", "o1", callback_id="cb1", outcome="reached")
    wall = row(replay_log(log, tmp_path), "voice")
    assert (wall["callbacks_compliant"], wall["callbacks_breached"]) == (0, 1)
    office = EngineConfig(calendars={"office": {"timezone": "UTC", **OFFICE}},
                          callback_calendar="office")  # fmt: skip
    business = row(replay_log(log, tmp_path, office), "voice")
    assert (business["callbacks_compliant"], business["callbacks_breached"]) == (1, 0)


@pytest.mark.slow
def test_one_queue_target_changes_only_that_queues_figures(tmp_path: Path) -> None:
    lines = [orjson.dumps(e) for e in simulate(SimConfig(contacts_per_day=1500, seed=3))]
    before = replay_lines(lines, tmp_path)
    config = EngineConfig(targets=[{"channel": "voice", "queue": "billing",
                                    "service_level_seconds": 60}])  # fmt: skip
    after = replay_lines(lines, tmp_path, config)
    changed = set()
    for a, b in zip(before["kpis"], after["kpis"], strict=True):
        if a["metrics"] != b["metrics"]:
            changed.add((a["channel"], a["queue"]))
            diff = {k for k in a["metrics"] if a["metrics"][k] != b["metrics"][k]}
            assert diff == {"answered_in_sl", "service_level"}, diff
    assert changed == {("voice", "billing"), ("voice", ALL), (ALL, ALL)}
    assert before["ivr"] == after["ivr"] and before["system"] == after["system"]
    assert "targets" not in before and after["targets"]


def test_service_level_low_fires_under_the_queues_own_goal() -> None:
    def fired(targets: Targets | None) -> list[str]:
        out = Events()
        rules = only("service_level_low", for_seconds=0, keep_firing_seconds=0)
        logic = AlertLogic(rules, out, None, targets)
        labels = ("bank", "voice", "billing")
        for _ in range(14):  # 70 % within service level: above 0.6, under a goal of 0.8
            logic.count("answered_in_sl", labels, 0)
        for _ in range(20):  # at least min_volume (20)
            logic.count("answered", labels, 0)
            logic.count("answered", ("bank", "voice", "cards"), 0)  # 0 %: fires either way
        ticks(logic, 60, 60)
        return sorted(e.alert.labels["queue"] for e in out.seen)

    assert fired(None) == ["cards"]
    goal = Targets(EngineConfig(targets=[{"queue": "billing", "service_level_goal": 0.8}]))
    assert fired(goal) == ["billing", "cards"]
    lax = Targets(EngineConfig(targets=[{"queue": "cards", "service_level_goal": 0.0001}]))
    assert fired(lax) == ["cards"]  # 0 % is still under any goal above 0


# --- importers map the source's priority -------------------------------------------------------

PRIORITY_2_WITHIN_60 = EngineConfig(targets=[{"priority": 2, "service_level_seconds": 60}])


def test_anonymous_bank_priority_picks_the_target(tmp_path: Path) -> None:
    from streams.inputs.importers import make_importer
    from streams.inputs.privacy import Pseudonymizer
    from streams.replay import Replay, Source
    from tests.builders import ZONE, line, tsv

    # queued 30 s (rows carry priority 2), answered at 10:00:40
    path = tsv(tmp_path, line(1, "AGENT", "10:00:00", "10:00:10", "10:00:10", "10:00:40",
                              "10:00:40", "10:03:00"))  # fmt: skip

    def answered_in_sl(config: EngineConfig) -> int:
        importer = make_importer("anonymous-bank", Pseudonymizer("k"), ZONE)
        rep = Replay(config, ZONE).run([Source(str(path))], importer=importer)
        return int(row(rep, "voice")["answered_in_sl"])

    assert answered_in_sl(EngineConfig()) == 0  # 30 s over the voice default of 20 s
    assert answered_in_sl(PRIORITY_2_WITHIN_60) == 1


def test_connect_queue_priority_and_cdr_priority_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.inputs.importers import make_importer
    from streams.inputs.privacy import Pseudonymizer
    from streams.replay import Replay, Source
    from tests.builders import BYE, at, ctr

    records = [
        ctr("c1", at(20), InitiationTimestamp=at(0), DisconnectTimestamp=at(5),
            DisconnectReason=BYE, QueuePriority=2,
            Queue={"Name": "billing", "EnqueueTimestamp": at(0), "DequeueTimestamp": at(0, 30)},
            Agent={"Username": "kim", "ConnectedToAgentTimestamp": at(0, 30)}),
        ctr("c2", at(20), InitiationTimestamp=at(1), DisconnectTimestamp=at(5),
            DisconnectReason=BYE, QueuePriority=50,
            Queue={"Name": "billing", "EnqueueTimestamp": at(1), "DequeueTimestamp": at(1, 30)},
            Agent={"Username": "lee", "ConnectedToAgentTimestamp": at(1, 30)}),
    ]  # fmt: skip
    path = tmp_path / "ctr.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    importer = make_importer("connect-ctr", Pseudonymizer("k"))
    rep = Replay(PRIORITY_2_WITHIN_60, ZoneInfo("UTC")).run([Source(str(path))], importer=importer)
    assert row(rep, "voice", "billing")["answered_in_sl"] == 1  # c1 only: c2's 50 is left out
    assert rep["input"]["sources"][0]["import"]["warnings"] == {"queue_priority_not_0_to_9": 1}

    from cc_monitor.cli import main

    mapping = ('time_format = "iso"\n[columns]\ncontact_id = "id"\nstarted = "start"\n'
               'queued = "queued"\nanswered = "answer"\nended = "end"\nagent_id = "agent"\n'
               'priority = "prio"\nqueue = "queue"\n')  # fmt: skip
    (tmp_path / "map.toml").write_text(mapping)
    (tmp_path / "calls.csv").write_text(
        "id,start,queued,answer,end,agent,prio,queue\n"
        "a1,2026-11-02T09:00:00Z,2026-11-02T09:00:00Z,2026-11-02T09:00:30Z,"
        "2026-11-02T09:05:00Z,kim,2,cards\n"
        "a2,2026-11-02T09:01:00Z,2026-11-02T09:01:00Z,2026-11-02T09:01:30Z,"
        "2026-11-02T09:05:00Z,lee,high,cards\n"
    )
    cfg = tmp_path / "cc.toml"
    cfg.write_text("[[engine.targets]]\npriority = 2\nservice_level_seconds = 60\n")
    capsys.readouterr()
    args = ["replay", str(tmp_path / "calls.csv"), "--format", "cdr", "--mapping",
            str(tmp_path / "map.toml"), "--json", "-", "--quiet"]  # fmt: skip
    assert main(["--config", str(cfg), *args]) == 0
    rep = orjson.loads(capsys.readouterr().out)
    assert row(rep, "voice", "cards")["answered_in_sl"] == 1
    assert rep["input"]["sources"][0]["import"]["warnings"] == {"priority_not_0_to_9": 1}


@pytest.mark.slow
def test_the_documented_example_file_runs_and_does_what_the_docs_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cc_monitor.cli import main

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    part = doc[doc.index("## Targets per queue and priority") :]
    example = part[part.index("```toml") + len("```toml") : part.index("```\n", 10)]
    cfg = tmp_path / "cc.toml"
    cfg.write_text(example)
    log = tmp_path / "day.jsonl"
    assert main(["simulate", "--contacts-per-day", "800", "-o", str(log)]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "replay", str(log), "--json", "-", "--quiet"]) == 0
    rep = orjson.loads(capsys.readouterr().out)
    targets = {(t["channel"], t["queue"]): t for t in rep["targets"]}
    billing, loans, email = targets["voice", "billing"], targets["voice", "loans"], targets[
        "email", "email"]  # fmt: skip
    assert (billing["service_level_seconds"], billing["service_level_goal"]) == (30, 0.9)
    assert (loans["service_level_seconds"], loans["service_level_goal"]) == (20, 0.8)
    assert loans["calendar"] == "office" and loans["first_response_sla"] is not None
    assert email["calendar"] == "office" and email["resolution_sla"] is not None
    t = Targets(EngineConfig.model_validate(rep["config"]["engine"]))
    high = t.of("bank", "voice", "billing", 2)
    assert (high.service_level_seconds, high.first_response_seconds) == (30, 60)
    assert high.resolution_seconds == 86400
    assert row(rep, "email", "email")["first_response_business_seconds"]["count"] > 0
