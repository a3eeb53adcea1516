"""A self-contained HTML rendering of a replay report.

No script, no external resource: charts are inline SVG drawn here, so the file opens anywhere
without a network, prints well, and the same report gives the same bytes.
"""

from __future__ import annotations

import html
from typing import Any

from cc_monitor.render import (
    AGENT_HEADER,
    COMPLAINT_HEADER,
    IVR_HEADER,
    KPI_NOTE,
    MIXED_NOTE,
    REASON_HEADER,
    agent_rows,
    complaint_rows,
    complaints_line,
    fmt_benchmark,
    fmt_duration,
    fmt_ratio,
    has_own,
    import_notes,
    intraday_profiles,
    reason_rows,
    repeat_line,
    scorecard_counts,
)
from kpis.catalogue import ALL

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Roboto,Noto Sans KR,NanumGothic,Malgun Gothic,
"CC Wallboard",sans-serif;margin:24px;
color:#1f2328}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de}table{border-collapse:collapse;margin:6px 0 12px}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:right}th{background:#f6f8fa}
td.l,th.l{text-align:left}.fail{color:#d1242f;font-weight:600}.pass{color:#1a7f37}
.muted{color:#656d76}.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;width:560px}
figure svg{max-width:100%;height:auto}figure.wide{width:auto}
figcaption{font-size:12px;color:#656d76}svg text{font-size:10px;fill:#656d76}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _figure(title: str, svg: str, note: str = "") -> str:
    return f"<figure>{svg}<figcaption>{_esc(title)}{note}</figcaption></figure>"


def line_chart(
    title: str,
    labels: list[str],
    series: dict[str, list[float | None]],
    fmt: Any = None,
    *,
    target: float | None = None,
    partial: frozenset[int] = frozenset(),
    unit: str = "",
) -> str:
    """A line chart (cc_monitor.charts, matplotlib) in a figure with its caption."""
    if not labels or not any(v is not None for vs in series.values() for v in vs):
        return f"<figure><figcaption>{_esc(title)}: no data</figcaption></figure>"
    from cc_monitor import charts

    note = " · * partial period (hollow, not in the scale)" if partial else ""
    svg = charts.line_chart(labels, series, target=target, partial=partial, unit=unit, fmt=fmt,
                            title=title)  # fmt: skip
    return _figure(title, svg, note)


def bar_chart(title: str, bars: list[tuple[str, float]]) -> str:
    if not bars:
        return f"<figure><figcaption>{_esc(title)}: none</figcaption></figure>"
    from cc_monitor import charts

    return _figure(title, charts.bar_chart(bars, title=title))


def timeline_chart(title: str, alerts: list[dict[str, Any]]) -> str:
    """Alerts as bars from start to end over the report's span."""
    if not alerts:
        return f"<figure><figcaption>{_esc(title)}: none</figcaption></figure>"
    from cc_monitor import charts

    return (
        f'<figure class="wide">{charts.timeline_chart(alerts, title=title)}'
        f"<figcaption>{_esc(title)}</figcaption></figure>"
    )


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
                row = self.by.get((b, ch), {})
                m = row.get(metric) if not row or has_own(row) else None
                v = m.get(sub) if isinstance(m, dict) and sub else m
                vals.append(None if v is None else v / scale)
            out[ch] = vals
        return out


def _voice_and_targets(report: dict[str, Any]) -> list[str]:
    """The customer's voice and the targets per queue, as the terminal summary has them."""
    out = []
    rows = [r for r in report["kpis"] if r["period"] == "total" and r["tenant"] == ALL
            and r["queue"] == ALL and r["metrics"]["surveys_answered"]]  # fmt: skip
    if rows:
        out.append("<h2>The customer's voice (surveys, on the contacts they rate)</h2>")
        vrows = []
        for r in rows:
            m = r["metrics"]
            nps = m["nps"]
            vrows.append([
                _esc("all" if r["channel"] == ALL else r["channel"]),
                f"{m['surveys_answered']:,}", fmt_ratio(m["survey_response_rate"]),
                fmt_ratio(m["csat"]), fmt_ratio(m["csat_one_touch"]),
                fmt_ratio(m["csat_multi_touch"]), fmt_ratio(m["ces_easy"]),
                "–" if nps is None else f"{nps * 100:+.0f}",
            ])  # fmt: skip
        out.append(
            _table(
                [
                    "channel",
                    "answered",
                    "response rate",
                    "CSAT",
                    "CSAT one-touch",
                    "CSAT multi-touch",
                    "service is easy (CES)",
                    "NPS",
                ],
                vrows,
            )
        )
    if report.get("targets"):
        out.append("<h2>Targets per queue</h2>")
        out.append(_table(
            ["tenant", "channel", "queue", "SL within", "SL goal", "SL", "FRT target",
             "FRT met", "resolution target", "resolution met", "hours"],
            [[_esc(t["tenant"]), _esc(t["channel"]), _esc(t["queue"]),
              fmt_duration(t["service_level_seconds"]), fmt_ratio(t["service_level_goal"]),
              fmt_ratio(t["service_level"]), fmt_duration(t["first_response_seconds"]),
              fmt_ratio(t["first_response_sla"]), fmt_duration(t["resolution_seconds"]),
              fmt_ratio(t["resolution_sla"]), _esc(t["calendar"] or "wall clock")]
             for t in report["targets"]], left=3))  # fmt: skip
    return out


REASONS_SHOWN = 15


def _reasons(report: dict[str, Any]) -> list[str]:
    """Contact reasons over the whole report (KS S 1006 나.(4) 3), the cause analysis): the
    most frequent, and the unresolved cases by reason; "not measured" when no event had one."""
    out = ["<h2>Contact reasons (wrap-up codes)</h2>", f"<p>{_esc(repeat_line(report))}</p>"]
    rows = [r for r in report.get("reasons", []) if r["period"] == "total" and r["tenant"] == ALL
            and r["channel"] == ALL and r["queue"] == ALL]  # fmt: skip
    if not rows:
        out.append("<p>Not measured: no event in this input carried a reason code "
                   "(<code>reasons</code> on <code>wrapup.ended</code> or "
                   "<code>contact.ended</code>).</p>")  # fmt: skip
        return out
    rows.sort(key=lambda r: (-r["metrics"]["reason_contacts"], r["reason"]))
    top = rows[:REASONS_SHOWN]
    out.append('<div class="charts">')
    bars = [(r["reason"], float(r["metrics"]["reason_contacts"])) for r in top]
    out.append(bar_chart("contacts per reason", bars))
    for series, title in (
        ("reason_cases_unresolved", "cases closed unresolved, per reason"),
        ("reason_cases_open_at_end", "cases still open at the end, per reason"),
    ):
        open_ = sorted(((r["reason"], float(r["metrics"][series])) for r in rows
                        if r["metrics"][series]), key=lambda b: (-b[1], b[0]))  # fmt: skip
        if open_ or series == "reason_cases_unresolved":
            out.append(bar_chart(title, open_[:REASONS_SHOWN]))
    out.append("</div>")
    out.append(_table(REASON_HEADER, [[_esc(c) for c in row]
                               for row in reason_rows(report, REASONS_SHOWN)]))  # fmt: skip
    if len(rows) > REASONS_SHOWN:
        out.append(f"<p>{len(rows) - REASONS_SHOWN} more reasons in the JSON report.</p>")
    return out


def _complaints(report: dict[str, Any]) -> list[str]:
    """Complaints per category (KS S 1006 다.(1)): volumes, times against the targets, the
    overdue ones; "not measured" without complaint events."""
    out = ["<h2>Complaints (KS S 1006 다.(1))</h2>", f"<p>{_esc(complaints_line(report))}</p>"]
    rows = complaint_rows(report)
    if not rows:
        return out
    bars = [(r[0], float(r[1].replace(",", ""))) for r in rows if r[0] != "all"]
    out.append('<div class="charts">')
    out.append(bar_chart("complaints opened, per category", bars[:REASONS_SHOWN]))
    overdue = sorted(((r[0], float(r[8].replace(",", ""))) for r in rows
                      if r[0] != "all" and r[8] != "0"), key=lambda b: (-b[1], b[0]))  # fmt: skip
    out.append(bar_chart("complaints past their close target, per category", overdue))
    out.append("</div>")
    out.append(_table(COMPLAINT_HEADER, [[_esc(c) for c in row] for row in rows]))
    return out


def _ivr_and_platform(report: dict[str, Any]) -> list[str]:
    out = ["<h3>Per flow and menu</h3>"]
    rows = []
    for r in report["ivr"]:
        if r["period"] != "total":
            continue
        m = r["metrics"]
        whole = r["menu"] == ALL
        rows.append([
            _esc("all" if r["flow"] == ALL else r["flow"]), _esc("" if whole else r["menu"]),
            f"{m['ivr_entries'] if whole else m['ivr_menu_visits']:,}",
            fmt_ratio(m["containment"]) if whole else "",
            fmt_duration(m["ivr_time_seconds"]["mean"]) if whole else "",
            *(f"{m[k]:,}" for k in ("ivr_depth_exceeded", "ivr_repeated_input",
                                    "ivr_disconnected_before_handoff",
                                    "ivr_agent_request_not_routed", "ivr_greeting_too_long")),
        ])  # fmt: skip
    out.append(_table(IVR_HEADER, rows, left=2))
    srows = [[_esc(r["component"]), f"{r['metrics']['system_down']:,}",
              fmt_duration(r["metrics"]["system_downtime_seconds"]["mean"])]
             for r in report["system"]
             if r["period"] == "total" and r["tenant"] == ALL]  # fmt: skip
    if srows:
        out.append("<h2>Platform incidents</h2>")
        out.append(_table(["component", "times down", "mean downtime"], srows))
    return out


LIVE = frozenset({"voice", "chat", "video"})
WRITTEN = frozenset({"email", "sms", "social"})


def _partial(buckets: list[str], by: dict[Any, Any]) -> frozenset[int]:
    """The buckets at either end with under half the median contacts: periods the log covers
    only in part (the tail days of late callbacks and answers, a week cut short)."""
    counts = [by.get((b, ALL), {}).get("contacts", 0) for b in buckets]
    if len(counts) < 2:
        return frozenset()
    ordered = sorted(counts)
    bar = 0.5 * ordered[len(ordered) // 2] if len(counts) > 2 else 0.5 * max(counts)
    out = set()
    for indices in (range(len(counts)), range(len(counts) - 1, -1, -1)):
        for i in indices:
            if counts[i] >= bar:
                break
            out.add(i)
    if len(out) == len(counts):
        return frozenset()
    return frozenset(out)


def _unit(series: dict[str, list[float | None]], partial: frozenset[int]) -> tuple[str, float]:
    values = [v for vs in series.values() for i, v in enumerate(vs)
              if v is not None and i not in partial] or [0.0]  # fmt: skip
    top = max(values)
    if top < 120:
        return "s", 1.0
    if top < 2 * 3600:
        return "min", 60.0
    return "h", 3600.0


def _font_face() -> str:
    """The Korean glyphs the report's own text needs (KS S 1006's clause numbers), inline: a
    subset of NanumGothic (OFL; streams/kafka/web/OFL.txt), for machines without Korean fonts."""
    import base64
    from importlib import resources

    font = (resources.files("streams.kafka") / "web" / "wallboard-font.ttf").read_bytes()
    return ('@font-face{font-family:"CC Wallboard";src:url(data:font/ttf;base64,'
            f'{base64.b64encode(font).decode()}) format("truetype")}}')  # fmt: skip


def render_html(report: dict[str, Any]) -> str:
    ev = report["events"]
    out = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        "<title>cc-monitor replay report</title>",
        f"<style>{_font_face()}{CSS}</style></head><body>",
        "<h1>cc-monitor replay report</h1>",
        f'<p class="muted">input digest <code>{_esc(report["input"]["digest"])}</code> · '
        f"{ev['lines']:,} lines, {ev['accepted']:,} events, {ev['rejected']:,} rejected · last "
        f"event {_esc(ev['last_event_time'])} · days in {_esc(report['config']['timezone'])}</p>",
    ]
    # per channel and queue
    rows = []
    for r in report["kpis"]:
        if r["period"] != "total" or r["tenant"] != ALL or r["queue"] == "-":
            continue
        m = r["metrics"]
        mixed = r["channel"] == ALL  # durations over channels mislead: left out

        def dur(v: float | None, mixed: bool = mixed) -> str:
            return "–" if mixed else fmt_duration(v)

        rows.append([
            _esc("all" if r["channel"] == ALL else r["channel"]),
            _esc("" if r["queue"] == ALL else r["queue"]),
            f"{m['queued']:,}", fmt_ratio(m["service_level"]), fmt_ratio(m["abandonment_rate"]),
            f"{m['queue_callback_requests']:,}", dur(m["answer_seconds"]["mean"]),
            dur(m["first_response_direct_seconds"]["mean"]),
            dur(m["first_response_seconds"]["mean"]),
            dur(m["resolution_seconds"]["p50"]), fmt_ratio(m["one_touch_rate"]),
            dur(m["handle_seconds"]["mean"]), dur(m["segment_handle_seconds"]["mean"]),
            fmt_ratio(m["callback_compliance"]),
        ])  # fmt: skip
    out.append("<h2>KPIs per channel and queue</h2>")
    out.append(_table(["channel", "queue", "queued", "service level", "abandoned",
                       "callback req.", "ASA", "FRT direct", "FRT", "resolution p50",
                       "one-touch", "AHT", "AHT own part", "callbacks ≤24 h"], rows,
                      left=2))  # fmt: skip
    out.append(f'<p class="muted">{_esc(KPI_NOTE)} {_esc(MIXED_NOTE)}</p>')
    notes = import_notes(report)
    if notes:
        out.append("<h2>What the importer skipped or warned about</h2><ul>")
        out.extend(f"<li>{_esc(n)}</li>" for n in notes)
        out.append("</ul>")
    # the numbers first, then how they moved
    # KPI trends per day, week and month, per channel
    for period in ("day", "week", "month"):
        buckets, data = _period_series(report, period)
        if len(buckets) < 2 and period != "day":
            continue
        series = _Series(buckets, data["channels"], data["by"])
        partial = _partial(buckets, data["by"])
        out.append(f'<h2>Per {period}, per channel</h2><div class="charts">')
        out.append(line_chart("contacts", buckets, series("contacts"), partial=partial))
        out.append(line_chart("service level (%)", buckets, series("service_level", scale=0.01),
                              target=80.0, partial=partial))  # fmt: skip
        out.append(line_chart("abandonment (%)", buckets, series("abandonment_rate", scale=0.01),
                              partial=partial))  # fmt: skip
        out.append(line_chart("one-touch resolution (%)", buckets,
                              series("one_touch_rate", scale=0.01), partial=partial))  # fmt: skip
        # durations: real-time channels apart from the written ones (seconds beside hours
        # would flatten one of them), each chart in the unit its values call for
        for group, names in (("voice, chat, video", LIVE), ("e-mail, SMS, social", WRITTEN)):
            for metric, sub, what in (("first_response_seconds", "p50", "first response p50"),
                                      ("handle_seconds", "mean", "handle time mean")):  # fmt: skip
                raw = {ch: v for ch, v in series(metric, sub).items() if ch in names}
                if not any(v is not None for vs in raw.values() for v in vs):
                    continue
                unit, div = _unit(raw, partial)
                scaled = {ch: [None if v is None else v / div for v in vs]
                          for ch, vs in raw.items()}  # fmt: skip
                out.append(line_chart(f"{what} ({unit}), {group}", buckets, scaled,
                                      partial=partial, unit=unit))  # fmt: skip
        out.append("</div>")
    out.extend(_voice_and_targets(report))
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
    out.extend(_reasons(report))
    out.extend(_complaints(report))
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
    out.extend(_ivr_and_platform(report))
    # scorecard and benchmark
    out.append("<h2>KS S 1006 scorecard</h2>")
    srows = []
    for item in report.get("scorecard", []):
        counts = scorecard_counts(item["counts"])
        cls = {"fail": "fail", "pass": "pass"}.get(item["status"], "muted")
        examples = _esc(", ".join(item["examples"][:3]))
        status = f'<span class="{cls}">{_esc(item["status"])}</span>'
        srows.append([status, _esc(item["ks"]), _esc(item["item"]), _esc(counts), examples])
    out.append(_table(["result", "KS S 1006", "item", "counts", "examples"], srows, left=5))
    out.append("<h2>CX benchmark (Zendesk / ESG, APAC 2021)</h2>")
    brows = []
    for b in report.get("benchmark", []):
        unit = b["unit"]
        brows.append([_esc(b["kpi"].replace("_", " ")), fmt_benchmark(b["centre"], unit),
                      fmt_benchmark(b["champions"], unit), fmt_benchmark(b["starters"], unit),
                      _esc(b["level"]), _esc(b.get("note", ""))])  # fmt: skip
    out.append(
        _table(["KPI", "this centre", "champions", "starters", "level", "note"], brows, left=6)
    )
    # alerts
    alerts = report.get("alerts", [])
    out.append(f"<h2>Alerts ({len(alerts)})</h2>")
    out.append(timeline_chart("alert timeline", alerts))
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
    if report["queues_at_end"]:
        out.append("<h2>Still waiting at the last event</h2>")
        out.append(
            _table(
                ["channel", "queue", "waiting", "oldest wait"],
                [
                    [
                        _esc(q["channel"]),
                        _esc(q["queue"]),
                        f"{q['waiting']:,}",
                        fmt_duration(q["oldest_wait_seconds"]),
                    ]
                    for q in report["queues_at_end"]
                ],
                left=2,
            )
        )
    if report["data_quality"]:
        out.append("<h2>Data quality</h2>")
        out.append(_table(["events that changed nothing: what they refer to was never seen",
                           "count"], [[_esc(k.replace("_", " ")), f"{v:,}"]
                                      for k, v in report["data_quality"].items()]))  # fmt: skip
    # rejected events
    rej = report["rejected"]
    out.append(f"<h2>Rejected events ({rej['total']:,})</h2>")
    out.append(_table(["source", "line", "reason", "detail"],
                      [[_esc(r["source"]), str(r["line"]), _esc(r["reason"]), _esc(r["detail"])]
                       for r in rej["events"][:200]], left=4))  # fmt: skip
    out.append("</body></html>\n")
    return "".join(out)
