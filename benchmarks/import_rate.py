"""The import of real call records against DuckDB's time for their counts and means, same run.

    python benchmarks/import_rate.py [FILE.tsv ...] [--rounds 3]

Default input: the Anonymous Bank months in ``../shared/data/anonymous-bank/``. Each round runs,
in turn, two fresh processes over the same files and takes the CPU seconds (user + system)
each used:

* DuckDB (``duckdb``, in the ``dev`` extra): reads the TSV files and computes per day and call
  type the calls, those served by an agent, those that hung up in queue, the mean queue time of
  queued calls and the mean service time of served ones (counts and means, as a data team
  would check the report's with);
* ``cc-monitor replay --format anonymous-bank FILES --json OUT``: the whole import (parse, the
  calls' events in time order, decode, engine, alert rules, report).

Prints the best of each and their ratio (issue 30's target: at most 40x), against DuckDB's
whole process and against its query alone (its start-up, about 0.2 s, weighs on one month),
and the calls each counted (the report's ``contacts`` total; the rows the importer skips are
in the report) so that both are seen to read the same records.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = sorted((ROOT.parent / "shared" / "data" / "anonymous-bank").glob("*.tsv"))

QUERY = """
SELECT date, type, count(*) AS calls,
       count(*) FILTER (WHERE outcome = 'AGENT') AS served,
       count(*) FILTER (WHERE outcome = 'HANG' AND q_time > 0) AS abandoned,
       avg(q_time) FILTER (WHERE q_time > 0) AS mean_queue_seconds,
       avg(ser_time) FILTER (WHERE outcome = 'AGENT') AS mean_service_seconds
FROM read_csv({files}, delim = '\\t', header = true, all_varchar = false)
GROUP BY date, type ORDER BY date, type
"""

DUCK = (
    "import duckdb, sys, json, time; t = time.process_time(); "
    "rows = duckdb.sql(sys.argv[1]).fetchall(); q = time.process_time() - t; "
    "print(json.dumps({'rows': len(rows), 'calls': sum(r[2] for r in rows), 'query': q}))"
)


def cpu_of(cmd: list[str]) -> tuple[float, str]:
    """CPU seconds (user + system) of one child process, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(cmd[:4])} ...\n{done.stderr[-800:]}"
        )
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, done.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds is at least 1")
    files = [f.resolve() for f in args.files]
    missing = [str(f) for f in files if not f.is_file()]
    if not files or missing:
        print(f"import_rate: no such file: {', '.join(missing) or 'none given'}", file=sys.stderr)
        return 2
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("import_rate: needs duckdb (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    query = QUERY.format(files="[" + ", ".join(f"'{f}'" for f in files) + "]")
    best_duck = best_query = best_ours = float("inf")
    duck_out = ours_calls = None
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        ours = [sys.executable, "-m", "cc_monitor.cli", "replay", "--format", "anonymous-bank",
                "--no-progress", "--quiet", *map(str, files), "--json", str(report)]  # fmt: skip
        for r in range(args.rounds):
            d, out = cpu_of([sys.executable, "-c", DUCK, query])
            duck_out = json.loads(out)
            o, _ = cpu_of(ours)
            doc = json.loads(report.read_bytes())
            ours_calls = next(
                row["metrics"]["contacts"]
                for row in doc["kpis"]
                if row["period"] == "total" and row["tenant"] == row["channel"] == row["queue"]
            )
            q = float(duck_out["query"])
            best_duck, best_query, best_ours = (
                min(best_duck, d),
                min(best_query, q),
                min(best_ours, o),
            )
            print(f"round {r + 1}: duckdb {d:.2f} s cpu ({q:.2f} s the query), cc-monitor "
                  f"{o:.2f} s cpu: {o / d:.1f}x the process, {o / q:.1f}x the query")  # fmt: skip
    assert duck_out is not None
    print(f"files: {len(files)}; calls counted: duckdb {duck_out['calls']:,}, "
          f"cc-monitor {ours_calls:,} (contacts)")  # fmt: skip
    print(f"best duckdb:     {best_duck:.2f} s cpu, the process (its start-up weighs on a small "
          f"input); {best_query:.2f} s the query alone")  # fmt: skip
    print(f"best cc-monitor: {best_ours:.2f} s cpu (the whole import and report)")
    print(f"ratio:           {best_ours / best_duck:.1f}x the process, "
          f"{best_ours / best_query:.1f}x the query  (issue 30: <= 40x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
