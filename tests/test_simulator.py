"""The simulator: deterministic, sorted, and it contains what it promises."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_monitor.simulator import SimConfig, lines, simulate
from kpis.catalogue import ALL
from kpis.config import EngineConfig
from kpis.decode import Decoder
from tests.helpers import replay_lines


@lru_cache(maxsize=1)
def day() -> tuple[dict[str, Any], ...]:
    return tuple(simulate(SimConfig(contacts_per_day=2000)))


def test_same_seed_same_bytes_other_seed_other_log() -> None:
    cfg = SimConfig(contacts_per_day=300)
    assert list(lines(cfg)) == list(lines(cfg))
    assert list(lines(cfg)) != list(lines(SimConfig(contacts_per_day=300, seed=8)))


def test_every_event_is_valid_and_in_time_order() -> None:
    dec = Decoder()
    ts = []
    for ev in day():
        ts.append(dec.decode(orjson.dumps(ev))[1])
    assert ts == sorted(ts)
    assert len({ev["event_id"] for ev in day()}) == len(day())


def test_the_log_covers_the_whole_vocabulary() -> None:
    types = Counter(ev["type"] for ev in day())
    assert set(types) >= {
        "contact.started", "contact.transferred", "contact.ended", "ivr.entered", "ivr.menu",
        "ivr.input", "ivr.exited", "queue.entered", "queue.abandoned", "agent.offered",
        "agent.connected", "agent.message", "customer.message", "hold.started", "hold.ended",
        "wrapup.ended", "case.resolved", "callback.requested", "callback.attempted",
        "system.status",
    }  # fmt: skip
    assert {ev["channel"] for ev in day()} == {"voice", "chat", "email", "sms", "social", "video"}


def test_four_level_branch_and_incident_window() -> None:
    deep = [ev for ev in day() if ev["type"] == "ivr.menu" and ev["level"] == 4]
    assert deep and {ev["menu"] for ev in deep} == {"loans.mortgage.rates"}
    status = [(ev["status"], ev["ts"]) for ev in day() if ev["type"] == "system.status"]
    assert [s for s, _ in status] == ["down", "up"]
    down = datetime.fromisoformat(status[0][1])
    up = datetime.fromisoformat(status[1][1])
    assert down == datetime(2026, 11, 2, 14, 0, tzinfo=UTC) and (up - down).seconds == 1800
    voice_starts = [
        datetime.fromisoformat(ev["ts"]) for ev in day()
        if ev["type"] == "contact.started" and ev["channel"] == "voice"
        and ev.get("initiation") == "inbound"
    ]  # fmt: skip
    assert not [t for t in voice_starts if down <= t < up]  # the channel goes silent
    drops = [ev for ev in day() if ev["type"] == "contact.ended" and ev["ended_by"] == "system"
             and ev.get("reason") == "trunk_down"]  # fmt: skip
    assert len(drops) >= 5


@pytest.mark.slow
def test_callbacks_some_reserved_some_never_called_back() -> None:
    week = list(simulate(SimConfig(contacts_per_day=2000, days=2, seed=3)))  # 5 never called
    requests = [ev for ev in week if ev["type"] == "callback.requested"]
    attempts = {ev["callback_id"] for ev in week if ev["type"] == "callback.attempted"}
    assert any("reserved_for" in ev for ev in requests)
    assert any(ev["callback_id"] not in attempts for ev in requests)


def test_cases_span_contacts_and_channels() -> None:
    channels: dict[str, set[str]] = {}
    contacts: dict[str, set[str]] = {}
    for ev in day():
        case = ev.get("case_id", ev["contact_id"])
        channels.setdefault(case, set()).add(ev["channel"])
        contacts.setdefault(case, set()).add(ev["contact_id"])
    assert any(len(c) > 1 for c in contacts.values())
    assert any(len(c) > 1 for c in channels.values())


def test_bad_lines_are_mixed_in_on_request() -> None:
    cfg = SimConfig(contacts_per_day=300, bad_lines_per_day=30, start=date(2026, 11, 3))
    dec = Decoder()
    rejected = 0
    for line in lines(cfg):
        try:
            dec.decode(line)
        except Exception:
            rejected += 1
    assert rejected > 5


@pytest.mark.slow
def test_event_ids_are_unique_across_days() -> None:
    """A case reopened twice, days apart, gets two reopen notes with ids of their own (an
    archive, which leaves repeated ids out, then replays to the same events as the log)."""
    ids = Counter(ev["event_id"] for ev in simulate(SimConfig(seed=22, days=10,
                                                              contacts_per_day=2000)))  # fmt: skip
    assert [i for i, n in ids.items() if n > 1] == []
    assert any("-reopen2-" in i for i in ids)  # the case the check is about occurs


@pytest.mark.slow
def test_queue_outcomes_add_up_and_the_abandon_reading_moves_only_abandonment(
    tmp_path: Path,
) -> None:
    """On a simulated day every queued contact ends in exactly one outcome (the simulator
    never leaves one waiting), and ``callback_request_abandons`` moves the callback requests
    into ``abandoned`` and changes nothing but abandonment and service level."""
    lines = [orjson.dumps(ev) for ev in simulate(SimConfig(contacts_per_day=2000, seed=5))]
    own = replay_lines(lines, tmp_path)
    lost = replay_lines(lines, tmp_path, EngineConfig(callback_request_abandons=True))
    requests = 0
    changed = {"abandoned", "abandon_wait_seconds", "abandonment_rate", "service_level"}
    for a, b in zip(own["kpis"], lost["kpis"], strict=True):
        m, n = a["metrics"], b["metrics"]
        if a["period"] == "total":  # a day's row may count the entry and the outcome apart
            outcomes = m["answered"] + m["abandoned"] + m["queue_callback_requests"] + m["dropped"]
            assert outcomes <= m["queued"] <= outcomes + m["contacts_open_at_end"], a
        assert n["abandoned"] == m["abandoned"] + m["queue_callback_requests"]
        assert {k: v for k, v in m.items() if k not in changed} == {
            k: v for k, v in n.items() if k not in changed
        }
        if (a["period"], a["tenant"], a["channel"], a["queue"]) == ("total", ALL, ALL, ALL):
            requests = m["queue_callback_requests"]
    assert requests > 0


def test_agents_work_shifts_with_breaks_and_the_shortfall_scenario() -> None:
    """Each agent logs in at its shift's start, takes two breaks and a lunch, logs out nine
    hours later; contacts are taken only on shift; day one has the shortfall scenario."""
    states: dict[str, list[tuple[str, str]]] = {}
    connected: dict[str, list[str]] = {}
    for ev in day():
        if ev["type"] == "agent.state":
            states.setdefault(ev["agent_id"], []).append((ev["ts"][11:16], ev["state"]))
        elif ev["type"] == "agent.connected":
            connected.setdefault(ev["agent_id"], []).append(ev["ts"])
    early = states["billing-a000"]
    assert [s for _, s in early] == ["available", "away", "available", "away", "available",
                                     "away", "available", "offline"]  # fmt: skip
    assert early[0][0] == "07:00" and early[-1][0] == "16:00"
    assert any(s == "away" and t == "10:00" for t, s in states["billing-a002"])  # called away

    def state_at(seq: list[tuple[str, str]], hh_mm: str) -> str:
        return ([s for t, s in seq if t <= hh_mm] or ["offline"])[-1]

    loans = [state_at(v, "16:10") for a, v in states.items() if a.startswith("loans-")]
    assert "away" in loans and set(loans) <= {"away", "offline"}  # the team meeting
    # every agent that takes contacts is one the log has logged in
    assert set(connected) <= set(states)
    nights = [a for a, v in states.items() if v[0] == ("00:00", "available")]
    assert nights  # the night shift under way when the log starts


@pytest.mark.slow
def test_occupancy_and_service_look_like_a_contact_centre(tmp_path: Path) -> None:
    rep = replay_lines([orjson.dumps(e) for e in day()], tmp_path)
    voice = next(r["metrics"] for r in rep["kpis"] if r["period"] == "total"
                 and (r["tenant"], r["channel"], r["queue"]) == (ALL, "voice", ALL))  # fmt: skip
    assert 0.35 <= voice["occupancy"] <= 0.9
    assert 0.5 <= voice["service_level"] <= 0.95
