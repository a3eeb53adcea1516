"""Order independence within the allowed lateness, idempotency, determinism."""

from __future__ import annotations

import random
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_monitor.simulator import SimConfig, simulate
from kpis.config import EngineConfig
from kpis.decode import Decoder
from tests.helpers import replay_lines, without_input

LATENESS = 60.0
CONFIG = EngineConfig(allowed_lateness_seconds=LATENESS)


@lru_cache(maxsize=1)
def sim_log() -> tuple[bytes, ...]:
    # Two small days: every event type, an incident, callbacks, reopens and orphans.
    cfg = SimConfig(seed=3, start=date(2026, 11, 2), days=2, contacts_per_day=600)
    return tuple(orjson.dumps(ev) for ev in simulate(cfg))


@lru_cache(maxsize=1)
def times() -> tuple[float, ...]:
    dec = Decoder()
    return tuple(dec.decode(line)[1] for line in sim_log())


@lru_cache(maxsize=1)
def baseline_report() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rep = replay_lines(list(sim_log()), Path(tmp), CONFIG)
    return orjson.dumps(without_input(rep), option=orjson.OPT_SORT_KEYS)


def shuffled_within_lateness(seed: int) -> list[bytes]:
    """Arrival order = event time plus a jitter below the lateness: never late, often reordered.

    If event b arrives after a, ts_b + j_b >= ts_a + j_a, so ts_b > ts_a - LATENESS.
    """
    rng = random.Random(seed)
    lines = sim_log()
    keyed = [(t + rng.uniform(0, LATENESS * 0.999), i) for i, t in enumerate(times())]
    keyed.sort()
    return [lines[i] for _, i in keyed]


def check_report_equal(report: dict[str, Any]) -> None:
    assert orjson.dumps(without_input(report), option=orjson.OPT_SORT_KEYS) == baseline_report()


@pytest.mark.slow
def test_the_simulated_log_exercises_the_engine() -> None:
    rep = orjson.loads(baseline_report())
    assert rep["rejected"]["total"] == 0
    total = next(r["metrics"] for r in rep["kpis"] if r["period"] == "total" and
                 (r["tenant"], r["channel"], r["queue"]) == ("*", "*", "*"))  # fmt: skip
    for name in ("answered", "abandoned", "resolved", "transferred", "callbacks_breached",
                 "callbacks_compliant", "cases_reopened"):  # fmt: skip
        assert total[name] > 0, name
    assert total["contacts_orphaned"] + total["contacts_open_at_end"] > 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
@pytest.mark.slow
def test_disorder_within_allowed_lateness_gives_the_same_report(
    tmp_path_factory: Any, seed: int
) -> None:
    lines = shuffled_within_lateness(seed)
    assert lines != list(sim_log())
    rep = replay_lines(lines, tmp_path_factory.mktemp("shuffle"), CONFIG)
    assert rep["rejected"]["total"] == 0
    check_report_equal(rep)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(1, 40))
@pytest.mark.slow
def test_duplicates_change_no_kpi(tmp_path_factory: Any, seed: int, copies: int) -> None:
    rng = random.Random(seed)
    lines = list(sim_log())
    n = len(lines)
    inserts = sorted(((rng.randrange(n), rng.randrange(0, 400)) for _ in range(copies)),
                     reverse=True)  # fmt: skip
    for src, ahead in inserts:  # a copy after its original (possibly much later)
        lines.insert(min(n, src + 1 + ahead), lines[src])
    rep = replay_lines(lines, tmp_path_factory.mktemp("dups"), CONFIG)
    rejected = rep["rejected"]["by_reason"]
    assert rejected["duplicate"] + rejected["late"] == copies
    rep["rejected"] = orjson.loads(baseline_report())["rejected"]
    rep["events"]["lines"] -= copies
    rep["events"]["rejected"] -= copies
    check_report_equal(rep)


@pytest.mark.slow
def test_replay_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from streams.replay import replay_paths

    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in sim_log()))
    a = replay_paths([str(path)], CONFIG, ZoneInfo("Asia/Seoul"))
    b = replay_paths([str(path)], CONFIG, ZoneInfo("Asia/Seoul"))
    assert orjson.dumps(a) == orjson.dumps(b)
    assert a["input"]["sources"][0]["lines"] == len(sim_log())
