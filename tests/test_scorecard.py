"""KS S 1006 scorecard and CX benchmark in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpis.scorecard import ScorecardTargets, benchmark
from tests.helpers import Log, replay_log


def simulated_report(tmp: Path) -> dict:  # type: ignore[type-arg]
    import orjson

    from cc_monitor.simulator import SimConfig, simulate
    from tests.helpers import replay_lines

    return replay_lines([orjson.dumps(e) for e in simulate(SimConfig())], tmp)


def test_scorecard_on_the_simulated_day_flags_what_the_simulator_breaks(tmp_path: Path) -> None:
    rep = simulated_report(tmp_path)
    status = {i["item"]: i["status"] for i in rep["scorecard"]}
    assert status == {
        "IVR menus at most 3 levels deep": "fail",  # the four-level loans branch
        "Same information not asked twice": "fail",  # the lost-card path
        "Agent reachable on request": "fail",
        "No machine disconnection before the agent": "fail",  # the trunk outage
        "Short initial greeting": "fail",  # the vip flow
        "IVR available 24/7": "fail",  # the trunk outage
        "Callbacks within 24 h or at the reserved time": "fail",
        "E-mail answered within its target time": "pass",
        "Unresolved contacts tracked and followed up": "pass",
        "Incidents detected and resolved": "pass",
    }
    depth = next(i for i in rep["scorecard"] if i["ks"] == "6.4.1 2)")
    assert depth["counts"]["breaches"] > 0 and len(depth["examples"]) == 5
    outage = next(i for i in rep["scorecard"] if i["ks"] == "6.4.1 1)")
    assert outage["counts"] == {"outages": 1, "downtime_seconds": 1800.0, "status_reports": 2,
                                "components": ["ivr", "trunk"]}  # fmt: skip


def test_a_clean_log_passes_and_unmeasured_items_say_so(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(1, "ivr.entered", "c1", flow="main", greeting_seconds=5)
    log.add(2, "ivr.menu", "c1", flow="main", menu="m", level=1)
    log.add(5, "ivr.exited", "c1", flow="main", outcome="queue")
    log.add(5, "queue.entered", "c1", queue="q")
    log.add(10, "agent.connected", "c1", queue="q", agent_id="a")
    log.add(100, "contact.ended", "c1", queue="q", agent_id="a", ended_by="customer")
    log.add(120, "wrapup.ended", "c1", queue="q", agent_id="a", resolved=True)
    rep = replay_log(log, tmp_path)
    status = {i["ks"]: i["status"] for i in rep["scorecard"]}
    assert status["6.4.1 2)"] == "pass" and status["6.4.1 7)"] == "pass"
    assert status["가.(1) 6)"] == "not measured"  # no callbacks in the log
    assert status["가.(1) 5)"] == "not measured"  # no e-mail


def test_a_log_without_the_evidence_is_not_measured_never_passed(tmp_path: Path) -> None:
    """Like the real Anonymous Bank month: IVR sessions without menus, inputs, requests for an
    agent or greetings; no component status; cases never marked resolved."""
    log = Log()
    for i in range(3):
        c = f"c{i}"
        log.add(i * 100, "contact.started", c)
        log.add(i * 100 + 1, "ivr.entered", c, flow="vru")
        log.add(i * 100 + 9, "ivr.exited", c, flow="vru", outcome="queue")
        log.add(i * 100 + 9, "queue.entered", c, queue="q")
        log.add(i * 100 + 20, "agent.connected", c, queue="q", agent_id="a")
        log.add(i * 100 + 80, "contact.ended", c, queue="q", agent_id="a", ended_by="customer")
    rep = replay_log(log, tmp_path)
    status = {i["item"]: i["status"] for i in rep["scorecard"]}
    for item in ("IVR menus at most 3 levels deep", "Same information not asked twice",
                 "Agent reachable on request", "Short initial greeting", "IVR available 24/7",
                 "Unresolved contacts tracked and followed up"):  # fmt: skip
        assert status[item] == "not measured", item
    assert status["No machine disconnection before the agent"] == "pass"  # IVR sessions seen
    depth = next(i for i in rep["scorecard"] if i["ks"] == "6.4.1 2)" and "menus" in i["item"])
    assert depth["counts"] == {"breaches": 0, "ivr_entries": 3, "ivr_menu_visits": 0}


def test_benchmark_levels() -> None:
    def report(frt_h: float, one_touch: float, aht_min: float) -> dict:  # type: ignore[type-arg]
        def m(mean: float | None) -> dict:  # type: ignore[type-arg]
            return {"count": 1, "mean": mean, "p50": mean, "p90": mean}

        total = {"first_response_seconds": m(frt_h * 3600), "resolution_seconds": m(None)}
        voice = {"one_touch_rate": one_touch, "handle_seconds": m(aht_min * 60)}
        rows = [
            {"period": "total", "tenant": "*", "channel": "*", "queue": "*", "metrics": total},
            {"period": "total", "tenant": "*", "channel": "voice", "queue": "*", "metrics": voice},
        ]
        return {"kpis": rows}

    got = {b["kpi"]: (b["centre"], b["level"]) for b in benchmark(report(7.0, 0.9, 13.0))}
    assert got["first_response_time"] == (7.0, "between")  # 6.6 < 7.0 <= 8.9
    assert got["one_touch_resolution_phone"] == (0.9, "champion")
    assert got["handle_time_phone"] == (13.0, "below starters")
    assert got["resolution_time"] == (None, "not measured")
    assert got["handle_time_chat"] == (None, "not measured")


def test_targets_are_validated() -> None:
    with pytest.raises(ValueError):
        ScorecardTargets(callback_compliance=2)
