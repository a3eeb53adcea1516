"""KS S 1006 scorecard and CX benchmark in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpis.config import EngineConfig
from kpis.scorecard import ScorecardTargets, benchmark
from tests.helpers import Log, replay_log


def simulated_report(tmp: Path) -> dict:  # type: ignore[type-arg]
    import orjson

    from cc_monitor.simulator import SimConfig, simulate
    from tests.helpers import replay_lines

    return replay_lines([orjson.dumps(e) for e in simulate(SimConfig())], tmp)


@pytest.mark.slow
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
        "Unresolved contacts tracked and followed up": "not measured",  # one day: no timeout
        "Causes of unresolved contacts analysed": "not measured",  # likewise
        # the simulator's complaints: a few without a remedy or a severity
        "Complaints collected from every channel, managed together": "pass",
        "Each complaint under a unique id, recorded": "pass",
        "The remedy the customer asks for recorded": "fail",
        "Complaints evaluated by criteria": "fail",
        "Complaints investigated to the end": "pass",  # one day: none past 14 days
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

    got = {b["kpi"]: (b["centre"], b["level"]) for b in benchmark(report(2.5, 0.9, 13.0))}
    assert got["first_response_time"] == (2.5, "between")  # 2.2 < 2.5 <= 3.0
    assert got["one_touch_resolution_phone"] == (0.9, "champion")
    assert got["handle_time_phone"] == (13.0, "below starters")
    assert got["resolution_time"] == (None, "not measured")
    assert got["handle_time_chat"] == (None, "not measured")
    # a 5 h first response is below the starters' 3.0 h (it was once rated a champion)
    got = {b["kpi"]: b["level"] for b in benchmark(report(5.0, 0.9, 13.0))}
    assert got["first_response_time"] == "below starters"


def test_benchmark_quotes_the_seed() -> None:
    """The CX report's own figures: first response 2.2 h against 3.0 h (27 % faster),
    resolution 4.9 h against 8.9 h (45 %), channels offered 8.9 against 6.6."""
    from kpis.scorecard import BENCHMARK

    seed = Path(__file__).parents[2] / "shared" / "seeds" / "000_66d4473c01f23199.txt"
    if seed.exists():
        text = seed.read_text(encoding="utf-8")
        assert "스타터 (N=191) 챔피언 (N=31)" in text and "27%" in text
        # in the seed the first-response chart gives 3.0 then 2.2, after the resolution chart
        assert text.index("3.0\n\n2.2") > text.index("8.9\n\n4.9")
    assert BENCHMARK["first_response_time"][:2] == (2.2, 3.0)
    assert BENCHMARK["resolution_time"][:2] == (4.9, 8.9)
    assert BENCHMARK["channels_offered"][:2] == (8.9, 6.6)
    assert pytest.approx(0.27, abs=0.005) == 1 - 2.2 / 3.0


def test_channels_offered_and_the_notes(tmp_path: Path) -> None:
    log = Log()
    for i, ch in enumerate(("voice", "chat", "email")):
        log.add(i, "contact.started", f"c{i}", channel=ch)
    rep = replay_log(log, tmp_path)
    rows = {b["kpi"]: b for b in rep["benchmark"]}
    assert rows["channels_offered"]["centre"] == 3
    assert rows["channels_offered"]["level"] == "below starters"  # 3 < 6.6
    assert "estimate" in rows["customers_who_say_service_is_easy"]["note"]
    from cc_monitor.render import render_markdown

    md = render_markdown(rep)
    assert "| channels offered | 3 | 8.9 | 6.6 | below starters |" in md
    assert "companies' own estimate" in md


def test_targets_are_validated() -> None:
    with pytest.raises(ValueError):
        ScorecardTargets(callback_compliance=2)


def _emails(log: Log, n: int, answered: int, at: float = 0) -> None:
    for i in range(n):
        c = f"m{i}"
        log.add(at + i, "contact.started", c, channel="email")
        log.add(at + i, "queue.entered", c, channel="email", queue="mail")
        if i < answered:
            log.add(at + i + 600, "agent.message", c, channel="email", queue="mail",
                    agent_id="a", sender="human")  # fmt: skip


def test_emails_never_answered_are_misses_not_left_out(tmp_path: Path) -> None:
    """10 e-mails, 1 answered in time, 9 never: not a pass at 100 %, a fail at 10 %."""
    log = Log()
    _emails(log, 10, answered=1)
    log.add(3 * 86_400, "contact.started", "late-voice")  # the log runs past their 24 h target
    rep = replay_log(log, tmp_path)
    item = next(i for i in rep["scorecard"] if i["ks"] == "가.(1) 5)")
    assert item["status"] == "fail"
    c = item["counts"]
    assert (c["answered_in_time"], c["waiting_past_target_at_end"]) == (1, 9)
    assert c["within_target"] == 0.1


def test_emails_closed_by_the_idle_timeout_unanswered_are_misses(tmp_path: Path) -> None:
    log = Log()
    _emails(log, 4, answered=2)
    log.add(9 * 86_400, "contact.started", "later")  # past the e-mail idle timeout (7 days)
    rep = replay_log(log, tmp_path)
    item = next(i for i in rep["scorecard"] if i["ks"] == "가.(1) 5)")
    assert item["counts"]["never_answered"] == 2 and item["counts"]["within_target"] == 0.5
    assert item["status"] == "fail" and item["examples"] == ["m2", "m3"]


def test_emails_still_inside_their_target_are_not_yet_due(tmp_path: Path) -> None:
    log = Log()
    _emails(log, 3, answered=2)
    rep = replay_log(log, tmp_path)  # the third waits 1 h of its 24 h at the end
    item = next(i for i in rep["scorecard"] if i["ks"] == "가.(1) 5)")
    assert item["status"] == "pass" and item["counts"]["waiting_past_target_at_end"] == 0


def test_the_email_target_in_force_is_quoted(tmp_path: Path) -> None:
    from kpis.targets import TargetRule

    log = Log()
    _emails(log, 2, answered=2)
    cfg = EngineConfig(targets=[TargetRule(channel="email", service_level_seconds=4 * 3600)])
    rep = replay_log(log, tmp_path, cfg)
    item = next(i for i in rep["scorecard"] if i["ks"] == "가.(1) 5)")
    assert item["counts"]["target_seconds"] == 4 * 3600
    from cc_monitor.render import scorecard_counts

    text = scorecard_counts(item["counts"])
    assert "target 4.0 h" in text and "None" not in text and "seconds" not in text


def _case(log: Log, c: str, at: float, resolved: bool) -> None:
    log.add(at, "contact.started", c, case_id="k-" + c)
    log.add(at + 1, "queue.entered", c, case_id="k-" + c, queue="q")
    log.add(at + 5, "agent.connected", c, case_id="k-" + c, queue="q", agent_id="a")
    log.add(at + 60, "contact.ended", c, case_id="k-" + c, queue="q", agent_id="a",
            ended_by="customer")  # fmt: skip
    log.add(at + 90, "wrapup.ended", c, case_id="k-" + c, queue="q", agent_id="a",
            resolved=resolved)  # fmt: skip


def test_unresolved_follow_up_is_not_passed_on_a_short_log(tmp_path: Path) -> None:
    log = Log()
    _case(log, "c1", 0, resolved=True)
    _case(log, "c2", 100, resolved=False)
    rep = replay_log(log, tmp_path)
    item = next(i for i in rep["scorecard"] if i["ks"] == "나.(4) 1)-2)")
    assert item["status"] == "not measured"


def test_unresolved_cases_without_an_outbound_follow_up_fail(tmp_path: Path) -> None:
    log = Log()
    _case(log, "c1", 0, resolved=True)
    _case(log, "c2", 100, resolved=False)
    _case(log, "c3", 200, resolved=False)
    # the centre calls the customer of c3 back about the case
    log.add(3600, "contact.started", "o3", case_id="k-c3", direction="outbound",
            initiation="outbound")  # fmt: skip
    log.add(40 * 86_400, "contact.started", "later")  # past the 30-day case idle timeout
    rep = replay_log(log, tmp_path)
    item = next(i for i in rep["scorecard"] if i["ks"] == "나.(4) 1)-2)")
    c = item["counts"]
    assert (c["left_unresolved"], c["followed_up"], c["left_without_follow_up"]) == (2, 1, 1)
    assert item["status"] == "fail" and item["examples"] == ["c2"]


def test_unresolved_cases_all_followed_up_pass(tmp_path: Path) -> None:
    log = Log()
    _case(log, "c1", 0, resolved=True)
    _case(log, "c2", 100, resolved=False)
    log.add(3600, "contact.started", "o2", case_id="k-c2", direction="outbound",
            initiation="outbound")  # fmt: skip
    rep = replay_log(log, tmp_path)  # before the timeout: a follow-up is seen, none judged
    item = next(i for i in rep["scorecard"] if i["ks"] == "나.(4) 1)-2)")
    assert item["status"] == "not measured" and item["counts"]["followed_up"] == 1
    log.add(40 * 86_400, "contact.started", "later")
    rep = replay_log(log, tmp_path)
    item = next(i for i in rep["scorecard"] if i["ks"] == "나.(4) 1)-2)")
    assert item["status"] == "pass" and item["counts"]["left_unresolved"] == 1


def test_incidents_are_not_measured_without_evidence(tmp_path: Path) -> None:
    log = Log()
    _case(log, "c1", 0, resolved=True)
    rep = replay_log(log, tmp_path)
    item = next(i for i in rep["scorecard"] if i["ks"] == "11.4")
    assert item["status"] == "not measured"
    log.add(200, "system.status", "sys", component="trunk", status="down")
    log.add(500, "system.status", "sys", component="trunk", status="up")
    _case(log, "c2", 900, resolved=True)
    rep = replay_log(log, tmp_path)
    item = next(i for i in rep["scorecard"] if i["ks"] == "11.4")
    assert item["status"] == "pass" and item["counts"]["status_reports"] == 2


def test_scorecard_counts_never_print_none() -> None:
    from cc_monitor.render import scorecard_counts

    text = scorecard_counts({"compliance": None, "downtime_seconds": 1800.0, "target": 0.95})
    assert text == "compliance –, downtime 30.0 min, target 95.0%"


def test_the_grafana_benchmark_lines_are_the_reports() -> None:
    """The CX dashboard's champion and starter lines are the report's BENCHMARK figures (the
    first-response panel once drew the channel counts, 6.6 and 8.9)."""
    import json

    from kpis.scorecard import BENCHMARK

    path = Path(__file__).parents[1] / "deploy" / "grafana" / "dashboards" / "cx-benchmark.json"
    panels = {p["title"]: p for p in json.loads(path.read_text())["panels"]}
    title_of = {
        "first_response_time": "First response time, mean (h)",
        "resolution_time": "Resolution time, mean (h)",
        "one_touch_resolution_phone": "One-touch resolution, phone",
        "handle_time_phone": "Handle time, phone (min)",
        "handle_time_chat": "Handle time, chat (min)",
        "customers_who_say_service_is_easy": "Customers who say service is easy (CES, 1 day)",
    }
    for kpi, title in title_of.items():
        lines = {t["legendFormat"]: t["expr"] for t in panels[title]["targets"]}
        champions, starters = BENCHMARK[kpi][:2]
        assert float(lines["champions"].removeprefix("vector(").rstrip(")")) == champions, kpi
        assert float(lines["starters"].removeprefix("vector(").rstrip(")")) == starters, kpi
