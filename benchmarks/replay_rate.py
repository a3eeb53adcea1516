"""Replay throughput against orjson parsing of the same file, measured in the same run.

    python benchmarks/replay_rate.py [--events 1000000] [--rounds 3] [--log FILE]

Writes a simulated log of at least ``--events`` events (or uses ``--log``), then alternates
rounds of (a) orjson parse-only over the file's lines and (b) a full replay (decode, validate,
engine, report), and prints the best rate of each and their ratio. Machines here are shared and
noisy: the ratio against a baseline measured in the same run is the figure that means something.
Issue 2's target: ratio >= 0.35.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from cc_monitor.simulator import SimConfig, lines
from kpis.config import EngineConfig
from streams.replay import Replay, Source

EVENTS_PER_CONTACT = 9.5  # about what the simulator writes


def write_log(path: Path, events: int) -> int:
    per_day = 20_000
    days = max(1, math.ceil(events / (per_day * EVENTS_PER_CONTACT)))
    cfg = SimConfig(seed=11, start=date(2026, 11, 2), days=days, contacts_per_day=per_day)
    n = 0
    with open(path, "wb") as f:
        for line in lines(cfg):
            f.write(line + b"\n")
            n += 1
            if n >= events:
                break
    return n


def parse_only(path: Path) -> tuple[int, float]:
    loads = orjson.loads
    n = 0
    start = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            loads(line)
            n += 1
    return n, time.perf_counter() - start


def replay(path: Path) -> tuple[int, float, dict[str, object]]:
    start = time.perf_counter()
    report = Replay(EngineConfig(), ZoneInfo("UTC")).run([Source(str(path))])
    elapsed = time.perf_counter() - start
    events = report["events"]
    assert isinstance(events, dict)
    return int(events["lines"]), elapsed, report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log", type=Path, help="replay this file instead of simulating one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.log
        if path is None:
            path = Path(tmp) / "events.jsonl"
            t = time.perf_counter()
            n = write_log(path, args.events)
            print(f"simulated {n:,} events in {time.perf_counter() - t:.1f} s "
                  f"({os.path.getsize(path) / 1e6:.0f} MB)")  # fmt: skip
        best_parse = best_replay = math.inf
        n = 0
        for r in range(args.rounds):
            n, tp = parse_only(path)
            m, tr, report = replay(path)
            assert m == n
            best_parse, best_replay = min(best_parse, tp), min(best_replay, tr)
            print(f"round {r + 1}: orjson parse {n / tp:,.0f} lines/s, replay {n / tr:,.0f} "
                  f"events/s, ratio {tp / tr:.3f}")  # fmt: skip
        rejected = report["rejected"]
        assert isinstance(rejected, dict)
        print(f"events: {n:,}, rejected: {rejected['total']}")
        print(f"best orjson parse-only: {n / best_parse:,.0f} lines/s")
        print(f"best replay:            {n / best_replay:,.0f} events/s")
        print(f"ratio replay / parse:   {best_parse / best_replay:.3f}  (target >= 0.35)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
