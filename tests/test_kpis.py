"""Every KPI of SPEC section 4 on hand-written logs, with expected values computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpis.config import DAY, EngineConfig
from tests.helpers import Log, ivr_row, replay_log, row


def voice_call(
    log: Log,
    c: str,
    start: float,
    *,
    queue_at: float,
    answer_at: float,
    end_at: float,
    wrap_at: float,
    agent: str = "a1",
    queue: str = "billing",
    case: str | None = None,
) -> None:
    log.add(start, "contact.started", c, case_id=case)
    log.add(start + 1, "ivr.entered", c, case_id=case, flow="main")
    log.add(queue_at, "ivr.exited", c, case_id=case, flow="main", outcome="queue")
    log.add(queue_at, "queue.entered", c, case_id=case, queue=queue)
    log.add(answer_at, "agent.connected", c, case_id=case, queue=queue, agent_id=agent)
    log.add(end_at, "contact.ended", c, case_id=case, queue=queue, agent_id=agent, ended_by="agent")
    log.add(wrap_at, "wrapup.ended", c, case_id=case, queue=queue, agent_id=agent)


def test_voice_frt_starts_at_queue_not_ivr_and_queue_kpis(tmp_path: Path) -> None:
    log = Log()
    # c1: IVR 1..30, waits 45 s (out of SL); c2: waits 10 s (in SL); c3: abandons after 50 s.
    voice_call(log, "c1", 0, queue_at=30, answer_at=75, end_at=300, wrap_at=330)
    voice_call(log, "c2", 100, queue_at=120, answer_at=130, end_at=400, wrap_at=420, agent="a2")
    log.add(200, "contact.started", "c3")
    log.add(200, "queue.entered", "c3", queue="billing")
    log.add(250, "queue.abandoned", "c3", queue="billing")
    log.add(251, "contact.ended", "c3", queue="billing", ended_by="customer")
    rep = replay_log(log, tmp_path)
    m = row(rep, "voice", "billing")
    assert m["first_response_seconds"]["count"] == 2
    assert m["first_response_seconds"]["mean"] == pytest.approx((45 + 10) / 2)
    assert m["answered"] == 2 and m["abandoned"] == 1 and m["answered_in_sl"] == 1
    assert m["service_level"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["abandonment_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["answer_seconds"]["mean"] == pytest.approx(27.5)
    assert m["abandon_wait_seconds"]["mean"] == pytest.approx(50)
    ivr = ivr_row(rep, "main")
    assert ivr["ivr_time_seconds"]["count"] == 2
    assert ivr["ivr_time_seconds"]["mean"] == pytest.approx((29 + 19) / 2)
    assert row(rep, "voice")["contacts"] == 3


def test_chat_frt_measured_from_handoff_not_from_bot(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "k1", "chat")
    log.add(1, "agent.message", "k1", "chat", sender="bot")
    log.add(10, "customer.message", "k1", "chat")
    log.add(30, "queue.entered", "k1", "chat", queue="chat")
    log.add(40, "agent.connected", "k1", "chat", queue="chat", agent_id="a1")
    log.add(52, "agent.message", "k1", "chat", queue="chat", agent_id="a1")
    rep = replay_log(log, tmp_path)
    m = row(rep, "chat", "chat")
    assert m["first_response_seconds"]["mean"] == pytest.approx(22)  # 52 - 30, not 52 - 0
    assert m["answer_seconds"]["mean"] == pytest.approx(10)


def test_email_frt_without_queue_runs_from_contact_start(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "m1", "email")
    log.add(3600, "agent.message", "m1", "email", agent_id="a1", sender="bot")
    log.add(7200, "agent.message", "m1", "email", agent_id="a1")
    rep = replay_log(log, tmp_path)
    assert row(rep, "email")["first_response_seconds"]["mean"] == pytest.approx(7200)


def test_outbound_case_has_no_frt(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "o1", direction="outbound", initiation="outbound")
    log.add(5, "agent.connected", "o1", agent_id="a1")
    rep = replay_log(log, tmp_path)
    assert row(rep)["first_response_seconds"]["count"] == 0


def test_handle_time_is_talk_plus_hold_plus_acw(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(100, "agent.connected", "c1", agent_id="a1")
    log.add(200, "hold.started", "c1", agent_id="a1")
    log.add(260, "hold.ended", "c1", agent_id="a1")
    log.add(400, "contact.ended", "c1", agent_id="a1", ended_by="customer")
    log.add(460, "wrapup.ended", "c1", agent_id="a1")
    m = row(replay_log(log, tmp_path), "voice")
    assert m["handle_seconds"]["mean"] == pytest.approx(360)
    assert m["talk_seconds"]["mean"] == pytest.approx(240)
    assert m["hold_seconds"]["mean"] == pytest.approx(60)
    assert m["acw_seconds"]["mean"] == pytest.approx(60)


def test_resolution_time_and_one_touch(tmp_path: Path) -> None:
    log = Log()
    voice_call(log, "c1", 0, queue_at=20, answer_at=30, end_at=300, wrap_at=330)
    log.add(600, "case.resolved", "c1")
    voice_call(log, "c2", 0, queue_at=20, answer_at=30, end_at=300, wrap_at=330)
    log.add(320, "wrapup.ended", "c2", agent_id="a9", resolved=True)  # unmatched agent: ignored
    rep = replay_log(log, tmp_path)
    m = row(rep, "voice", "billing")
    assert m["resolved"] == 1
    assert m["resolution_seconds"]["mean"] == pytest.approx(600)
    assert m["one_touch_rate"] == 1.0
    assert rep["data_quality"] == {"unmatched_wrapup_ended": 1}


def test_resolution_from_wrapup_when_source_sends_no_case_events(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(10, "agent.connected", "c1", agent_id="a1")
    log.add(100, "contact.ended", "c1", agent_id="a1", ended_by="agent")
    log.add(130, "wrapup.ended", "c1", agent_id="a1", resolved=True)
    m = row(replay_log(log, tmp_path), "voice")
    assert m["resolved"] == 1 and m["resolution_seconds"]["mean"] == pytest.approx(130)


def test_transfer_is_not_one_touch(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(0, "queue.entered", "c1", queue="billing")
    log.add(10, "agent.connected", "c1", queue="billing", agent_id="a1")
    log.add(100, "contact.transferred", "c1", queue="billing", agent_id="a1", to_queue="general")
    log.add(101, "queue.entered", "c1", queue="general")
    log.add(111, "agent.connected", "c1", queue="general", agent_id="a2")
    log.add(150, "wrapup.ended", "c1", queue="billing", agent_id="a1")
    log.add(300, "contact.ended", "c1", queue="general", agent_id="a2", ended_by="customer")
    log.add(330, "wrapup.ended", "c1", queue="general", agent_id="a2")
    log.add(400, "case.resolved", "c1")
    rep = replay_log(log, tmp_path)
    assert row(rep, "voice")["one_touch_rate"] == 0.0
    assert row(rep, "voice", "billing")["transfer_rate"] == 1.0
    handle = row(rep, "voice")["handle_seconds"]
    assert handle["count"] == 2
    assert handle["mean"] == pytest.approx((140 + 219) / 2)  # a1: 10..150, a2: 111..330


def test_reopen_within_seven_days_is_measured_again_and_not_one_touch(tmp_path: Path) -> None:
    log = Log()
    voice_call(log, "c1", 0, queue_at=20, answer_at=30, end_at=300, wrap_at=330, case="K")
    log.add(600, "case.resolved", "c1", case_id="K")
    reopen = 3 * DAY
    log.add(reopen, "case.reopened", "c1", case_id="K")
    voice_call(log, "c2", reopen + 60, queue_at=reopen + 80, answer_at=reopen + 90,
               end_at=reopen + 500, wrap_at=reopen + 520, case="K")  # fmt: skip
    log.add(reopen + 1200, "case.resolved", "c2", case_id="K")
    rep = replay_log(log, tmp_path)
    m = row(rep, "voice")
    assert m["resolved"] == 1  # one case, its final resolution
    assert m["resolution_seconds"]["mean"] == pytest.approx(reopen + 1200)
    assert m["cases_reopened"] == 1
    assert m["one_touch_rate"] == 0.0


def test_reopen_after_seven_days_keeps_one_touch_and_opens_a_new_episode(tmp_path: Path) -> None:
    log = Log()
    voice_call(log, "c1", 0, queue_at=20, answer_at=30, end_at=300, wrap_at=330, case="K")
    log.add(600, "case.resolved", "c1", case_id="K")
    reopen = 8 * DAY
    log.add(reopen, "case.reopened", "c1", case_id="K")
    log.add(reopen + 900, "case.resolved", "c1", case_id="K")
    rep = replay_log(log, tmp_path)
    m = row(rep, "voice")
    assert m["cases_reopened"] == 0 and m["cases_reopened_late"] == 1
    assert m["resolved"] == 2
    assert m["resolution_seconds"]["count"] == 2
    assert m["resolution_seconds"]["mean"] == pytest.approx((600 + 900) / 2)
    assert m["resolved_one_touch"] == 1  # the first resolution stays one-touch
    assert row(rep, "voice", period="day", bucket="2026-11-02")["resolved_one_touch"] == 1


def test_a_late_reopen_on_another_channel_counts_where_the_case_belongs(tmp_path: Path) -> None:
    """Opened on social (queue messaging), resolved; reopened on chat after the window: the new
    episode and the late reopen count under social / messaging, not chat / -."""
    log = Log()
    log.add(0, "contact.started", "s1", channel="social", case_id="K")
    log.add(5, "queue.entered", "s1", channel="social", case_id="K", queue="messaging")
    log.add(60, "agent.message", "s1", channel="social", case_id="K", queue="messaging",
            agent_id="a", sender="human")  # fmt: skip
    log.add(600, "case.resolved", "s1", channel="social", case_id="K")
    reopen = 8 * DAY
    log.add(reopen, "case.reopened", "x9", channel="chat", case_id="K")
    log.add(reopen + 900, "case.resolved", "x9", channel="chat", case_id="K")
    rep = replay_log(log, tmp_path)
    m = row(rep, "social", "messaging")
    assert m["cases_reopened_late"] == 1 and m["resolved"] == 2
    assert m["resolution_seconds"]["mean"] == pytest.approx((600 + 900) / 2)
    assert not [r for r in rep["kpis"] if r["channel"] == "chat"]  # nothing under chat


def test_reopen_exactly_at_the_window_edge_counts_as_within(tmp_path: Path) -> None:
    log = Log()
    voice_call(log, "c1", 0, queue_at=20, answer_at=30, end_at=300, wrap_at=330, case="K")
    log.add(600, "case.resolved", "c1", case_id="K")
    log.add(600 + 7 * DAY, "case.reopened", "c1", case_id="K")
    rep = replay_log(log, tmp_path)
    assert row(rep, "voice")["cases_reopened"] == 1


def test_callback_reserved_slot_within_tolerance(tmp_path: Path) -> None:
    log = Log()
    slot = log.at(2 * 3600)
    log.add(0, "callback.requested", "c1", callback_id="cb1", reserved_for=slot)
    log.add(0, "callback.requested", "c2", callback_id="cb2", reserved_for=slot)
    log.add(0, "callback.requested", "c3", callback_id="cb3", reserved_for=slot)
    log.add(1800, "callback.attempted", "o3", callback_id="cb3", outcome="reached")  # too early
    log.add(2 * 3600 + 600, "callback.attempted", "o1", callback_id="cb1", outcome="reached")
    log.add(2 * 3600 + 1200, "callback.attempted", "o2", callback_id="cb2", outcome="reached")
    rep = replay_log(log, tmp_path)
    m = row(rep, "voice")
    assert m["callbacks_compliant"] == 1  # cb1: 10 min after the slot
    assert m["callbacks_breached"] == 2  # cb2: 20 min after; cb3: only an early attempt
    assert m["callback_compliance"] == pytest.approx(1 / 3, abs=1e-6)
    assert rep["examples"]["callbacks_breached"] == ["c2", "c3"]


def test_callback_unreserved_within_24h_and_cancelled(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "callback.requested", "c1", callback_id="cb1")
    log.add(0, "callback.requested", "c2", callback_id="cb2")
    log.add(100, "callback.attempted", "o1", callback_id="cb1", outcome="no_answer")
    log.add(5000, "callback.attempted", "o1", callback_id="cb1", outcome="reached")
    log.add(200, "callback.cancelled", "c2", callback_id="cb2")
    m = row(replay_log(log, tmp_path), "voice")
    assert m["callbacks_compliant"] == 1 and m["callbacks_breached"] == 0
    assert m["callbacks_cancelled"] == 1 and m["callback_attempts"] == 2
    assert m["callback_delay_seconds"]["mean"] == pytest.approx(5000)


def queue_with_callback_offer(log: Log) -> None:
    """Four queued calls on one case each: one answered in 10 s, one abandoned after 50 s, one
    that accepts a callback offer after 120 s and is called back an hour later, one dropped."""
    voice_call(log, "a", 0, queue_at=5, answer_at=15, end_at=100, wrap_at=120)
    log.add(0, "contact.started", "b")
    log.add(5, "queue.entered", "b", queue="billing")
    log.add(55, "queue.abandoned", "b", queue="billing")
    log.add(56, "contact.ended", "b", queue="billing", ended_by="customer")
    log.add(0, "contact.started", "c")
    log.add(5, "queue.entered", "c", queue="billing")
    log.add(125, "callback.requested", "c", queue="billing", callback_id="cb-c")
    log.add(127, "contact.ended", "c", queue="billing", ended_by="customer")
    log.add(3600, "contact.started", "o", queue="billing", case_id="c", direction="outbound",
            initiation="callback", callback_id="cb-c")  # fmt: skip
    log.add(3620, "callback.attempted", "o", case_id="c", callback_id="cb-c", outcome="reached")
    log.add(3620, "agent.connected", "o", case_id="c", queue="billing", agent_id="a2")
    log.add(0, "contact.started", "d")
    log.add(5, "queue.entered", "d", queue="billing")
    log.add(30, "contact.ended", "d", queue="billing", ended_by="system")


def test_a_callback_request_in_queue_is_its_own_outcome_not_an_abandonment(
    tmp_path: Path,
) -> None:
    log = Log()
    queue_with_callback_offer(log)
    m = row(replay_log(log, tmp_path), "voice", "billing")
    assert m["queued"] == 4
    assert (m["answered"], m["abandoned"], m["queue_callback_requests"], m["dropped"]) == (
        1, 1, 1, 1,
    )  # fmt: skip
    assert m["callbacks_requested"] == 1 and m["callbacks_compliant"] == 1
    assert m["abandonment_rate"] == pytest.approx(1 / 2)
    assert m["service_level"] == pytest.approx(1 / 2)
    assert m["abandon_wait_seconds"]["count"] == 1
    # the callback's answer is the case's first response (3,620 - 5 s); the direct figure
    # leaves it out and sits beside ASA
    assert m["first_response_seconds"]["count"] == 2
    assert m["first_response_seconds"]["mean"] == pytest.approx((10 + 3615) / 2)
    assert m["first_response_direct_seconds"]["count"] == 1
    assert m["first_response_direct_seconds"]["mean"] == pytest.approx(10)
    assert m["answer_seconds"]["mean"] == pytest.approx(10)


def test_callback_request_abandons_restores_the_other_reading(tmp_path: Path) -> None:
    log = Log()
    queue_with_callback_offer(log)
    config = EngineConfig(callback_request_abandons=True)
    m = row(replay_log(log, tmp_path, config), "voice", "billing")
    assert (m["answered"], m["abandoned"], m["queue_callback_requests"], m["dropped"]) == (
        1, 2, 1, 1,
    )  # fmt: skip
    assert m["abandonment_rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["abandon_wait_seconds"]["count"] == 2  # the callback request waited 120 s
    assert m["abandon_wait_seconds"]["mean"] == pytest.approx((50 + 120) / 2)


def test_a_callback_request_outside_a_queue_leaves_queue_counts_alone(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "c")
    log.add(1, "ivr.entered", "c", flow="main")
    log.add(20, "callback.requested", "c", callback_id="cb-c")  # offered by the IVR
    log.add(22, "contact.ended", "c", ended_by="customer")
    m = row(replay_log(log, tmp_path), "voice")
    assert m["callbacks_requested"] == 1
    assert m["queue_callback_requests"] == 0 and m["abandoned"] == 0 and m["queued"] == 0


def test_contact_crossing_midnight_is_counted_on_the_days_things_happen(tmp_path: Path) -> None:
    log = Log()
    start = 15 * 3600 - 30  # 23:59:30 (T0 is 09:00)
    log.add(start, "contact.started", "c1")
    log.add(start + 10, "queue.entered", "c1", queue="billing")
    log.add(start + 40, "agent.connected", "c1", queue="billing", agent_id="a1")  # 00:00:10
    log.add(start + 300, "contact.ended", "c1", queue="billing", agent_id="a1", ended_by="agent")
    log.add(start + 360, "wrapup.ended", "c1", queue="billing", agent_id="a1")
    rep = replay_log(log, tmp_path)
    day1 = row(rep, "voice", period="day", bucket="2026-11-02")
    day2 = row(rep, "voice", "billing", period="day", bucket="2026-11-03")
    assert day1["contacts"] == 1
    assert day2["answered"] == 1 and day2["answer_seconds"]["mean"] == pytest.approx(30)
    assert day2["handle_seconds"]["mean"] == pytest.approx(320)
    # In Seoul (UTC+9) the whole contact falls on 3 November.
    seoul = replay_log(log, tmp_path, tz="Asia/Seoul")
    assert {r["bucket"] for r in seoul["kpis"] if r["period"] == "day"} == {"2026-11-03"}


def test_orphaned_contact_is_closed_after_its_idle_timeout(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "k1", "chat")
    log.add(5, "customer.message", "k1", "chat")
    log.add(0, "contact.started", "k2", "chat")  # never ends either, but the log ends first
    log.add(DAY + 200, "contact.started", "k3", "chat")
    log.add(DAY + 210, "contact.ended", "k3", "chat", ended_by="customer")
    rep = replay_log(log, tmp_path)
    m = row(rep, "chat")
    assert m["contacts_orphaned"] == 2  # k1 idle since 5 s, k2 since 0: both past 24 h
    assert m["contacts_open_at_end"] == 0
    assert rep["examples"]["contacts_orphaned"] == ["k2", "k1"]
    short = replay_log(log, tmp_path, EngineConfig(contact_idle_timeout_seconds={"chat": 3 * DAY}))
    assert row(short, "chat")["contacts_orphaned"] == 0
    assert row(short, "chat")["contacts_open_at_end"] == 2


def test_waiting_peak_and_queue_at_end(tmp_path: Path) -> None:
    log = Log()
    for i in range(3):
        log.add(i, "contact.started", f"c{i}")
        log.add(i, "queue.entered", f"c{i}", queue="billing")
    log.add(10, "agent.connected", "c0", queue="billing", agent_id="a1")
    rep = replay_log(log, tmp_path)
    assert row(rep, "voice", "billing")["waiting_peak"] == 3
    assert rep["queues_at_end"] == [
        {"tenant": "-", "channel": "voice", "queue": "billing", "waiting": 2,
         "oldest_wait_seconds": 9.0, "past_target": 0}
    ]  # fmt: skip


def test_ivr_rule_counters(tmp_path: Path) -> None:
    log = Log()
    c = "c1"  # four levels deep, account number asked twice, routed to an agent
    log.add(0, "contact.started", c)
    log.add(1, "ivr.entered", c, flow="main", greeting_seconds=20)
    for level, menu in enumerate(("main", "loans", "loans.mortgage", "loans.mortgage.rates"), 1):
        log.add(1 + level, "ivr.menu", c, flow="main", menu=menu, level=level)
    log.add(6, "ivr.menu", c, flow="main", menu="loans.mortgage.rates", level=4)  # same: once
    log.add(7, "ivr.input", c, flow="main", menu="loans", requested="account_number")
    log.add(8, "ivr.input", c, flow="main", menu="loans.mortgage.rates", requested="account_number")
    log.add(9, "ivr.exited", c, flow="main", outcome="queue")
    log.add(9, "queue.entered", c, queue="loans")
    log.add(30, "contact.ended", c, queue="loans", ended_by="system")  # dropped in queue
    d = "c2"  # dropped by the system in the IVR
    log.add(0, "contact.started", d)
    log.add(1, "ivr.entered", d, flow="main", greeting_seconds=5)
    log.add(2, "ivr.menu", d, flow="main", menu="main", level=1)
    log.add(4, "contact.ended", d, ended_by="system")
    e = "c3"  # asked for an agent, IVR hung up on the request
    log.add(0, "contact.started", e)
    log.add(1, "ivr.entered", e, flow="main")
    log.add(3, "ivr.exited", e, flow="main", outcome="hang_up", agent_requested=True)
    log.add(3, "contact.ended", e, ended_by="customer")
    f = "o1"  # outbound call the system ends: not a KS S 1006 breach
    log.add(0, "contact.started", f, direction="outbound", initiation="callback")
    log.add(20, "contact.ended", f, ended_by="system")
    rep = replay_log(log, tmp_path)
    assert ivr_row(rep, "main", "loans.mortgage.rates")["ivr_depth_exceeded"] == 1
    assert ivr_row(rep, "main", "loans.mortgage.rates")["ivr_repeated_input"] == 1
    assert ivr_row(rep, "main")["ivr_disconnected_before_handoff"] == 2
    assert ivr_row(rep, "main", "main")["ivr_disconnected_before_handoff"] == 1
    assert ivr_row(rep)["ivr_disconnected_before_handoff"] == 2
    assert ivr_row(rep, "main")["ivr_agent_request_not_routed"] == 1
    assert ivr_row(rep, "main")["ivr_greeting_too_long"] == 1
    assert ivr_row(rep, "main")["ivr_entries"] == 3
    assert row(rep, "voice", "loans")["dropped"] == 1
    assert rep["examples"]["ivr_disconnected_before_handoff"] == ["c2", "c1"]


def test_ivr_containment(tmp_path: Path) -> None:
    log = Log()
    for i, outcome in enumerate(("self_served", "self_served", "queue", "hang_up")):
        log.add(i, "ivr.entered", f"c{i}", flow="main")
        log.add(i + 30, "ivr.exited", f"c{i}", flow="main", outcome=outcome)
    rep = replay_log(log, tmp_path)
    assert ivr_row(rep, "main")["containment"] == 0.5
    assert rep["data_quality"] == {"contact_without_start": 4}


def test_system_status_downtime(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "system.status", "sys", component="trunk", status="down")
    log.add(1800, "system.status", "sys", component="trunk", status="up")
    rep = replay_log(log, tmp_path)
    (sys_row,) = [r for r in rep["system"] if r["period"] == "total"]
    assert sys_row["component"] == "trunk"
    assert sys_row["metrics"]["system_down"] == 1
    assert sys_row["metrics"]["system_downtime_seconds"]["mean"] == 1800


def test_percentiles_interpolate_between_ranks(tmp_path: Path) -> None:
    log = Log()
    for i, wait in enumerate((10, 20, 30)):
        c = f"c{i}"
        log.add(i * 100, "contact.started", c)
        log.add(i * 100, "queue.entered", c, queue="q")
        log.add(i * 100 + wait, "agent.connected", c, queue="q", agent_id="a")
    stats = row(replay_log(log, tmp_path), "voice", "q")["answer_seconds"]
    assert stats == {"count": 3, "mean": 20.0, "p50": 20.0, "p90": 28.0}


def test_an_event_after_a_contacts_end_is_not_a_new_contact(tmp_path: Path) -> None:
    """The simulator once sent an IVR menu 4 s after the system hung up: it opened a second
    contact. An event of an ended contact is counted as data quality and changes nothing."""
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(1, "ivr.entered", "c1", flow="main")
    log.add(2, "ivr.menu", "c1", flow="main", menu="m", level=1)
    log.add(10, "contact.ended", "c1", ended_by="system")
    log.add(14, "ivr.menu", "c1", flow="main", menu="m2", level=2)
    log.add(15, "customer.message", "c1")
    rep = replay_log(log, tmp_path)
    assert row(rep, "voice")["contacts"] == 1
    assert rep["data_quality"] == {"after_contact_end": 2}
    ivr = next(r for r in rep["ivr"] if r["period"] == "total" and r["menu"] == "*"
               and r["flow"] == "*")  # fmt: skip
    assert ivr["metrics"]["ivr_menu_visits"] == 1
    # past the allowed lateness the id is forgotten (memory follows open contacts)
    log.add(10 + 300, "queue.entered", "c1", queue="q")
    rep = replay_log(log, tmp_path)
    assert rep["data_quality"] == {"after_contact_end": 2, "contact_without_start": 1}


def test_a_transferring_agents_part_in_its_own_queue(tmp_path: Path) -> None:
    """A billing agent talks 10 min, then transfers to loans, whose agent talks 2 min: the
    queue handle time (the contact's, at each part's end) counts both parts in loans; the
    segment reading counts each part in the queue it served."""
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(0, "queue.entered", "c1", queue="billing")
    log.add(5, "agent.connected", "c1", queue="billing", agent_id="a")
    log.add(605, "contact.transferred", "c1", queue="billing", agent_id="a")
    log.add(605, "queue.entered", "c1", queue="loans")
    log.add(610, "agent.connected", "c1", queue="loans", agent_id="b")
    log.add(730, "contact.ended", "c1", queue="loans", agent_id="b", ended_by="customer")
    log.add(730, "wrapup.ended", "c1", queue="loans", agent_id="a")
    log.add(730, "wrapup.ended", "c1", queue="loans", agent_id="b")
    rep = replay_log(log, tmp_path)
    loans, billing = row(rep, "voice", "loans"), row(rep, "voice", "billing")
    assert loans["handle_seconds"]["count"] == 2  # both parts, where the contact ended
    assert loans["segment_handle_seconds"]["count"] == 1
    assert loans["segment_handle_seconds"]["mean"] == 120
    assert billing["segment_handle_seconds"]["count"] == 1
    assert billing["segment_handle_seconds"]["mean"] == 725  # connect to its wrap-up's end
    assert billing["handle_seconds"]["count"] == 0
