"""CSV exports of a replay for audits (``cc-monitor replay ... --csv DIR``): the numbers, the
contacts behind them and the alerts, byte-identical for the same input.

* ``kpis.csv``: one line per number, long format (``period, bucket, tenant, channel, queue,
  metric, value``): every period of the report's KPI rows (total, month, week, day) and its
  intervals (``period = interval``); a duration gives ``.count``, ``.mean``, ``.p50``,
  ``.p90``.
* ``contacts.csv``: one line per contact (streams.sinks.ledger): ids as the events carry them
  (customer ids pseudonymized), times, outcome, durations, IVR path, queue, agents, and the
  reason codes (``reasons``), and the counts it made (``kpis``: ``name@channel/queue``
  entries, ``name[reason]@channel/queue`` for a per-reason count, ``;``-separated).
* ``alerts.csv``: one line per alert: rule, severity, labels, start, end, summary, evidence.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from streams.sinks.ledger import ContactLedger, ContactRow, outcome

DURATION_PARTS = ("count", "mean", "p50", "p90")
CONTACT_COLUMNS = (
    "contact_id", "case_id", "customer_id", "tenant", "channel", "queue", "initiation",
    "started", "queued", "answered", "ended", "ended_by", "outcome", "wait_seconds",
    "handle_seconds", "talk_seconds", "hold_seconds", "acw_seconds", "ivr_path", "agents",
    "reasons", "kpis",
)  # fmt: skip


def _entry(name: str, labels: tuple[str, ...]) -> str:
    """``name@channel/queue``, with ``[reason]`` after the name of a per-reason count."""
    reason = f"[{labels[3]}]" if len(labels) > 3 else ""
    return f"{name}{reason}@{labels[1]}/{labels[2]}"


def _value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def kpi_lines(report: dict[str, Any]) -> Iterator[list[str]]:
    for r in report.get("kpis", []):
        head = [r["period"], r["bucket"], r["tenant"], r["channel"], r["queue"]]
        for name, v in sorted(r["metrics"].items()):
            if isinstance(v, dict):
                for part in DURATION_PARTS:
                    yield [*head, f"{name}.{part}", _value(v.get(part))]
            else:
                yield [*head, name, _value(v)]
    for r in report.get("intervals", []):
        head = ["interval", r["interval"], r["tenant"], r["channel"], r["queue"]]
        for name, v in sorted(r.items()):
            if name not in ("interval", "tenant", "channel", "queue"):
                yield [*head, name, _value(v)]


def _time(ts: float | None, tz: tzinfo) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def contact_line(row: ContactRow, tz: tzinfo) -> list[str]:
    d = row.durations
    wait = d.get("answer_seconds", d.get("abandon_wait_seconds"))
    entries = sorted({_entry(name, labels) for name, labels, _ in row.counted})
    counts: dict[str, int] = {}
    for name, labels, _ in row.counted:
        key = _entry(name, labels)
        counts[key] = counts.get(key, 0) + 1
    kpis = ";".join(e if counts[e] == 1 else f"{e}*{counts[e]}" for e in entries)
    return [
        row.contact_id, row.case_id, row.customer_id, row.tenant, row.channel, row.queue,
        row.initiation, _time(row.started, tz), _time(row.queued, tz), _time(row.answered, tz),
        _time(row.ended, tz), row.ended_by, outcome(row), _value(wait),
        _value(d.get("handle_seconds")), _value(d.get("talk_seconds")),
        _value(d.get("hold_seconds")), _value(d.get("acw_seconds")), " > ".join(row.ivr_path),
        ";".join(row.agents), ";".join(row.reasons), kpis,
    ]  # fmt: skip


def alert_lines(report: dict[str, Any]) -> Iterator[list[str]]:
    for a in report.get("alerts", []):
        labels = a.get("labels", {})
        yield [a["alertname"], a["severity"], labels.get("tenant", ""), labels.get("channel", ""),
               labels.get("queue", ""), labels.get("flow", ""), labels.get("menu", ""),
               labels.get("component", ""), a["starts_at"], a.get("ends_at") or "",
               _value(a.get("duration_seconds")), a["summary"],
               ";".join(a.get("evidence", []))]  # fmt: skip


def _write(path: Path, header: Iterable[str], lines: Iterable[list[str]]) -> int:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(list(header))
    n = 0
    for line in lines:
        out.writerow(line)
        n += 1
    path.write_text(buf.getvalue(), encoding="utf-8")
    return n


def write_csv(
    report: dict[str, Any], ledger: ContactLedger, into: Path, tz: tzinfo
) -> dict[str, int]:
    """The three files in ``into`` (created); lines written per file."""
    into.mkdir(parents=True, exist_ok=True)
    rows = [ledger.rows[c] for c in sorted(ledger.rows)]
    return {
        "kpis.csv": _write(into / "kpis.csv", ("period", "bucket", "tenant", "channel", "queue",
                                               "metric", "value"), kpi_lines(report)),
        "contacts.csv": _write(into / "contacts.csv", CONTACT_COLUMNS,
                               (contact_line(r, tz) for r in rows)),
        "alerts.csv": _write(into / "alerts.csv", (
            "alertname", "severity", "tenant", "channel", "queue", "flow", "menu", "component",
            "starts_at", "ends_at", "duration_seconds", "summary", "evidence"),
            alert_lines(report)),
    }  # fmt: skip


def explain(ledger: ContactLedger, metric: str, tz: tzinfo, channel: str | None = None,
            queue: str | None = None, tenant: str | None = None,
            day: str | None = None, reason: str | None = None) -> list[ContactRow]:  # fmt: skip
    """The contacts whose counts make up ``metric`` (a KPI count, or a per-reason one) for
    the scope given (None: any), on local ``day`` (YYYY-MM-DD) of the count."""
    out = []
    for cid in sorted(ledger.rows):
        row = ledger.rows[cid]
        for name, labels, ts in row.counted:
            if name != metric:
                continue
            if tenant is not None and labels[0] != tenant:
                continue
            if channel is not None and labels[1] != channel:
                continue
            if queue is not None and labels[2] != queue:
                continue
            if reason is not None and (len(labels) < 4 or labels[3] != reason):
                continue
            if day is not None and datetime.fromtimestamp(ts, tz).date().isoformat() != day:
                continue
            out.append(row)
            break
    return out
