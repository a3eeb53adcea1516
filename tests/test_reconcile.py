"""Reconciliation (streams/reconcile.py) without servers: a worker runs over a day with an
archive, its published alerts and KPI snapshots are reconciled against the archive's replay."""

from __future__ import annotations

import asyncio
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.rules import RulesConfig
from kpis.config import EngineConfig
from streams.audit.archive import LiveArchive
from streams.kafka.checkpoint import MemoryCheckpoints
from streams.kafka.worker import LiveRuntime
from streams.reconcile import Reconciliation, compare_alerts, reconcile, transition_time
from tests.builders import day, kill
from tests.fakes import (
    INPUTS,
    AgentsTopic,
    Consumer,
    Notified,
    Shared,
    records_by_tp,
)
from tests.fakes import runtime as live_runtime

PARTITIONS = 3


@lru_cache(maxsize=1)
def _run(root: str) -> tuple[list[tuple[str, bytes]], dict[int, bytes]]:
    """A worker over the day with two kills (archive buffers lost, redeliveries): what it put
    on the alerts topic, as ``(where, value)``, and its KPI snapshots."""
    rng = random.Random(3)
    data = records_by_tp(day(), PARTITIONS)
    agents = AgentsTopic(data, PARTITIONS)  # live agent states, as a worker has by default
    store, committed, model, sent = MemoryCheckpoints(), {}, Shared(), Notified()

    def runtime() -> LiveRuntime:
        return live_runtime(
            store,
            PARTITIONS,
            model,
            RulesConfig(),
            agents=agents,
            notify=sent,
            archive=LiveArchive(Path(root)),
        )

    for _ in range(2):
        rt = runtime()
        Consumer(data, committed).run(rt, {0, 1, 2}, rng, stop_after=len(day()) // 3)
        asyncio.run(rt.tick())
        assert rt.archive is not None
        kill(rt.archive)
        model.alerts.expire_lease()
    rt = runtime()
    consumer = Consumer(data, committed)
    consumer.run(rt, {0, 1, 2}, rng)
    for _ in range(3):
        consumer.quiesce(rt)
    records = [(f"alerts:0@{i}", orjson.dumps({"status": e.status, "alert": e.alert.to_dict()}))
               for i, e in enumerate(sent.events)]  # fmt: skip
    return records, dict(model.view.docs)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[int, bytes]]:
    root = tmp_path_factory.mktemp("reconcile") / "archive"
    alerts, docs = _run(str(root))
    return root, alerts, docs


def check(root: Path, alerts: Any, docs: dict[int, bytes], **kw: Any) -> Reconciliation:
    return reconcile(root, EngineConfig(), RulesConfig(), alerts=("alerts", alerts),
                     snapshots=docs, partitions=PARTITIONS, inputs=INPUTS, **kw)  # fmt: skip


@pytest.mark.slow
def test_a_live_run_reconciles_clean(published: Any) -> None:
    root, alerts, docs = published
    result = check(root, alerts, docs)
    assert result.differences == []
    assert result.alerts_published == result.alerts_replayed == len(alerts) >= 4
    assert sum(v["records"] for v in result.partitions.values()) == len(day())
    assert "clean" in result.summary()
    doc = result.to_dict()
    assert doc["clean"] is True and set(doc["kpis"]) == {"0", "1", "2"}


@pytest.mark.slow
def test_a_removed_a_repeated_and_an_altered_alert_are_named(published: Any) -> None:
    root, alerts, docs = published
    victim = orjson.loads(alerts[1][1])
    rule = victim["alert"]["rule"]
    result = check(root, alerts[:1] + alerts[2:], docs)
    assert [(d.kind, d.problem) for d in result.differences] == [
        ("alert", "in the replay, not on the alerts topic")
    ]
    assert result.differences[0].where.startswith(rule + "{")
    assert victim["status"] in result.differences[0].where
    assert "clean" not in result.summary()
    result = check(root, [*alerts, alerts[0]], docs)
    assert [d.problem for d in result.differences] == ["on the alerts topic 2 times"]
    altered = orjson.loads(alerts[0][1])
    altered["alert"]["severity"] = "sev9"
    result = check(root, [("x", orjson.dumps(altered)), *alerts[1:]], docs)
    assert [(d.problem, d.live) for d in result.differences] == [("severity differs", "sev9")]
    odd = orjson.loads(alerts[0][1])
    odd["alert"]["labels"] = "q=1"
    result = check(root, [("alerts:0@98", orjson.dumps(odd)), ("alerts:0@99", b"{oops"),
                          *alerts], docs)  # fmt: skip
    assert [(d.where, d.problem) for d in result.differences] == [
        ("alerts:0@98", "unreadable record on the alerts topic"),
        ("alerts:0@99", "unreadable record on the alerts topic"),
    ]


@pytest.mark.slow
def test_an_altered_snapshot_and_an_archive_hole_are_named(published: Any, tmp_path: Path) -> None:
    root, alerts, docs = published
    doc = orjson.loads(docs[1])
    doc["counters"][0][2] += 1
    result = check(root, alerts, {**docs, 1: orjson.dumps(doc)})
    assert [(d.kind, d.problem, d.live - d.replay) for d in result.differences] == [
        ("kpi", "differs", 1)
    ]
    assert result.differences[0].where.startswith(f"partition 1 counters {doc['counters'][0][0]}")
    old = orjson.loads(docs[2])
    del old["offsets"]
    result = check(root, alerts, {**docs, 2: orjson.dumps(old)})
    assert [d.problem for d in result.differences] == [
        "the snapshot names no offsets (a worker older than reconcile)"
    ]
    result = check(root, alerts, {p: d for p, d in docs.items() if p != 2})
    assert [d.where + ": " + d.problem for d in result.differences] == [
        "partition 2: no KPI snapshot in the read model"
    ]
    # a worker's snapshot past what its archive holds (the archive lost records)
    doc = orjson.loads(docs[0])
    doc["offsets"][INPUTS[0]] += 2
    result = check(root, alerts, {**docs, 0: orjson.dumps(doc)})
    assert any(d.kind == "archive" and "not in the archive" in d.problem
               and d.where == f"{INPUTS[0]} partition 0" for d in result.differences)  # fmt: skip


@pytest.mark.slow
def test_a_period_compares_the_transitions_inside_it(published: Any) -> None:
    root, alerts, docs = published
    docs_alerts = [orjson.loads(v) for _, v in alerts]
    firing = sorted(d["alert"]["starts_at"] for d in docs_alerts if d["status"] == "firing")
    start, end = firing[0] - 1, firing[-1] + 1  # the day's alerts, nothing outside
    # agent states go back to the agents' logins: the lookback covers a shift
    result = check(root, alerts, docs, start=start, end=end, lookback=12 * 3600)
    assert result.differences == []
    inside = [d for d in docs_alerts if start <= transition_time(d) < end]  # type: ignore[operator]
    assert result.alerts_published == result.alerts_replayed == len(inside) > 0
    # transitions outside the period are not compared, inside they are
    outside = [(w, v) for w, v in alerts if orjson.loads(v)["status"] == "firing"]
    assert check(root, outside, docs, start=end + 86400, end=end + 2 * 86400).differences == []


def test_compare_alerts_pure() -> None:
    a = {"status": "firing", "alert": {"rule": "r", "fingerprint": "f", "labels": {"q": "1"},
                                        "severity": "page", "summary": "s", "runbook_url": "",
                                        "starts_at": 100.0, "ends_at": None, "value": 0.5,
                                        "evidence": ["x"]}}  # fmt: skip
    b = {"status": "resolved", "alert": {**a["alert"], "ends_at": 200.0}}  # type: ignore[dict-item]
    assert compare_alerts([a, b], [a, b]) == []
    assert compare_alerts([a], [a, b], end=200.0) == []  # resolved at 200: outside
    assert [d.problem for d in compare_alerts([a], [a, b])] == [
        "in the replay, not on the alerts topic"
    ]
    late = compare_alerts([a, b], [b], replayed_from=150.0)
    assert late[0].problem.endswith("(widen --lookback)")
    c = {"status": "firing", "alert": {**a["alert"], "evidence": ["c-77", "c-78"]}}  # type: ignore[dict-item]
    diff = compare_alerts([c], [a])
    assert [(d.problem, d.live, d.replay) for d in diff] == [
        ("evidence differs (contact ids not shown)", 2, 1)
    ]
    assert "c-77" not in str(diff[0])
