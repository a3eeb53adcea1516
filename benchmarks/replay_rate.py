"""Replay throughput against orjson parsing of the same file, measured in the same run.

    python benchmarks/replay_rate.py [--events 1000000] [--rounds 3] [--log FILE]
                                     [--callgrind 40000]

Writes a simulated log of at least ``--events`` events (or uses ``--log``), then alternates
rounds of (a) orjson parse-only over the file's lines and (b) a full replay (decode, validate,
engine, report), and prints the best rate of each and their ratio. Machines here are shared and
noisy: the ratio against a baseline measured in the same run is the figure that means something.
The simulated log exercises every domain: contacts, IVR, cases, callbacks, surveys, agents
with their states, and the report's intraday intervals (the events per domain are printed).

``--callgrind N``: also the instructions per event of a replay of the log's first N events
(valgrind's callgrind, the same count whatever else the machine does: the figure to compare
between commits), as (replay of N events - replay of none) / N, both measured in parallel.
Issue 2's target was a ratio >= 0.35; issue 30's is >= 0.10 on one core.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
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


DOMAINS = {"contact": "contacts", "queue": "contacts", "agent.connected": "contacts",
           "agent.offered": "contacts", "agent.message": "contacts", "customer": "contacts",
           "hold": "contacts", "wrapup": "contacts", "ivr": "IVR", "case": "cases",
           "callback": "callbacks", "survey": "surveys", "agent.state": "agent states",
           "system": "platform"}  # fmt: skip


def domains(path: Path) -> Counter[str]:
    """Events per domain (by their type's prefix)."""
    out: Counter[str] = Counter()
    with open(path, "rb") as f:
        for line in f:
            t = orjson.loads(line).get("type", "")
            for prefix, domain in DOMAINS.items():
                if t.startswith(prefix):
                    out[domain] += 1
                    break
            else:
                out["other"] += 1
    return out


_RUN = (
    "import sys; from zoneinfo import ZoneInfo; from kpis.config import EngineConfig; "
    "from streams.replay import Replay, Source; "
    "Replay(EngineConfig(), ZoneInfo('UTC')).run([Source(sys.argv[1])])"
)


def instructions(path: Path, events: int, tmp: Path) -> float | None:
    """Instructions per event of a replay of the first ``events`` events (callgrind)."""
    if shutil.which("valgrind") is None:
        print("callgrind: valgrind not found (apt-get install valgrind)")
        return None
    head, empty = tmp / "head.jsonl", tmp / "empty.jsonl"
    with open(path, "rb") as f, open(head, "wb") as out:
        for n, line in enumerate(f):
            if n >= events:
                break
            out.write(line)
    empty.write_bytes(b"")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           sys.executable, "-c", _RUN]  # fmt: skip
    procs = [subprocess.Popen([*cmd, str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for p in (head, empty)]  # fmt: skip
    counts = []
    for p in procs:
        _, err = p.communicate()
        found = re.search(rb"Collected : (\d+)", err)
        if p.returncode or found is None:
            print(f"callgrind failed: {err.decode(errors='replace')[-500:]}")
            return None
        counts.append(int(found.group(1)))
    per_event = (counts[0] - counts[1]) / events
    print(f"callgrind: {counts[0] / 1e9:.3f} G instructions for {events:,} events, "
          f"{counts[1] / 1e9:.3f} G for none: {per_event / 1e3:,.1f} k per event")  # fmt: skip
    return per_event


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log", type=Path, help="replay this file instead of simulating one")
    ap.add_argument("--callgrind", type=int, metavar="N", default=0,
                    help="instructions per event on the first N events (valgrind)")  # fmt: skip
    args = ap.parse_args()
    if args.events < 1 or args.rounds < 1 or args.callgrind < 0:
        ap.error("--events and --rounds are at least 1, --callgrind at least 0")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.log
        if path is None:
            path = Path(tmp) / "events.jsonl"
            t = time.perf_counter()
            n = write_log(path, args.events)
            print(f"simulated {n:,} events in {time.perf_counter() - t:.1f} s "
                  f"({os.path.getsize(path) / 1e6:.0f} MB)")  # fmt: skip
        if not path.is_file():
            print(f"replay_rate: {path}: not a file", file=sys.stderr)
            return 2
        per_domain = domains(path)
        print("events per domain: " + ", ".join(f"{d} {n:,}" for d, n in per_domain.most_common()))
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
        print(f"ratio replay / parse:   {best_parse / best_replay:.3f}  (issue 30: >= 0.10)")
        if args.callgrind:
            instructions(path, min(args.callgrind, n), Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
