"""The weekday profile of a replay report's intervals, and how well the next interval is
forecast (docs/kpis.md has the real February's figures, made with this script).

    cc-monitor replay --format anonymous-bank FILE.tsv --json feb.json --quiet
    python scripts/interval_profile.py feb.json --workdays 6,0,1,2,3   # Sun-Thu

Pooled over the queues (tenant-wide rows): per half hour of a workday, the mean offered, the
mean busy agents, and the agents Erlang C asks for (the pooled offered load at the pooled
handle time, 80 % within 20 s). Then the mean absolute percentage error of the next
interval's offered, between --from-hour and --to-hour on workdays after a warm-up week: the
seasonal forecast (the mean of the same weekday and interval of up to 4 previous weeks, what
the report's ``forecast_offered`` is per queue) beside the naive one (the interval before).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import datetime, timedelta

from kpis.erlang import agents_c

WEEK = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report")
    p.add_argument("--workdays", default="0,1,2,3,4", help="weekday numbers, Monday = 0")
    p.add_argument("--from-hour", type=int, default=8)
    p.add_argument("--to-hour", type=int, default=20)
    p.add_argument("--threshold", type=float, default=20.0)
    p.add_argument("--goal", type=float, default=0.8)
    args = p.parse_args(argv)
    workdays = {int(x) for x in args.workdays.split(",")}
    with open(args.report, "rb") as f:
        rows = [r for r in json.load(f)["intervals"] if r["tenant"] == "*"]
    # pooled per interval: offered, busy, handle seconds and handled parts
    pooled: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for r in rows:
        d = pooled[datetime.fromisoformat(r["interval"])]
        d[0] += r["offered"]
        d[1] += r["busy_agents"]
        if r["aht_seconds"] is not None:
            handled = r["answered"] or 1
            d[2] += r["aht_seconds"] * handled
            d[3] += handled
    width = 1800.0
    # the profile
    slots: dict[str, list[list[float]]] = defaultdict(list)
    days = set()
    for start, (offered, busy, hsum, hn) in pooled.items():
        if start.weekday() in workdays:
            days.add(start.date())
            slots[start.strftime("%H:%M")].append([offered, busy, hsum, hn])
    ndays = len(days)
    print(f"| half hour | offered (mean of {ndays} workdays) | busy agents | Erlang C agents |")
    print("|---|---|---|---|")
    for slot in sorted(slots):
        vals = slots[slot]
        offered = sum(v[0] for v in vals) / ndays
        busy = sum(v[1] for v in vals) / ndays
        hn = sum(v[3] for v in vals)
        aht = sum(v[2] for v in vals) / hn if hn else None
        need = agents_c(offered * aht / width, aht, args.threshold, args.goal) if aht else 0
        if offered >= 1:
            print(f"| {slot} | {offered:.1f} | {busy:.1f} | {need} |")
    # the forecast of the next interval
    first = min(pooled)
    seasonal_err: list[float] = []
    naive_err: list[float] = []
    for start, (offered, *_rest) in sorted(pooled.items()):
        if (start - first < timedelta(days=7) or start.weekday() not in workdays
                or not args.from_hour <= start.hour < args.to_hour or offered <= 0):  # fmt: skip
            continue
        past = [pooled[start - timedelta(weeks=w)][0] for w in range(1, 5)
                if (start - timedelta(weeks=w)) in pooled]  # fmt: skip
        before = pooled.get(start - timedelta(seconds=width))
        if past:
            seasonal_err.append(abs(sum(past) / len(past) - offered) / offered)
        if before is not None:
            naive_err.append(abs(before[0] - offered) / offered)
    if seasonal_err and naive_err:
        seasonal = 100 * sum(seasonal_err) / len(seasonal_err)
        naive = 100 * sum(naive_err) / len(naive_err)
        print(f"\nnext-interval offered, workdays {args.from_hour:02d}:00-{args.to_hour:02d}:00 "
              f"after a warm-up week: seasonal MAPE {seasonal:.1f} % ({len(seasonal_err)} "
              f"intervals), naive MAPE {naive:.1f} % ({len(naive_err)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
