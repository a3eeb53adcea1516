"""A self-contained HTML rendering of a replay report.

No script, no external resource: charts are inline SVG drawn here, so the file opens anywhere
without a network, prints well, and the same report gives the same bytes.
"""

from __future__ import annotations

import html
from typing import Any

from cc_monitor.render import (
    AGENT_HEADER,
    KPI_NOTE,
    agent_rows,
    fmt_duration,
    fmt_ratio,
    intraday_profiles,
)
from kpis.catalogue import ALL

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7a8a")
CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Roboto,Noto Sans KR,NanumGothic,Malgun Gothic,
sans-serif;margin:24px;
color:#1f2328}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de}table{border-collapse:collapse;margin:6px 0 12px}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:right}th{background:#f6f8fa}
td.l,th.l{text-align:left}.fail{color:#d1242f;font-weight:600}.pass{color:#1a7f37}
.muted{color:#656d76}.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}
figcaption{font-size:12px;color:#656d76}svg text{font-size:10px;fill:#656d76}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def line_chart(
    title: str, labels: list[str], series: dict[str, list[float | None]], fmt: Any = _num
) -> str:
    """A small line chart (one polyline per series) with a min / max axis."""
    w, h, left, bottom = 420, 180, 44, 24
    values = [v for vs in series.values() for v in vs if v is not None]
    if not labels or not values:
        return f"<figure><figcaption>{_esc(title)}: no data</figcaption></figure>"
    top = max(values) or 1.0
    n = len(labels)

    def x(i: int) -> float:
        return left + (w - left - 8) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return 8 + (h - bottom - 8) * (1 - v / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="{_esc(title)}">',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - 4}" y2="{h - bottom}" stroke="#d0d7de"/>',
        f'<text x="2" y="12">{_esc(fmt(top))}</text>',
        f'<text x="2" y="{h - bottom}">0</text>',
        f'<text x="{left}" y="{h - 6}">{_esc(labels[0])}</text>',
        f'<text x="{w - 4}" y="{h - 6}" text-anchor="end">{_esc(labels[-1])}</text>',
    ]
    for k, (name, vs) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v is not None)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{points}"><title>{_esc(name)}</title></polyline>')  # fmt: skip
        for i, v in enumerate(vs):
            if v is not None:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                             f"<title>{_esc(name)} {_esc(labels[i])}: {_esc(fmt(v))}</title>"
                             "</circle>")  # fmt: skip
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="color:{PALETTE[k % len(PALETTE)]}">■</span> {_esc(name)}'
        for k, name in enumerate(series)
    )
    return f"<figure>{''.join(parts)}<figcaption>{_esc(title)} · {legend}</figcaption></figure>"


def bar_chart(title: str, bars: list[tuple[str, float]]) -> str:
    w, row = 420, 18
    if not bars:
        return f"<figure><figcaption>{_esc(title)}: none</figcaption></figure>"
    top = max(v for _, v in bars) or 1.0
    h = row * len(bars) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             f'aria-label="{_esc(title)}">']  # fmt: skip
    for i, (name, v) in enumerate(bars):
        width = (w - 200) * v / top
        parts.append(
            f'<text x="0" y="{i * row + 13}">{_esc(name[:32])}</text>'
            f'<rect x="170" y="{i * row + 3}" width="{width:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[1]}"><title>{_esc(name)}: {_esc(_num(v))}</title></rect>'
            f'<text x="{174 + width:.1f}" y="{i * row + 13}">{_esc(_num(v))}</text>'
        )
    parts.append("</svg>")
    return f"<figure>{''.join(parts)}<figcaption>{_esc(title)}</figcaption></figure>"


def timeline_chart(title: str, alerts: list[dict[str, Any]]) -> str:
    """Alerts as bars from start to end over the report's span."""
    if not alerts:
        return f"<figure><figcaption>{_esc(title)}: none</figcaption></figure>"
    from datetime import datetime

    def t(s: str) -> float:
        return datetime.fromisoformat(s).timestamp()

    starts = [t(a["starts_at"]) for a in alerts]
    ends = [t(a["ends_at"]) if a["ends_at"] else t(a["starts_at"]) for a in alerts]
    lo, hi = min(starts), max(ends)
    span = (hi - lo) or 1.0
    names = sorted({a["alertname"] for a in alerts})
    w, row, left = 860, 16, 190
    h = row * len(names) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             f'aria-label="{_esc(title)}">']  # fmt: skip
    for i, name in enumerate(names):
        parts.append(f'<text x="0" y="{i * row + 12}">{_esc(name)}</text>')
    for a, s, e in zip(alerts, starts, ends, strict=True):
        i = names.index(a["alertname"])
        x = left + (w - left - 8) * (s - lo) / span
        width = max(2.0, (w - left - 8) * (e - s) / span)
        color = {"critical": PALETTE[1], "warning": PALETTE[3]}.get(a["severity"], PALETTE[0])
        parts.append(f'<rect x="{x:.1f}" y="{i * row + 3}" width="{width:.1f}" height="{row - 5}"'
                     f' fill="{color}"><title>{_esc(a["summary"])} ({_esc(a["starts_at"])} – '
                     f'{_esc(a["ends_at"] or "firing at end")})</title></rect>')  # fmt: skip
    parts.append(f'<text x="{left}" y="{h - 4}">{_esc(alerts[0]["starts_at"][:16])}</text>')
    parts.append("</svg>")
    return f"<figure>{''.join(parts)}<figcaption>{_esc(title)}</figcaption></figure>"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    def cell(tag: str, i: int, v: str) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{v}</{tag}>"

    head = "".join(cell("th", i, _esc(h)) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _period_series(report: dict[str, Any], period: str) -> tuple[list[str], dict[str, Any]]:
    rows = [r for r in report["kpis"]
            if r["period"] == period and r["tenant"] == ALL and r["queue"] == ALL]  # fmt: skip
    buckets = sorted({r["bucket"] for r in rows})
    channels = sorted({r["channel"] for r in rows if r["channel"] != ALL})
    by = {(r["bucket"], r["channel"]): r["metrics"] for r in rows}
    return buckets, {"buckets": buckets, "channels": channels, "by": by}


class _Series:
    """Values of one metric per channel across a period's buckets."""

    def __init__(self, buckets: list[str], channels: list[str], by: dict[Any, Any]) -> None:
        self.buckets, self.channels, self.by = buckets, channels, by

    def __call__(
        self, metric: str, sub: str | None = None, scale: float = 1.0
    ) -> dict[str, list[float | None]]:
        out: dict[str, list[float | None]] = {}
        for ch in self.channels:
            vals: list[float | None] = []
            for b in self.buckets:
                m = self.by.get((b, ch), {}).get(metric)
                v = m.get(sub) if isinstance(m, dict) and sub else m
                vals.append(None if v is None else v / scale)
            out[ch] = vals
        return out


def render_html(report: dict[str, Any]) -> str:
    ev = report["events"]
    out = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        "<title>cc-monitor replay report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>cc-monitor replay report</h1>",
        f'<p class="muted">input digest <code>{_esc(report["input"]["digest"])}</code> · '
        f"{ev['lines']:,} lines, {ev['accepted']:,} events, {ev['rejected']:,} rejected · last "
        f"event {_esc(ev['last_event_time'])} · days in {_esc(report['config']['timezone'])}</p>",
    ]
    # KPI trends per day, week and month, per channel
    for period in ("day", "week", "month"):
        buckets, data = _period_series(report, period)
        if len(buckets) < 2 and period != "day":
            continue
        series = _Series(buckets, data["channels"], data["by"])

        out.append(f'<h2>Per {period}, per channel</h2><div class="charts">')
        out.append(line_chart("contacts", buckets, series("contacts")))
        out.append(line_chart("service level (%)", buckets, series("service_level", scale=0.01)))
        out.append(line_chart("abandonment (%)", buckets, series("abandonment_rate", scale=0.01)))
        out.append(line_chart("first response p50 (min)", buckets,
                              series("first_response_seconds", "p50", 60)))  # fmt: skip
        out.append(line_chart("handle time mean (min)", buckets,
                              series("handle_seconds", "mean", 60)))  # fmt: skip
        out.append(line_chart("one-touch resolution (%)", buckets,
                              series("one_touch_rate", scale=0.01)))  # fmt: skip
        out.append("</div>")
    # per channel and queue
    rows = []
    for r in report["kpis"]:
        if r["period"] != "total" or r["tenant"] != ALL or r["queue"] == "-":
            continue
        m = r["metrics"]
        rows.append([
            _esc("all" if r["channel"] == ALL else r["channel"]),
            _esc("" if r["queue"] == ALL else r["queue"]),
            f"{m['queued']:,}", fmt_ratio(m["service_level"]), fmt_ratio(m["abandonment_rate"]),
            f"{m['queue_callback_requests']:,}", fmt_duration(m["answer_seconds"]["mean"]),
            fmt_duration(m["first_response_direct_seconds"]["mean"]),
            fmt_duration(m["first_response_seconds"]["mean"]),
            fmt_duration(m["resolution_seconds"]["p50"]), fmt_ratio(m["one_touch_rate"]),
            fmt_duration(m["handle_seconds"]["mean"]), fmt_ratio(m["callback_compliance"]),
        ])  # fmt: skip
    out.append("<h2>KPIs per channel and queue</h2>")
    out.append(_table(["channel", "queue", "queued", "service level", "abandoned",
                       "callback req.", "ASA", "FRT direct", "FRT", "resolution p50",
                       "one-touch", "AHT", "callbacks ≤24 h"], rows, left=2))  # fmt: skip
    out.append(f'<p class="muted">{_esc(KPI_NOTE)}</p>')
    # the mean day per queue: traffic and agents (Erlang C's against busy and staffed)
    profiles = intraday_profiles(report)
    if profiles:
        out.append('<h2>Intraday, per queue (the mean day)</h2><div class="charts">')
        for name, q in profiles.items():
            agents = {"busy": q["busy"], "required (Erlang C)": q["required"]}
            if any(v is not None for v in q["staffed"]):
                agents["staffed"] = q["staffed"]
            out.append(line_chart(f"{name}: agents per interval", q["slots"], agents))
            out.append(line_chart(f"{name}: offered per interval", q["slots"],
                                  {"offered": q["offered"]}))  # fmt: skip
        out.append("</div>")
    rows_a, n_agents = agent_rows(report)
    if rows_a:
        out.append(f"<h2>Agents ({len(rows_a)} of {n_agents})</h2>")
        out.append(_table(AGENT_HEADER, [[_esc(c) for c in r] for r in rows_a]))
    # IVR
    breaches = []
    for r in report["ivr"]:
        if r["period"] == "total" and r["menu"] != ALL:
            m = r["metrics"]
            total = (m["ivr_depth_exceeded"] + m["ivr_repeated_input"]
                     + m["ivr_disconnected_before_handoff"])  # fmt: skip
            if total:
                breaches.append((f"{r['flow']} › {r['menu']}", float(total)))
    out.append('<h2>IVR rule breaches (KS S 1006 6.4.1)</h2><div class="charts">')
    out.append(bar_chart("breaches per flow and menu", sorted(breaches, key=lambda b: -b[1])))
    rejected = [(k, float(v)) for k, v in report["rejected"]["by_reason"].items() if v]
    out.append(bar_chart("rejected events by reason", rejected))
    out.append("</div>")
    # scorecard and benchmark
    out.append("<h2>KS S 1006 scorecard</h2>")
    srows = []
    for item in report.get("scorecard", []):
        counts = ", ".join(f"{k} {v}" for k, v in item["counts"].items()
                           if not isinstance(v, list))  # fmt: skip
        cls = {"fail": "fail", "pass": "pass"}.get(item["status"], "muted")
        examples = _esc(", ".join(item["examples"][:3]))
        status = f'<span class="{cls}">{_esc(item["status"])}</span>'
        srows.append([status, _esc(item["ks"]), _esc(item["item"]), _esc(counts), examples])
    out.append(_table(["result", "KS S 1006", "item", "counts", "examples"], srows, left=5))
    out.append("<h2>CX benchmark (Zendesk / ESG, APAC 2021)</h2>")
    brows = []
    for b in report.get("benchmark", []):

        def show(v: float | None, unit: str = b["unit"]) -> str:
            if v is None:
                return "–"
            return f"{v * 100:.0f}%" if unit == "ratio" else f"{v:g} {unit}"

        brows.append([_esc(b["kpi"].replace("_", " ")), show(b["centre"]), show(b["champions"]),
                      show(b["starters"]), _esc(b["level"])])  # fmt: skip
    out.append(_table(["KPI", "this centre", "champions", "starters", "level"], brows))
    # alerts
    alerts = report.get("alerts", [])
    out.append(f"<h2>Alerts ({len(alerts)})</h2>")
    out.append(timeline_chart("alert timeline (red: critical, amber: warning)", alerts))
    arows = [
        [
            _esc(a["starts_at"][:19].replace("T", " ")),
            _esc(fmt_duration(a["duration_seconds"]) if a["ends_at"] else "firing at end"),
            _esc(a["severity"]),
            _esc(a["alertname"]),
            _esc(a["summary"]),
        ]
        for a in alerts
    ]
    out.append(_table(["start", "duration", "severity", "alert", "summary"], arows, left=5))
    # rejected events
    rej = report["rejected"]
    out.append(f"<h2>Rejected events ({rej['total']:,})</h2>")
    out.append(_table(["source", "line", "reason", "detail"],
                      [[_esc(r["source"]), str(r["line"]), _esc(r["reason"]), _esc(r["detail"])]
                       for r in rej["events"][:200]], left=4))  # fmt: skip
    out.append("</body></html>\n")
    return "".join(out)
