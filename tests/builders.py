"""Hand-made inputs shared by test modules: importer records written as their systems write
them, the alert rules' test doubles, the live archive's crash (so that test modules never
import one another)."""

from __future__ import annotations

import os
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
from streams.replay import Replay, Source

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
