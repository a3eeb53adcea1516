"""The readable summary of a replay report (Markdown, which also reads well in a terminal)."""

from __future__ import annotations

from typing import Any

from kpis.catalogue import ALL


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def fmt_int(value: int | None) -> str:
    """A count, or – where it is not measured (a source that never records it)."""
    return "–" if value is None else f"{value:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def has_own(m: dict[str, Any]) -> bool:
    """Whether a row has contacts of its own (started or queued in it). A period without any
    holds only the ends of earlier ones (an e-mail answered days later, a resolution final
    after its reopen window): its rates would describe other days' contacts, so a reader
    sees – (nothing to measure), not "service level 0.0 %, one-touch 100.0 %"."""
    return bool(m["contacts"] or m["queued"])


def _kpi_row(m: dict[str, Any], mixed: bool = False) -> list[str]:
    """``mixed``: a row over channels, whose durations would average e-mail hours with voice
    seconds: left out (–)."""

    own = has_own(m)

    def d(v: float | None) -> str:
        return "–" if mixed or not own else fmt_duration(v)

    def r(v: float | None) -> str:
        return fmt_ratio(v) if own else "–"

    return [
        f"{m['contacts']:,}",
        f"{m['queued']:,}",
        r(m["service_level"]),
        r(m["abandonment_rate"]),
        f"{m['queue_callback_requests']:,}",
        d(m["answer_seconds"]["mean"]),
        d(m["first_response_direct_seconds"]["mean"]),
        d(m["first_response_seconds"]["mean"]),
        d(m["first_response_seconds"]["p90"]),
        d(m["resolution_seconds"]["p50"]),
        r(m["one_touch_rate"]),
        d(m["handle_seconds"]["mean"]),
        d(m["segment_handle_seconds"]["mean"]),
        r(m["transfer_rate"]),
        r(m["callback_compliance"]),
    ]


KPI_HEADER = [
    "contacts",
    "queued",
    "service level",
    "abandoned",
    "callback req.",
    "ASA",
    "FRT direct",
    "FRT",
    "FRT p90",
    "resolution p50",
    "one-touch",
    "AHT",
    "AHT own part",
    "transfers",
    "callbacks ≤24 h",
]


KPI_NOTE = (
    "ASA, FRT direct and FRT are means. FRT counts a callback's answer as its case's first "
    'response; FRT direct leaves those cases out. "callback req.": queued contacts that '
    "left the queue by requesting a callback, not counted as abandoned. AHT counts every "
    "agent's part of a contact in the queue the contact was in at the part's end (a "
    'transferring agent\'s part in the receiving queue); "AHT own part" counts each part in '
    "the queue it served (docs/kpis.md)."
)


def intraday_profiles(report: dict[str, Any], top: int = 8) -> dict[str, dict[str, Any]]:
    """Per queue (tenant-wide; the ``top`` busiest), the mean day: per interval of the day the
    mean offered, busy, staffed and required agents over the days the queue had activity."""
    rows = [r for r in report.get("intervals", []) if r["tenant"] == ALL]
    per: dict[str, dict[str, Any]] = {}
    for r in rows:
        name = f"{r['channel']} / {r['queue']}"
        q = per.setdefault(name, {"days": set(), "slots": {}, "offered": 0})
        q["days"].add(r["interval"][:10])
        q["offered"] += r["offered"]
        slot = q["slots"].setdefault(r["interval"][11:16], [0.0, 0.0, 0.0, 0.0, 0])
        slot[0] += r["offered"]
        slot[1] += r["busy_agents"]
        slot[2] += r["staffed_agents"] or 0.0
        slot[3] += r["required_agents"] or 0.0
        slot[4] += 1 if r["staffed_agents"] is not None else 0
    busiest = sorted(per, key=lambda n: -per[n]["offered"])[:top]
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(busiest):
        q = per[name]
        days = len(q["days"])
        slots = sorted(q["slots"])
        out[name] = {
            "slots": slots,
            "offered": [q["slots"][s][0] / days for s in slots],
            "busy": [q["slots"][s][1] / days for s in slots],
            "staffed": [q["slots"][s][2] / days if q["slots"][s][4] else None for s in slots],
            "required": [q["slots"][s][3] / days for s in slots],
        }
    return out


def agent_rows(report: dict[str, Any], limit: int = 50) -> tuple[list[list[str]], int]:
    rows = [r for r in report.get("agents", []) if r["period"] == "total" and r["tenant"] == ALL]
    rows.sort(key=lambda r: (-r["metrics"]["agent_handled"], r["agent"]))
    # missed offers are measured only where the source records offers (agent.offered)
    offered = any(r["metrics"].get("agent_offers") for r in rows)
    out = []
    for r in rows[:limit]:
        m = r["metrics"]
        missed = fmt_int(m["agent_offers_missed"]) if offered else "–"
        hung_up = fmt_int(m["agent_hung_up_first"])
        out.append([
            r["agent"], f"{m['agent_handled']:,}", fmt_duration(m["agent_handle_seconds"]["mean"]),
            fmt_duration(m["agent_talk_seconds"]["mean"]),
            fmt_duration(m["agent_hold_seconds"]["mean"]),
            fmt_duration(m["agent_acw_seconds"]["mean"]), fmt_int(m["agent_transferred"]),
            fmt_ratio(m["agent_occupancy"]), fmt_ratio(m["agent_utilisation"]),
            fmt_ratio(m["agent_csat"]), missed, hung_up,
        ])  # fmt: skip
    return out, len(rows)


AGENT_HEADER = ["agent", "handled", "AHT", "talk", "hold", "after-contact work", "transfers",
                "occupancy", "utilisation", "CSAT", "missed offers", "hung up first"]  # fmt: skip


REASON_HEADER = ["reason", "contacts", "share of coded", "mean handle time", "one-touch",
                 "repeat rate", "cases closed unresolved", "cases open at the end"]  # fmt: skip


def reason_rows(report: dict[str, Any], limit: int = 10) -> list[list[str]]:
    """The most frequent contact reasons over the whole report (empty: none was coded)."""
    rows = [r for r in report.get("reasons", []) if r["period"] == "total" and r["tenant"] == ALL
            and r["channel"] == ALL and r["queue"] == ALL]  # fmt: skip
    rows.sort(key=lambda r: (-r["metrics"]["reason_contacts"], r["reason"]))
    out = []
    for r in rows[:limit]:
        m = r["metrics"]
        out.append([r["reason"], f"{m['reason_contacts']:,}", fmt_ratio(m["share"]),
                    fmt_duration(m["reason_handle_seconds"]["mean"]),
                    fmt_ratio(m["reason_one_touch_rate"]), fmt_ratio(m["reason_repeat_rate"]),
                    f"{m['reason_cases_unresolved']:,}",
                    f"{m['reason_cases_open_at_end']:,}"])  # fmt: skip
    return out


COMPLAINT_HEADER = ["category", "opened", "closed", "open at the end", "acknowledged in target",
                    "mean time to acknowledge", "closed in target", "mean time to close",
                    "overdue", "escalated", "reopened"]  # fmt: skip


def complaint_rows(report: dict[str, Any]) -> list[list[str]]:
    """Complaints over the whole report per category, all categories first (empty: none)."""
    rows = [r for r in report.get("complaints", []) if r["period"] == "total"
            and r["tenant"] == ALL and r["channel"] == ALL]  # fmt: skip
    rows.sort(key=lambda r: (r["category"] != ALL, -r["metrics"]["complaints_opened"],
                             r["category"]))  # fmt: skip
    out = []
    for r in rows:
        m = r["metrics"]
        out.append(["all" if r["category"] == ALL else r["category"],
                    f"{m['complaints_opened']:,}", f"{m['complaints_closed']:,}",
                    f"{m['complaints_open_at_end']:,}",
                    fmt_ratio(m["complaint_ack_in_target_rate"]),
                    fmt_duration(m["complaint_ack_seconds"]["mean"]),
                    fmt_ratio(m["complaint_close_in_target_rate"]),
                    fmt_duration(m["complaint_close_seconds"]["mean"]),
                    f"{m['complaints_overdue']:,}", f"{m['complaints_escalated']:,}",
                    f"{m['complaints_reopened']:,}"])  # fmt: skip
    return out


def complaints_line(report: dict[str, Any]) -> str:
    """Complaints per 1,000 contacts in one sentence ("not measured" without complaints)."""
    total: dict[str, Any] = next((r["metrics"] for r in report["kpis"] if r["period"] == "total"
                                  and r["tenant"] == ALL and r["channel"] == ALL
                                  and r["queue"] == ALL), {})  # fmt: skip
    per = total.get("complaints_per_contact")
    if not total.get("complaints") or per is None:
        return "Complaints: not measured (no complaint event in this input)."
    return (f"Complaints: {total['complaints']:,} on {total['contacts']:,} contacts, "
            f"{per * 1000:.1f} per 1,000 contacts.")  # fmt: skip


def pause_line(report: dict[str, Any]) -> str:
    """All agents' time away per pause reason, the longest first (empty: no reason given)."""
    rows = [r for r in report.get("agent_pauses", []) if r["period"] == "total"
            and r["tenant"] == ALL and r["agent"] == ALL]  # fmt: skip
    spent = sorted(((r["metrics"]["agent_pause_seconds"]["mean"] or 0.0)
                    * r["metrics"]["agent_pause_seconds"]["count"], r["reason"])
                   for r in rows)  # fmt: skip
    if not spent:
        return ""
    return (
        "Time away per pause reason: "
        + ", ".join(f"{reason} {fmt_duration(seconds)}" for seconds, reason in reversed(spent))
        + "."
    )


def repeat_line(report: dict[str, Any]) -> str:
    """The centre's repeat contacts in one sentence ("not measured" without customer ids)."""
    total: dict[str, Any] = next((r["metrics"] for r in report["kpis"] if r["period"] == "total"
                  and r["tenant"] == ALL and r["channel"] == ALL and r["queue"] == ALL),
                 {})  # fmt: skip
    days = report["config"]["engine"]["repeat_window_seconds"] / 86_400
    identified = total.get("contacts_identified", 0)
    if not identified or not days:
        return ("Repeat contacts: not measured (no inbound contact with a customer id"
                + ("" if days else "; engine.repeat_window_seconds is 0") + ").")  # fmt: skip
    return (f"Repeat contacts: {total['contacts_repeated']:,} of {identified:,} inbound contacts "
            f"with a customer id ({fmt_ratio(total['repeat_rate'])}) were followed by another "
            f"contact of the same customer within {days:g} days; one-touch resolution "
            f"{fmt_ratio(total.get('one_touch_rate'))}.")  # fmt: skip


def import_notes(report: dict[str, Any]) -> list[str]:
    """What importers skipped or warned about, one line per source (they are in the JSON's
    ``input.sources[].import`` too): a report must not hide them."""
    out = []
    for src in report["input"]["sources"]:
        imp = src.get("import")
        if not imp:
            continue
        parts = [f"{imp['records']:,} records read, {imp['events']:,} events made"]
        parts += [f"{n:,} skipped: {why.replace('_', ' ')}" for why, n in imp["skipped"].items()]
        parts += [f"{n:,} {what.replace('_', ' ')}" for what, n in imp["warnings"].items()]
        out.append(f"{src['name']} ({imp['format']}): " + "; ".join(parts))
    for what, sources in report["input"].get("not_recorded", {}).items():
        partial = "; handle time is talk time without it" if what != "transfers" else ""
        out.append(f"{what.replace('_', '-')}: not recorded by {', '.join(sources)}, so "
                   f"shown as – (not measured), never 0{partial}")  # fmt: skip
    ids = report["input"].get("agent_ids")
    if ids:
        out.append(f"agent ids: {ids}" + (" (show_agent_names)" if ids != "pseudonymized"
                                           else " with the pseudonym key"))  # fmt: skip
    return out


def fmt_count(key: str, value: Any) -> str:
    """A scorecard count as a reader expects it: durations in a unit, shares in percent,
    nothing measured as a dash (never a raw ``None``)."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key.endswith("_seconds"):
        return fmt_duration(float(value))
    if isinstance(value, float) and 0 <= value <= 1 and key not in ("breaches",):
        return fmt_ratio(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def count_label(key: str) -> str:
    """``downtime_seconds`` reads "downtime" (its value carries the unit)."""
    return key.removesuffix("_seconds").replace("_", " ")


def scorecard_counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{count_label(k)} {fmt_count(k, v)}" for k, v in counts.items()
                     if not isinstance(v, list | dict))  # fmt: skip


def fmt_benchmark(v: float | None, unit: str) -> str:
    """A benchmark figure: a share in percent, an hour under one as minutes."""
    if v is None:
        return "–"
    if unit == "ratio":
        return f"{v * 100:.0f}%"
    if unit == "h" and v < 1:
        return f"{v * 60:.1f} min"
    if unit == "channels":
        return f"{v:g}"
    return f"{v:g} {unit}"


IVR_HEADER = ["flow", "menu", "entries / visits", "containment", "IVR time",
              "deeper than limit", "asked twice", "system drop before agent",
              "agent request not routed", "greeting too long"]  # fmt: skip

MIXED_NOTE = (
    "The all-channel row leaves out durations: a mean over e-mail hours and voice seconds "
    "says nothing; read each channel's. A day, week or month with no contact of its own "
    "(only later answers or resolutions of earlier days' contacts) shows its rates as –: "
    "there is nothing of its own to measure."
)


def render_markdown(report: dict[str, Any]) -> str:
    ev = report["events"]
    inp = report["input"]
    lines = [
        "# cc-monitor replay report",
        "",
        f"- input: {len(inp['sources'])} source(s), digest `{inp['digest'][:16]}…`",
        f"- events: {ev['lines']:,} lines, {ev['accepted']:,} accepted, "
        f"{ev['rejected']:,} rejected; last event {ev['last_event_time']}",
        f"- time zone for days / weeks / months: {report['config']['timezone']}",
        "",
        "## KPIs by channel and queue (whole log)",
        "",
    ]
    total_rows = [r for r in report["kpis"] if r["period"] == "total" and r["tenant"] == ALL]
    rows = []
    for r in total_rows:
        if r["queue"] == "-":
            continue  # contacts before they reach a queue; counted in their channel's row
        label = "**all**" if r["channel"] == ALL else r["channel"]
        queue = "" if r["queue"] == ALL else r["queue"]
        cells = _kpi_row(r["metrics"], mixed=r["channel"] == ALL)
        if queue:
            cells[0] = ""  # contacts are counted where they start, before any queue
        rows.append([label, queue, *cells])
    lines += _table(["channel", "queue", *KPI_HEADER], rows)
    lines += ["", KPI_NOTE, "", MIXED_NOTE]
    notes = import_notes(report)
    if notes:
        lines += ["", "## What the importer skipped or warned about", ""]
        lines += [f"- {n}" for n in notes]
    for period in ("day", "week", "month"):
        prows = [
            [r["bucket"], *_kpi_row(r["metrics"], mixed=True)]
            for r in report["kpis"]
            if r["period"] == period and r["tenant"] == ALL and r["channel"] == ALL
        ]
        if len(prows) > 1 or period == "day":
            lines += ["", f"## All channels per {period}", ""]
            lines += _table([period, *KPI_HEADER], prows)
    voice_rows = [
        r for r in report["kpis"]
        if r["period"] == "total" and r["tenant"] == ALL and r["queue"] == ALL
        and r["metrics"]["surveys_answered"]
    ]  # fmt: skip
    if voice_rows:
        lines += ["", "## The customer's voice (surveys, on the contacts they rate)", ""]
        vrows = []
        for r in voice_rows:
            m = r["metrics"]
            nps = m["nps"]
            vrows.append([
                "**all**" if r["channel"] == ALL else r["channel"],
                f"{m['surveys_answered']:,}", fmt_ratio(m["survey_response_rate"]),
                fmt_ratio(m["csat"]), fmt_ratio(m["csat_one_touch"]),
                fmt_ratio(m["csat_multi_touch"]), fmt_ratio(m["ces_easy"]),
                "–" if m["survey_ces_score"]["mean"] is None
                else f"{m['survey_ces_score']['mean']:.2f}",
                "–" if nps is None else f"{nps * 100:+.0f}",
            ])  # fmt: skip
        lines += _table(["channel", "answered", "response rate", "CSAT", "CSAT one-touch",
                         "CSAT multi-touch", "service is easy (CES)", "mean effort", "NPS"],
                        vrows)  # fmt: skip
    reasons = reason_rows(report)
    if reasons:
        lines += ["", "## Contact reasons (the most frequent)", ""]
        lines += _table(REASON_HEADER, reasons)
    lines += ["", repeat_line(report)]
    complaints = complaint_rows(report)
    lines += ["", "## Complaints (KS S 1006 다.(1))", "", complaints_line(report)]
    if complaints:
        lines += ["", *_table(COMPLAINT_HEADER, complaints)]
    rows_a, n_agents = agent_rows(report)
    if rows_a:
        shown = "" if n_agents <= len(rows_a) else f" (the {len(rows_a)} busiest of "
        shown += f"{n_agents})" if shown else ""
        lines += ["", f"## Agents{shown}", ""]
        lines += _table(AGENT_HEADER, rows_a)
        lines += ["", "Occupancy is – where the source reports no agent states (not measured)."]
        pauses = pause_line(report)
        if pauses:
            lines += ["", pauses]
    if report.get("targets"):
        lines += ["", "## Targets per queue", ""]
        trows = [
            [
                t["tenant"], t["channel"], t["queue"],
                fmt_duration(t["service_level_seconds"]),
                fmt_ratio(t["service_level_goal"]), fmt_ratio(t["service_level"]),
                fmt_duration(t["first_response_seconds"]), fmt_ratio(t["first_response_sla"]),
                fmt_duration(t["resolution_seconds"]), fmt_ratio(t["resolution_sla"]),
                t["calendar"] or "wall clock",
            ]
            for t in report["targets"]
        ]  # fmt: skip
        lines += _table(["tenant", "channel", "queue", "SL within", "SL goal", "SL",
                         "FRT target", "FRT met", "resolution target", "resolution met",
                         "hours"], trows)  # fmt: skip
    lines += ["", "## IVR (KS S 1006 6.4.1)", ""]
    irows = []
    for r in report["ivr"]:
        if r["period"] != "total":
            continue
        m = r["metrics"]
        irows.append(
            [
                "**all**" if r["flow"] == ALL else r["flow"],
                "" if r["menu"] == ALL else r["menu"],
                f"{m['ivr_entries']:,}" if r["menu"] == ALL else f"{m['ivr_menu_visits']:,}",
                fmt_ratio(m["containment"]) if r["menu"] == ALL else "",
                fmt_duration(m["ivr_time_seconds"]["mean"]) if r["menu"] == ALL else "",
                str(m["ivr_depth_exceeded"]),
                str(m["ivr_repeated_input"]),
                str(m["ivr_disconnected_before_handoff"]),
                str(m["ivr_agent_request_not_routed"]),
                str(m["ivr_greeting_too_long"]),
            ]
        )
    lines += _table(IVR_HEADER, irows)
    srows = [
        [
            r["component"],
            str(r["metrics"]["system_down"]),
            fmt_duration(r["metrics"]["system_downtime_seconds"]["mean"]),
        ]
        for r in report["system"]
        if r["period"] == "total" and r["tenant"] == ALL
    ]
    if srows:
        lines += ["", "## Platform incidents", ""]
        lines += _table(["component", "times down", "mean downtime"], srows)
    lines += ["", "## KS S 1006 scorecard", ""]
    srows = []
    for item in report.get("scorecard", []):
        counts = scorecard_counts(item["counts"])
        status = item["status"].upper() if item["status"] == "fail" else item["status"]
        srows.append([status, item["ks"], item["item"], counts, ", ".join(item["examples"][:3])])
    lines += _table(["result", "KS S 1006", "item", "counts", "examples"], srows)
    lines += ["", "## CX benchmark (Zendesk / ESG, APAC 2021)", ""]
    brows = []
    for b in report.get("benchmark", []):
        unit = b["unit"]
        brows.append([b["kpi"].replace("_", " "), fmt_benchmark(b["centre"], unit),
                      fmt_benchmark(b["champions"], unit), fmt_benchmark(b["starters"], unit),
                      b["level"], b.get("note", "")])  # fmt: skip
    lines += _table(["KPI", "this centre", "champions", "starters", "level", "note"], brows)
    alerts = report.get("alerts", [])
    lines += ["", f"## Alerts: {len(alerts)}", ""]
    if alerts:
        arows = []
        for a in alerts:
            group = ", ".join(
                f"{k}={v}" for k, v in a["labels"].items()
                if k not in ("alertname", "severity", "tenant")
            )  # fmt: skip
            arows.append([
                a["starts_at"][:19].replace("T", " "),
                fmt_duration(a["duration_seconds"]) if a["ends_at"] else "firing at end",
                a["severity"],
                a["alertname"],
                group,
                a["summary"],
            ])  # fmt: skip
        lines += _table(["start", "duration", "severity", "alert", "group", "summary"], arows)
    if report["queues_at_end"]:
        lines += ["", "## Still waiting at the last event", ""]
        lines += _table(
            ["channel", "queue", "waiting", "oldest wait"],
            [
                [
                    q["channel"],
                    q["queue"],
                    str(q["waiting"]),
                    fmt_duration(q["oldest_wait_seconds"]),
                ]
                for q in report["queues_at_end"]
            ],
        )
    if report["data_quality"]:
        lines += ["", "## Data quality", ""]
        lines += [f"- {k.replace('_', ' ')}: {v:,}" for k, v in report["data_quality"].items()]
    rej = report["rejected"]
    lines += ["", f"## Rejected events: {rej['total']:,}", ""]
    if rej["total"]:
        lines += [f"- {k}: {v:,}" for k, v in rej["by_reason"].items() if v]
        lines += ["", "First ones (source:line reason: detail):", ""]
        for r in rej["events"][:10]:
            lines.append(f"- {r['source']}:{r['line']} {r['reason']}: {r['detail']}")
        if rej["listed"] < rej["total"]:
            lines.append(f"- … {rej['total'] - rej['listed']:,} more are counted, not listed")
    return "\n".join(lines) + "\n"
