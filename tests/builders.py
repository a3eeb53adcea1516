"""Hand-made inputs shared by test modules: importer records written as their systems write
them, the alert rules' test doubles, the live archive's crash (so that test modules never
import one another)."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from alerts.evaluator import AlertEvent, AlertLogic
from alerts.rules import RulesConfig
from cc_monitor.simulator import SimConfig, simulate
from kpis.config import EngineConfig
from streams.audit.archive import LiveArchive
from streams.inputs.importers import make_importer
from streams.inputs.importers.anonymous_bank import FIELDS
from streams.inputs.privacy import Pseudonymizer
from streams.replay import Replay, Source, replay_paths

BYE = "CUSTOMER_DISCONNECT"


def at(minute: int, second: int = 0) -> str:
    return f"2026-11-02T09:{minute:02d}:{second:02d}Z"


def ctr(contact: str, updated: str, **fields: Any) -> dict[str, Any]:
    rec = {"ContactId": contact, "Channel": "VOICE", "InitiationMethod": "INBOUND",
           "LastUpdateTimestamp": updated}  # fmt: skip
    rec.update(fields)
    return rec


ZONE = ZoneInfo("Asia/Jerusalem")


HEADER = "\t".join(FIELDS)


def tsv(tmp: Path, *rows: str, name: str = "calls.tsv") -> Path:
    path = tmp / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def line(
    call: int, outcome: str, entry: str, vru_exit: str, q_start: str = "0:00:00",
    q_exit: str = "0:00:00", ser_start: str = "0:00:00", ser_exit: str = "0:00:00",
    vru: str = "AA0101", customer: str = "0", kind: str = "PS", day: str = "990201",
) -> str:  # fmt: skip
    server = "DORIT" if outcome == "AGENT" else "NO_SERVER"
    return "\t".join(
        [vru, str(call), customer, "2", kind, day, entry, vru_exit, "0", q_start, q_exit, "0",
         outcome, ser_start, ser_exit, "0", server]
    )  # fmt: skip


T = 1_762_074_000  # 2026-11-02T09:00:00Z


def log(tmp: Path, *lines: str) -> Path:
    """A queue_log as Asterisk appends it: in time order (unparsable lines at the end)."""
    good = sorted((x for x in lines if x[:1].isdigit()), key=lambda x: float(x.split("|")[0]))
    path = tmp / "queue_log"
    path.write_text("\n".join(good + [x for x in lines if not x[:1].isdigit()]) + "\n")
    return path


def replay(path: Path) -> dict[str, Any]:
    importer = make_importer("queue_log", Pseudonymizer(""))
    return Replay(EngineConfig(), ZoneInfo("UTC")).run([Source(str(path))], importer=importer)


Q = ("bank", "voice", "billing")


M = 60.0


class Events:
    def __init__(self) -> None:
        self.seen: list[AlertEvent] = []

    def alert(self, event: AlertEvent) -> None:
        self.seen.append(event)

    def log(self) -> list[tuple[str, str, float]]:
        return [(e.status, e.alert.rule, e.alert.ends_at or e.alert.starts_at) for e in self.seen]


def only(rule: str, **overrides: Any) -> RulesConfig:
    """A config where only ``rule`` is enabled (with overrides)."""
    rules: dict[str, Any] = {n: {"enabled": False} for n in RulesConfig().rules}
    rules[rule] = {"enabled": True, **overrides}
    return RulesConfig.model_validate({"rules": rules})


def ticks(logic: AlertLogic, start: float, end: float) -> None:
    t = start
    while t <= end:
        logic.on_tick(t)
        t += M


@lru_cache(maxsize=1)
def day() -> tuple[bytes, ...]:
    return tuple(orjson.dumps(e) for e in simulate(SimConfig(contacts_per_day=600)))


def kill(archive: LiveArchive, cut: bytes = b"") -> None:
    """What kill -9 leaves of a worker's archive: what reached the OS stays (plus, ``cut``, a
    line written half way), Python's buffers are lost, the locks go with the process."""
    for w in archive.writers.values():
        if cut:
            with open(w._open_path, "ab") as f:
                f.write(cut)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, w._open.fileno())  # the buffer, if ever flushed, goes nowhere
        os.close(devnull)
    for fd in archive._locks.values():
        os.close(fd)
    archive.writers.clear()
    archive._locks.clear()


# --- contact reasons and repeat contacts (tests/test_reasons.py, tests/test_repeats.py) ---

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()


def ev(kind: str, cid: str, at: float, **fields: Any) -> bytes:
    base = {"event_id": f"{cid}-{kind}-{at}", "type": kind, "contact_id": cid,
            "ts": datetime.fromtimestamp(T0 + at, UTC).isoformat(), "channel": "voice",
            "tenant": "bank", "queue": "cards"}  # fmt: skip
    return orjson.dumps({**base, **fields})


def call(
    cid: str, at: float, *, end: list[str] | None = None, wrap: list[str] | None = None,
    resolved: bool | None = None, agent: str = "a1", **fields: Any,
) -> list[bytes]:  # fmt: skip
    """A call answered after 20 s, talked 300 s, wrapped up 60 s later: handle time 360 s."""
    ended: dict[str, Any] = {"ended_by": "customer", **({"reasons": end} if end else {})}
    wrapped: dict[str, Any] = {**({"reasons": wrap} if wrap else {})}
    if resolved is not None:
        wrapped["resolved"] = resolved
    return [ev("contact.started", cid, at, **fields),
            ev("queue.entered", cid, at + 1, **fields),
            ev("agent.connected", cid, at + 20, agent_id=agent, **fields),
            ev("contact.ended", cid, at + 320, agent_id=agent, **ended, **fields),
            ev("wrapup.ended", cid, at + 380, agent_id=agent, **wrapped, **fields)]  # fmt: skip


def report(lines: list[bytes], config: EngineConfig | None = None) -> dict[str, Any]:
    """The replay report of ``lines``."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "log.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        return replay_paths([str(path)], config or EngineConfig(), ZoneInfo("UTC"))


def totals(rep: dict[str, Any], scope: tuple[str, str, str] = ("*", "*", "*")) -> dict[str, Any]:
    return {r["reason"]: r["metrics"] for r in rep["reasons"] if r["period"] == "total"
            and (r["tenant"], r["channel"], r["queue"]) == scope}  # fmt: skip


def kpi_total(rep: dict[str, Any]) -> dict[str, Any]:
    (row,) = [r for r in rep["kpis"] if r["period"] == "total" and r["tenant"] == "*"
              and r["channel"] == "*" and r["queue"] == "*"]  # fmt: skip
    return dict(row["metrics"])
