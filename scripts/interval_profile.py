"""The weekday profile of a replay report's intervals, and how well the next interval is
forecast (docs/kpis.md has the real February's figures, made with this script).

    cc-monitor replay --format anonymous-bank FILE.tsv --json feb.json --quiet
    python scripts/interval_profile.py feb.json --workdays 6,0,1,2,3   # Sun-Thu

Pooled over the queues (tenant-wide rows): per half hour of a workday, the mean offered, the
mean busy agents, and the agents Erlang C asks for (the pooled offered load at the pooled
handle time, 80 % within 20 s). Then the mean absolute percentage error of the next
interval's offered, between --from-hour and --to-hour on workdays after a warm-up week: the
report's ``forecast_offered`` (kpis.intervals.blend) beside the two naive forecasts it must
beat, the seasonal mean (the same weekday and interval of up to 4 previous weeks) and the
interval before, pooled over the queues and per queue.
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
    # the forecast of the next interval: the report's (forecast_offered) beside two naive ones
    print(
        f"\nnext-interval offered, workdays {args.from_hour:02d}:00-{args.to_hour:02d}:00 "
        "after a warm-up week, mean absolute percentage error:"
    )
    print("| scope | intervals | cc-monitor (forecast_offered) | seasonal mean | interval before |")
    print("|---|---|---|---|---|")
    per_queue: dict[tuple[str, str], dict[datetime, tuple[float, float | None]]] = defaultdict(dict)
    for r in rows:
        per_queue[(r["channel"], r["queue"])][datetime.fromisoformat(r["interval"])] = (
            float(r["offered"]),
            r["forecast_offered"],
        )
    pooled_fc: dict[datetime, tuple[float, float | None]] = {}
    for start, (offered, *_rest) in pooled.items():
        fcs = [q[start][1] for q in per_queue.values() if start in q]
        known = [f for f in fcs if f is not None]
        pooled_fc[start] = (offered, sum(known) if known else None)
    scopes = [("all queues, pooled", pooled_fc)]
    scopes += [(f"{ch}/{q} (each queue)", v) for (ch, q), v in sorted(per_queue.items())]
    errs_all: list[list[float]] = [[], [], []]
    for name, series in scopes:
        errs = _errors(series, workdays, args.from_hour, args.to_hour, width)
        if name.endswith("(each queue)"):
            for i in range(3):
                errs_all[i] += errs[i]
            continue
        _print_row(name, errs)
    _print_row("every queue's own forecast", errs_all)
    return 0


def _errors(
    series: dict[datetime, tuple[float, float | None]],
    workdays: set[int],
    from_hour: int,
    to_hour: int,
    width: float,
) -> list[list[float]]:
    """Absolute percentage errors of the report's forecast, the seasonal mean (up to 4 weeks
    of the same weekday and interval) and the interval before, on the same intervals (those
    where all three exist)."""
    first = min(series)
    out: list[list[float]] = [[], [], []]
    for start, (offered, forecast) in sorted(series.items()):
        if (
            start - first < timedelta(days=7)
            or start.weekday() not in workdays
            or not from_hour <= start.hour < to_hour
            or offered <= 0
            or forecast is None
        ):
            continue  # fmt: skip
        past = [series[start - timedelta(weeks=w)][0] for w in range(1, 5)
                if (start - timedelta(weeks=w)) in series]  # fmt: skip
        if not past:
            continue
        before = series.get(start - timedelta(seconds=width), (0.0, None))[0]
        for i, f in enumerate((forecast, sum(past) / len(past), before)):
            out[i].append(abs(f - offered) / offered)
    return out


def _print_row(name: str, errs: list[list[float]]) -> None:
    if errs[0]:
        m = [f"{100 * sum(e) / len(e):.1f} %" for e in errs]
        print(f"| {name} | {len(errs[0]):,} | {m[0]} | {m[1]} | {m[2]} |")


if __name__ == "__main__":
    sys.exit(main())
