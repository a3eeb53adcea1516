"""What agents did with each offer (kpis.rules.offers): missed offers, an agent who hung up
first, a customer who hung up on hold; per queue and per agent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import call, ev, kpi_total, report

pytestmark = pytest.mark.unit


def agents(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["agent"]: r["metrics"] for r in rep["agents"] if r["period"] == "total"
            and r["tenant"] == "*"}  # fmt: skip


def test_an_offer_another_agent_takes_is_missed_one_the_customer_ends_is_not() -> None:
    lines = [
        # c1: offered to a1 (rang), then a2, who took it
        ev("contact.started", "c1", 0),
        ev("queue.entered", "c1", 1),
        ev("agent.offered", "c1", 2, agent_id="a1"),
        ev("agent.offered", "c1", 3, agent_id="a1"),
        ev("agent.offered", "c1", 20, agent_id="a2"),
        ev("agent.connected", "c1", 21, agent_id="a2"),
        ev("contact.ended", "c1", 300, agent_id="a2", ended_by="agent"),
        # c2: offered to a1, taken by a3 without an offer of its own
        ev("contact.started", "c2", 400),
        ev("queue.entered", "c2", 401),
        ev("agent.offered", "c2", 402, agent_id="a1"),
        ev("agent.connected", "c2", 410, agent_id="a3"),
        ev("hold.started", "c2", 500, agent_id="a3"),
        ev("contact.ended", "c2", 560, agent_id="a3", ended_by="customer"),  # on hold
        # c3: offered to a4, the customer hangs up while it rings: nobody's miss
        ev("contact.started", "c3", 600),
        ev("queue.entered", "c3", 601),
        ev("agent.offered", "c3", 602, agent_id="a4"),
        ev("queue.abandoned", "c3", 610),
        ev("contact.ended", "c3", 610, ended_by="customer"),
        # c4: a chat the agent ends: not "hung up first"
        *call("c4", 1000, channel="chat"),
    ]
    rep = report(lines)
    total = kpi_total(rep)
    assert (total["offers"], total["offers_missed"], total["offer_miss_rate"]) == (4, 2, 0.5)
    assert (total["hung_up_first"], total["hung_up_on_hold"]) == (1, 1)
    a = agents(rep)
    assert (a["a1"]["agent_offers"], a["a1"]["agent_offers_missed"]) == (2, 2)
    assert a["a1"]["agent_offer_miss_rate"] == 1.0 and a["a2"]["agent_offer_miss_rate"] == 0.0
    assert a["a2"]["agent_hung_up_first"] == 1 and a["a3"]["agent_hung_up_on_hold"] == 1
    assert a["a4"]["agent_offers_missed"] == 0


def test_a_source_without_offers_shows_missed_offers_not_measured() -> None:
    from cc_monitor.render import AGENT_HEADER, agent_rows

    rep = report([*call("c1", 0), *call("c2", 1000, agent="a2")])
    rows, _ = agent_rows(rep)
    column = AGENT_HEADER.index("missed offers")
    assert {r[column] for r in rows} == {"–"}
    assert kpi_total(rep)["offer_miss_rate"] is None


def test_time_away_is_split_by_pause_reason_and_bounded() -> None:
    """agent.state away with a reason: the agent's away time per reason (a pause for another
    reason ends the stretch; a contact taken on a break keeps its reason), report only."""
    from kpis.config import EngineConfig, ReasonList

    st = "agent.state"
    lines = [
        ev(st, "s", 0, agent_id="a1", state="available"),
        ev(st, "s", 600, agent_id="a1", state="away", reason="break"),
        ev(st, "s", 900, agent_id="a1", state="away", reason="lunch"),  # 5 min break
        ev(st, "s", 2700, agent_id="a1", state="available"),  # 30 min lunch
        ev(st, "s", 3000, agent_id="a1", state="away", reason="CALL-ID-9"),  # not in the list
        ev(st, "s", 3600, agent_id="a1", state="offline"),
    ]
    config = EngineConfig(pause_reasons=(ReasonList(tenant="bank", codes=("break", "lunch")),))
    rep = report(lines, config)
    got = {(r["agent"], r["reason"]): r["metrics"]["agent_pause_seconds"] for r in
           rep["agent_pauses"] if r["period"] == "total" and r["tenant"] == "*"}  # fmt: skip
    assert {k: (v["count"], v["mean"]) for k, v in got.items()} == {
        ("a1", "break"): (1, 300.0), ("a1", "lunch"): (1, 1800.0), ("a1", "unknown"): (1, 600.0),
        ("*", "break"): (1, 300.0), ("*", "lunch"): (1, 1800.0), ("*", "unknown"): (1, 600.0),
    }  # fmt: skip
    assert rep["data_quality"]["unknown_pause_reason"] == 1
    away = next(r for r in rep["agents"] if r["period"] == "total" and r["tenant"] == "*")
    assert away["metrics"]["agent_away_seconds"]["count"] == 3  # the reasons split it, not lose it


def test_queue_log_pause_reasons_become_agent_state_reasons(tmp_path: Any) -> None:
    path = tmp_path / "queue_log"
    path.write_text(
        "1762074000|NONE|NONE|Agent/1001|AGENTLOGIN|SIP/1001\n"
        "1762074000|NONE|sales|Agent/1001|ADDMEMBER|\n"
        "1762074600|NONE|NONE|Agent/1001|PAUSE|lunch\n"
        "1762076400|NONE|NONE|Agent/1001|UNPAUSE|\n"
        "1762077000|NONE|NONE|Agent/1001|PAUSE|" + "x" * 70 + "\n"
        "1762077600|NONE|NONE|Agent/1001|AGENTLOGOFF|SIP/1001|3600\n"
    )
    from zoneinfo import ZoneInfo

    from kpis.config import EngineConfig
    from streams.inputs.importers import make_importer
    from streams.inputs.privacy import Pseudonymizer
    from streams.replay import Replay, Source

    rep = Replay(EngineConfig(), ZoneInfo("UTC")).run(
        [Source(str(path))], importer=make_importer("queue_log", Pseudonymizer(""))
    )
    pauses = {r["reason"]: r["metrics"]["agent_pause_seconds"]["mean"] for r in
              rep["agent_pauses"] if r["period"] == "total" and r["agent"] == "*"}  # fmt: skip
    assert pauses == {"lunch": 1800.0}
    assert rep["input"]["sources"][0]["import"]["warnings"] == {"pause_reason_too_long": 1}
