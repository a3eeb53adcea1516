"""Importers: external records (CDR files, ...) to canonical events. See docs/importers.md."""

from __future__ import annotations

from datetime import tzinfo
from zoneinfo import ZoneInfo

from streams.importers.anonymous_bank import AnonymousBank
from streams.importers.base import Importer, ImportStats, RowProblem
from streams.importers.connect_ctr import ConnectCtr
from streams.importers.queue_log import QueueLog
from streams.privacy import Pseudonymizer

FORMATS = ("jsonl", "anonymous-bank", "queue_log", "connect-ctr")
DEFAULT_SOURCE_ZONES = {"anonymous-bank": "Asia/Jerusalem"}


def make_importer(
    fmt: str, pseudonymizer: Pseudonymizer, source_tz: tzinfo | None = None
) -> Importer | None:
    """The importer for ``fmt`` (None for canonical JSON Lines)."""
    if fmt == "jsonl":
        return None
    if fmt == "anonymous-bank":
        return AnonymousBank(source_tz or ZoneInfo(DEFAULT_SOURCE_ZONES[fmt]), pseudonymizer)
    if fmt == "queue_log":
        return QueueLog()
    if fmt == "connect-ctr":
        return ConnectCtr()
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


__all__ = [
    "DEFAULT_SOURCE_ZONES",
    "FORMATS",
    "ImportStats",
    "Importer",
    "RowProblem",
    "make_importer",
]
