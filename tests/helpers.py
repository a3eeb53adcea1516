"""Builders for hand-written event logs and readers for report values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from kpis.config import EngineConfig
from streams.replay import Replay, Source

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ALL = "*"


class Log:
    """Events at offsets (seconds) from ``t0``; ids are generated, fields are passed through."""

    def __init__(self, t0: datetime = T0) -> None:
        self.t0 = t0
        self.events: list[dict[str, Any]] = []

    def at(self, seconds: float) -> str:
        return (self.t0 + timedelta(seconds=seconds)).isoformat()

    def add(
        self,
        seconds: float,
        etype: str,
        contact: str = "c1",
        channel: str = "voice",
        **fields: Any,
    ) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "event_id": f"e{len(self.events) + 1}",
            "type": etype,
            "ts": self.at(seconds),
            "channel": channel,
            "contact_id": contact,
        }
        ev.update({k: v for k, v in fields.items() if v is not None})
        self.events.append(ev)
        return ev

    def lines(self) -> list[bytes]:
        """The log in time order (ties keep the order they were added in)."""
        return [orjson.dumps(e) for e in sorted(self.events, key=lambda e: e["ts"])]

    def write(self, path: Path) -> Path:
        path.write_bytes(b"".join(line + b"\n" for line in self.lines()))
        return path


def replay_lines(
    lines: list[bytes], tmp: Path, config: EngineConfig | None = None, tz: str = "UTC", **kw: Any
) -> dict[str, Any]:
    path = tmp / f"log-{len(list(tmp.iterdir()))}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return Replay(config or EngineConfig(), ZoneInfo(tz), **kw).run([Source(str(path))])


def replay_log(
    log: Log, tmp: Path, config: EngineConfig | None = None, **kw: Any
) -> dict[str, Any]:
    return replay_lines(log.lines(), tmp, config, **kw)


def row(
    report: dict[str, Any],
    channel: str = ALL,
    queue: str = ALL,
    period: str = "total",
    bucket: str = "all",
    tenant: str = ALL,
) -> dict[str, Any]:
    for r in report["kpis"]:
        if (r["period"], r["bucket"], r["tenant"], r["channel"], r["queue"]) == (
            period,
            bucket,
            tenant,
            channel,
            queue,
        ):
            return r["metrics"]  # type: ignore[no-any-return]
    raise KeyError((period, bucket, tenant, channel, queue))


def ivr_row(
    report: dict[str, Any], flow: str = ALL, menu: str = ALL, period: str = "total"
) -> dict[str, Any]:
    for r in report["ivr"]:
        if (r["period"], r["flow"], r["menu"]) == (period, flow, menu):
            return r["metrics"]  # type: ignore[no-any-return]
    raise KeyError((period, flow, menu))


def without_input(report: dict[str, Any]) -> dict[str, Any]:
    """The report minus what names the input bytes (digests, line counts)."""
    out = dict(report)
    out.pop("input")
    return out


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
