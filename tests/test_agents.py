"""Agent states, occupancy and per-agent figures (replays: kpis.rules.agents)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import T, log, replay
from tests.helpers import ALL, Log, replay_log, row


def agent_row(rep: dict, agent: str, tenant: str = ALL) -> dict:  # type: ignore[type-arg]
    return next(r["metrics"] for r in rep["agents"] if r["period"] == "total"
                and r["agent"] == agent and r["tenant"] == tenant)  # fmt: skip


def test_states_time_in_each_occupancy_and_per_agent_handling(tmp_path: Path) -> None:
    log_ = Log()  # T0 = 09:00
    log_.add(0, "agent.state", "agent:a", agent_id="a", state="available", queue="billing")
    log_.add(50, "contact.started", "c1")
    log_.add(50, "queue.entered", "c1", queue="billing")
    log_.add(100, "agent.connected", "c1", queue="billing", agent_id="a")
    log_.add(250, "hold.started", "c1", queue="billing", agent_id="a")
    log_.add(280, "hold.ended", "c1", queue="billing", agent_id="a")
    log_.add(400, "contact.ended", "c1", queue="billing", agent_id="a", ended_by="agent")
    log_.add(460, "wrapup.ended", "c1", queue="billing", agent_id="a")
    log_.add(1000, "agent.state", "agent:a", agent_id="a", state="away")
    log_.add(1300, "agent.state", "agent:a", agent_id="a", state="available")
    log_.add(1800, "agent.state", "agent:a", agent_id="a", state="offline")
    rep = replay_log(log_, tmp_path)
    a = agent_row(rep, "a")
    assert a["agent_available_seconds"]["count"] == 3  # 0-100, 460-1000, 1300-1800
    assert a["agent_available_seconds"]["mean"] == (100 + 540 + 500) / 3
    assert a["agent_busy_seconds"]["mean"] == 300
    assert a["agent_after_work_seconds"]["mean"] == 60
    assert a["agent_away_seconds"]["mean"] == 300
    assert a["agent_occupancy"] == round(360 / 1500, 6)
    assert a["agent_utilisation"] == round(360 / 1800, 6)  # the 300 s away count as logged in
    assert a["agent_handled"] == 1 and a["agent_handle_seconds"]["mean"] == 360
    assert a["agent_talk_seconds"]["mean"] == 270 and a["agent_hold_seconds"]["mean"] == 30
    assert a["agent_acw_seconds"]["mean"] == 60
    q = row(rep, "voice", "billing")
    assert q["agent_staffed_seconds"]["count"] >= 1
    assert q["occupancy"] == round(360 / 1500, 6)
    assert q["agents_available_peak"] == 1 and q["agents_busy_peak"] == 1
    first = next(r for r in rep["intervals"] if r["tenant"] == ALL and r["queue"] == "billing")
    assert first["staffed_agents"] == round(1500 / 1800, 3)
    assert first["busy_agents"] == round(360 / 1800, 3)
    assert first["occupancy"] == 0.24
    assert first["staffing_gap"] == round(first["required_agents"] - 1500 / 1800, 3)
    assert not any("agent" in r for r in rep["kpis"])  # never a KPI label


def test_a_queue_log_with_logins_pauses_and_calls(tmp_path: Path) -> None:
    path = log(
        tmp_path,
        f"{T}|NONE|sales|SIP/101|ADDMEMBER|",
        f"{T}|NONE|sales|SIP/102|ADDMEMBER|",
        f"{T + 10}|c1|sales|NONE|ENTERQUEUE||0101|1",
        f"{T + 20}|c1|sales|SIP/101|CONNECT|10|c1-b|3",
        f"{T + 320}|c1|sales|SIP/101|COMPLETECALLER|10|300|1",
        f"{T + 400}|NONE|sales|SIP/102|PAUSE|",
        f"{T + 500}|c2|sales|NONE|ENTERQUEUE||0102|1",
        f"{T + 505}|c2|sales|SIP/101|CONNECT|5|c2-b|1",
        f"{T + 605}|c2|sales|SIP/101|COMPLETEAGENT|5|100|1",
        f"{T + 700}|NONE|sales|SIP/102|UNPAUSE|",
        f"{T + 1800}|NONE|sales|SIP/101|REMOVEMEMBER|",
        f"{T + 1800}|NONE|sales|SIP/102|REMOVEMEMBER|",
    )
    rep = replay(path)
    one, two = agent_row(rep, "SIP/101"), agent_row(rep, "SIP/102")
    assert one["agent_handled"] == 2 and one["agent_busy_seconds"]["mean"] == (300 + 100) / 2
    assert one["agent_available_seconds"]["mean"] == pytest.approx((20 + 185 + 1195) / 3, abs=1e-3)
    assert one["agent_occupancy"] == round(400 / 1800, 6)
    assert two["agent_away_seconds"]["mean"] == 300 and two["agent_handled"] == 0
    assert two["agent_occupancy"] == 0.0
    first = next(r for r in rep["intervals"] if r["tenant"] == ALL and r["queue"] == "sales")
    assert first["staffed_agents"] == round((1800 + 1500) / 1800, 3)
    assert first["busy_agents"] == round(400 / 1800, 3)


def test_sources_without_states_say_staffed_is_not_measured(tmp_path: Path) -> None:
    log_ = Log()
    log_.add(0, "contact.started", "c1")
    log_.add(0, "queue.entered", "c1", queue="billing")
    log_.add(10, "agent.connected", "c1", queue="billing", agent_id="a")
    log_.add(100, "contact.ended", "c1", queue="billing", agent_id="a", ended_by="agent")
    log_.add(100, "wrapup.ended", "c1", queue="billing", agent_id="a")
    rep = replay_log(log_, tmp_path)
    first = next(r for r in rep["intervals"] if r["tenant"] == ALL)
    assert first["busy_agents"] == 0.05
    assert first["staffed_agents"] is None and first["occupancy"] is None  # not measured
    assert row(rep, "voice", "billing")["occupancy"] is None
    a = agent_row(rep, "a")
    assert a["agent_handled"] == 1 and a["agent_occupancy"] is None


@pytest.mark.slow
def test_the_summary_and_html_show_agents_and_the_mean_day(tmp_path: Path) -> None:
    from cc_monitor.html import render_html
    from cc_monitor.render import render_markdown

    log_ = Log()
    log_.add(0, "agent.state", "agent:a", agent_id="a", state="available", queue="billing")
    log_.add(50, "contact.started", "c1")
    log_.add(50, "queue.entered", "c1", queue="billing")
    log_.add(100, "agent.connected", "c1", queue="billing", agent_id="a")
    log_.add(400, "contact.ended", "c1", queue="billing", agent_id="a", ended_by="agent")
    log_.add(460, "wrapup.ended", "c1", queue="billing", agent_id="a")
    log_.add(1800, "agent.state", "agent:a", agent_id="a", state="offline")
    rep = replay_log(log_, tmp_path)
    md = render_markdown(rep)
    assert "## Agents" in md and "| a | 1 | 6.0 min |" in md and "| 20.0% |" in md
    html = render_html(rep)
    assert "Intraday, per queue (the mean day)" in html and "voice / billing: agents" in html


def test_a_chat_agent_on_two_sessions_stays_busy_until_the_last_ends(tmp_path: Path) -> None:
    log_ = Log()
    log_.add(0, "agent.state", "agent:a", "chat", agent_id="a", state="available", queue="chat")
    for c, start, end in (("k1", 100, 700), ("k2", 200, 400)):
        log_.add(start - 10, "contact.started", c, "chat")
        log_.add(start - 10, "queue.entered", c, "chat", queue="chat")
        log_.add(start, "agent.connected", c, "chat", queue="chat", agent_id="a")
        log_.add(end, "contact.ended", c, "chat", queue="chat", agent_id="a", ended_by="agent")
        log_.add(end + 30, "wrapup.ended", c, "chat", queue="chat", agent_id="a")
    log_.add(1000, "agent.state", "agent:a", "chat", agent_id="a", state="offline")
    a = agent_row(replay_log(log_, tmp_path), "a")
    assert a["agent_busy_seconds"]["count"] == 1 and a["agent_busy_seconds"]["mean"] == 600
    assert a["agent_after_work_seconds"]["mean"] == 30
    assert a["agent_available_seconds"]["mean"] == (100 + 270) / 2


def test_a_login_decades_old_counts_a_bounded_stretch(tmp_path: Path) -> None:
    """Hostile or lost logout: an agent logged in in 1995 and seen again in 2026. Its stretch
    counts up to engine.agent_stretch_max_seconds (31 days), the rest as offline, as data
    quality; the intervals it spreads over stay bounded (about 1,500, not half a million)."""
    log_ = Log()
    log_.add(-31 * 365 * 86400, "agent.state", "agent:a", agent_id="a", state="available",
             queue="billing")  # fmt: skip
    log_.add(0, "agent.state", "agent:a", agent_id="a", state="offline")
    rep = replay_log(log_, tmp_path)
    assert rep["data_quality"] == {"agent_state_too_long": 1}
    assert agent_row(rep, "a")["agent_available_seconds"]["mean"] == 31 * 86400
    assert 31 * 48 <= len([r for r in rep["intervals"] if r["tenant"] == ALL]) <= 31 * 48 + 1
