"""Customer surveys: CSAT, CES, NPS, response rate, one-touch versus multi-touch, per agent,
late answers counted on the contact's day, and the csat_low alert's minimum of answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.evaluator import AlertLogic
from kpis.config import DAY, EngineConfig
from tests.builders import Events, only, ticks
from tests.helpers import ALL, Log, replay_log, row


def handled(log: Log, c: str, t: float, agent: str = "a1", case: str | None = None,
            queue: str = "billing") -> None:  # fmt: skip
    log.add(t, "contact.started", c, case_id=case, tenant="bank")
    log.add(t, "queue.entered", c, case_id=case, tenant="bank", queue=queue)
    log.add(t + 10, "agent.connected", c, case_id=case, tenant="bank", queue=queue, agent_id=agent)
    log.add(t + 100, "contact.ended", c, case_id=case, tenant="bank", queue=queue,
            agent_id=agent, ended_by="agent")  # fmt: skip


def answer(log: Log, t: float, c: str, survey: str, score: int, scale: int, **kw: Any) -> None:
    log.add(t, "survey.answered", c, survey=survey, score=score, scale=scale, **kw)


def test_csat_ces_nps_and_response_rate(tmp_path: Path) -> None:
    log = Log()
    for i in range(5):
        handled(log, f"c{i}", i * 200)
    answer(log, 1000, "c0", "csat", 5, 5)
    answer(log, 1001, "c1", "csat", 4, 5)  # top two boxes of five: 4 and 5
    answer(log, 1002, "c2", "csat", 3, 5)
    answer(log, 1003, "c0", "ces", 5, 7)  # seven points: above the midpoint (4) is easy
    answer(log, 1004, "c1", "ces", 4, 7)
    answer(log, 1005, "c2", "ces", 7, 7)
    answer(log, 1006, "c0", "nps", 10, 10)
    answer(log, 1007, "c1", "nps", 9, 10)
    answer(log, 1008, "c2", "nps", 7, 10)  # passive
    answer(log, 1009, "c3", "nps", 3, 10, verbatim="never again")
    rep = replay_log(log, tmp_path)
    m = row(rep, "voice", "billing")
    assert (m["survey_csat_answers"], m["survey_csat_satisfied"], m["csat"]) == (3, 2, 0.666667)
    assert (m["survey_ces_answers"], m["survey_ces_easy"]) == (3, 2)
    assert m["ces_easy"] == 0.666667 and m["survey_ces_score"]["mean"] == pytest.approx(
        16 / 3, abs=1e-3
    )
    assert m["nps"] == pytest.approx((2 - 1) / 4)  # +25 points
    assert m["surveys_answered"] == 4 and m["handled"] == 5
    assert m["survey_response_rate"] == 0.8
    assert "never again" not in str(rep)  # the verbatim is never kept


def test_a_late_answer_counts_on_the_contacts_day_queue_and_agent(tmp_path: Path) -> None:
    log = Log()
    handled(log, "c1", 0, agent="kim")  # Monday
    handled(log, "c2", DAY, agent="lee", queue="cards")  # Tuesday
    answer(log, 3 * DAY, "c1", "csat", 1, 5, channel="chat", queue="x")  # Thursday, own labels
    answer(log, 3 * DAY + 1, "c2", "csat", 5, 5)
    rep = replay_log(log, tmp_path)
    monday = row(rep, "voice", "billing", "day", "2026-11-02")
    assert (monday["survey_csat_answers"], monday["csat"]) == (1, 0.0)
    first = next(r for r in rep["intervals"] if r["queue"] == "billing" and r["tenant"] == ALL)
    assert first["interval"] == "2026-11-02T09:00:00+00:00" and first["csat"] == 0.0
    tuesday = row(rep, "voice", "cards", "day", "2026-11-03")
    assert tuesday["csat"] == 1.0
    assert not any(r["metrics"]["survey_csat_answers"] for r in rep["kpis"]
                   if r["period"] == "day" and r["bucket"] == "2026-11-05")  # fmt: skip
    agents = {(r["tenant"], r["agent"]): r["metrics"] for r in rep["agents"]
              if r["period"] == "total"}  # fmt: skip
    assert agents[("bank", "kim")]["agent_csat"] == 0.0
    assert agents[(ALL, "lee")]["agent_csat_answers"] == 1
    assert rep["data_quality"] == {}


def test_one_touch_versus_multi_touch(tmp_path: Path) -> None:
    log = Log()
    handled(log, "c1", 0, case="K1")  # one agent, one contact
    handled(log, "c2", 0, case="K2")
    handled(log, "c3", 500, agent="a2", case="K2")  # the customer came back: multi-touch
    answer(log, 1000, "c1", "csat", 5, 5)
    answer(log, 1001, "c2", "csat", 2, 5)
    answer(log, 1002, "c3", "csat", 3, 5)
    m = row(replay_log(log, tmp_path), "voice", "billing")
    assert (m["survey_csat_one_touch_answers"], m["csat_one_touch"]) == (1, 1.0)
    assert (m["survey_csat_multi_touch_answers"], m["csat_multi_touch"]) == (2, 0.0)


def test_unknown_contacts_and_scores_off_the_scale_are_data_quality(tmp_path: Path) -> None:
    log = Log()
    handled(log, "c1", 0)
    answer(log, 200, "ghost", "csat", 5, 5, queue="billing")
    answer(log, 201, "c1", "nps", 9, 5)  # NPS is 0..10
    answer(log, 202, "c1", "csat", 0, 5)  # CSAT starts at 1
    answer(log, 203, "c1", "ces", 7, 5)
    rep = replay_log(log, tmp_path)
    assert rep["data_quality"] == {"survey_contact_unknown": 1, "survey_out_of_scale": 3}
    m = row(rep, "voice", "billing")
    assert m["survey_csat_answers"] == 1 and m["survey_nps_answers"] == 0
    # an answer after the window is no longer attributed to the contact
    log2 = Log()
    handled(log2, "c1", 0)
    answer(log2, 15 * DAY, "c1", "csat", 5, 5, queue="billing")
    assert replay_log(log2, tmp_path)["data_quality"] == {"survey_contact_unknown": 1}


def test_csat_low_needs_its_minimum_of_answers() -> None:
    def fired(answers: int) -> list[str]:
        out = Events()
        logic = AlertLogic(only("csat_low", for_seconds=0, keep_firing_seconds=0), out)
        labels = ("bank", "voice", "billing")
        for i in range(answers):
            logic.count("survey_csat_answers", labels, 0)
            if i % 2:
                logic.count("survey_csat_satisfied", labels, 0)  # 50 % satisfied
        ticks(logic, 60, 60)
        return [e.alert.rule for e in out.seen]

    assert fired(19) == []  # 50 % but only 19 answers
    assert fired(20) == ["csat_low"]


def test_surveys_survive_a_checkpoint(tmp_path: Path) -> None:
    from kpis.engine import Engine
    from kpis.interfaces import KpiSink
    from tests.helpers import Log as L

    class Counts(KpiSink):
        def __init__(self) -> None:
            self.c: dict[str, int] = {}

        def count(self, name: str, labels: Any, ts: float, evidence: str | None = None) -> None:
            self.c[name] = self.c.get(name, 0) + 1

        def observe(self, name: str, labels: Any, ts: float, value: float) -> None:
            pass

        def gauge(self, name: str, labels: Any, ts: float, value: float) -> None:
            pass

    from kpis.decode import Decoder

    log = L()
    handled(log, "c1", 0)
    answer(log, 2 * DAY, "c1", "csat", 5, 5)
    recs = [Decoder().decode(line) for line in log.lines()]
    first, second = Counts(), Counts()
    a = Engine(EngineConfig(), first)
    for r in recs[:4]:
        a.ingest(*r)
    a.flush()
    b = Engine(EngineConfig(), second)
    b.restore(a.snapshot())
    for r in recs[4:]:
        b.ingest(*r)
    b.finish()
    assert second.c.get("survey_csat_satisfied") == 1
    assert "dq_survey_contact_unknown" not in second.c


@pytest.mark.slow
def test_the_simulated_week_fills_the_benchmarks_effort_row(tmp_path: Path) -> None:
    import orjson

    from cc_monitor.simulator import SimConfig, simulate
    from tests.helpers import replay_lines

    lines = [orjson.dumps(e) for e in simulate(SimConfig(days=7, contacts_per_day=800))]
    rep = replay_lines(lines, tmp_path)
    easy = next(b for b in rep["benchmark"] if b["kpi"] == "customers_who_say_service_is_easy")
    assert 0.72 < easy["centre"] < 0.9 and easy["level"] == "between"
    total = row(rep)
    assert total["csat_multi_touch"] < total["csat_one_touch"]  # transfers and repeats hurt
    assert 0.1 < total["survey_response_rate"] < 0.3
    assert rep["data_quality"].get("survey_contact_unknown", 0) == 0
    assert {r["agent"] for r in rep["agents"]} and not any(
        "agent" in r for r in rep["kpis"]
    )  # per agent in its own section only


def test_a_cdr_score_column_becomes_survey_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import orjson

    from cc_monitor.cli import main

    (tmp_path / "map.toml").write_text(
        'time_format = "iso"\nsurvey = "ces"\nsurvey_scale = 7\n[columns]\ncontact_id = "id"\n'
        'started = "start"\nqueued = "queued"\nanswered = "answer"\nended = "end"\n'
        'agent_id = "agent"\nqueue = "queue"\nsurvey_score = "effort"\n'
    )
    (tmp_path / "calls.csv").write_text(
        "id,start,queued,answer,end,agent,queue,effort\n"
        "a1,2026-11-02T09:00:00Z,2026-11-02T09:00:00Z,2026-11-02T09:00:30Z,"
        "2026-11-02T09:05:00Z,kim,cards,6\n"
        "a2,2026-11-02T09:01:00Z,2026-11-02T09:01:00Z,2026-11-02T09:01:30Z,"
        "2026-11-02T09:05:00Z,lee,cards,2\n"
        "a3,2026-11-02T09:02:00Z,2026-11-02T09:02:00Z,2026-11-02T09:02:30Z,"
        "2026-11-02T09:05:00Z,lee,cards,\n"
        "a4,2026-11-02T09:03:00Z,2026-11-02T09:03:00Z,2026-11-02T09:03:30Z,"
        "2026-11-02T09:05:00Z,lee,cards,easy\n"
    )
    capsys.readouterr()
    assert main(["replay", str(tmp_path / "calls.csv"), "--format", "cdr", "--mapping",
                 str(tmp_path / "map.toml"), "--json", "-", "--quiet"]) == 0  # fmt: skip
    rep = orjson.loads(capsys.readouterr().out)
    m = row(rep, "voice", "cards")
    assert (m["survey_ces_answers"], m["survey_ces_easy"], m["survey_response_rate"]) == (
        2, 1, 0.5,
    )  # fmt: skip
    assert rep["input"]["sources"][0]["import"]["warnings"] == {"survey_score_not_0_to_10": 1}


def test_a_reference_lasts_exactly_its_window_across_generations(tmp_path: Path) -> None:
    """References expire by generation (no timer per contact): an answer at its contact's end
    plus the window still counts on the contact, one a moment later does not, however many
    rotations happened in between."""
    window = 5000.0  # past the hour an ended contact itself is kept for its wrap-up
    log = Log()
    items: list[tuple[float, str, int]] = []
    for i in range(12):  # contacts end 3,500 s apart: a rotation every one or two of them
        items.append((i * 3500.0, f"c{i}", -1))
        end = i * 3500.0 + 100
        items.append((end + window + (0.0 if i % 2 == 0 else 0.5), f"c{i}", i % 2))
    for t, c, late in sorted(items):
        if late < 0:
            handled(log, c, t)
        else:
            answer(log, t, c, "csat", 5, 5, queue="elsewhere")
    rep = replay_log(log, tmp_path, EngineConfig(survey_window_seconds=window))
    assert row(rep, "voice", "billing")["survey_csat_answers"] == 6  # at the window's end
    assert rep["data_quality"] == {"survey_contact_unknown": 6}  # just after it
    assert row(rep, "voice", "elsewhere")["survey_csat_answers"] == 6
