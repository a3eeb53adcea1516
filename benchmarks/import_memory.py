"""Peak memory and records/s of importing Anonymous Bank files of growing size.

    python benchmarks/import_memory.py [--times 1 10] [--data PATH]

Builds files of N Februaries (each copy shifted to a later month, so the calls stay distinct and
in time order per VRU line), replays each in a fresh process with `--format anonymous-bank`, and
prints records/s and the peak resident memory. Flat memory means the importer streams: the peak
should not grow with N (issue 6).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "anonymous-bank" / "1999-02.tsv"

CHILD = r"""
import resource, sys, time
from zoneinfo import ZoneInfo
from kpis.config import EngineConfig
from streams.inputs.importers import make_importer
from streams.inputs.files import ImportStats
from streams.inputs.privacy import Pseudonymizer
from streams.replay import Replay, Source
from streams.inputs.files import SourceStats
t = time.perf_counter()
zone = ZoneInfo("Asia/Jerusalem")
imp = make_importer("anonymous-bank", Pseudonymizer("bench"), zone)
if sys.argv[2] == "import":  # the importer alone: events produced, nothing kept
    stats = ImportStats("anonymous-bank")
    problems = sum(
        1 for _, e in imp.events(Source(sys.argv[1]), SourceStats(sys.argv[1]), stats, 65536)
        if not isinstance(e, dict)
    )
    records = stats.records
else:  # the whole replay, report included (it keeps every duration sample: exact percentiles)
    rep = Replay(EngineConfig(), zone).run([Source(sys.argv[1])], importer=imp)
    records = rep["input"]["sources"][0]["import"]["records"]
    problems = rep["rejected"]["total"]
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(records, problems, f"{elapsed:.3f}", f"{peak:.1f}")
"""


def build(src: Path, copies: int, out: Path) -> None:
    lines = src.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    with open(out, "w") as f:
        f.write(header + "\n")
        for k in range(copies):
            for r in rows:
                cells = r.split("\t")
                yy, mm = int(cells[5][:2]), int(cells[5][2:4]) + k
                yy, mm = yy + (mm - 1) // 12, (mm - 1) % 12 + 1
                cells[5] = f"{yy:02d}{mm:02d}{cells[5][4:]}"
                f.write("\t".join(cells) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--times", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("import", "replay"):
            for n in args.times:
                path = Path(tmp) / f"x{n}.tsv"
                if not path.exists():
                    build(args.data, n, path)
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(path), mode],
                    capture_output=True, text=True, check=True,
                ).stdout.split()  # fmt: skip
                records, rejected, elapsed, peak = int(out[0]), int(out[1]), float(out[2]), out[3]
                size = os.path.getsize(path) / 1e6
                print(f"{mode:>6} {n:>3}x February: {size:6.1f} MB, {records:>9,} records, "
                      f"{rejected} rejected, {records / elapsed:>8,.0f} records/s, "
                      f"peak RSS {peak} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
