"""Importers: external records (CDR files, ...) to canonical events. See docs/importers.md."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from streams.inputs.files import ImportStats
from streams.inputs.importers.anonymous_bank import AnonymousBank
from streams.inputs.importers.base import Importer, RowProblem
from streams.inputs.importers.cdr import Cdr, CdrMapping
from streams.inputs.importers.connect_ctr import ConnectCtr
from streams.inputs.importers.queue_log import QueueLog
from streams.inputs.privacy import Pseudonymizer


class ImporterConfigError(Exception):
    """A format or mapping the user asked for cannot be used."""


FORMATS = ("jsonl", "cdr", "anonymous-bank", "queue_log", "connect-ctr")
DEFAULT_SOURCE_ZONES = {"anonymous-bank": "Asia/Jerusalem"}


def make_importer(
    fmt: str,
    pseudonymizer: Pseudonymizer,
    source_tz: tzinfo | None = None,
    mapping: Path | None = None,
) -> Importer | None:
    """The importer for ``fmt`` (None for canonical JSON Lines); ``cdr`` needs a mapping file."""
    if fmt == "jsonl":
        return None
    if fmt == "cdr":
        if mapping is None:
            raise ImporterConfigError("--format cdr needs --mapping FILE (docs/importers.md)")
        try:
            return Cdr(CdrMapping.load(mapping), pseudonymizer)
        except (OSError, ValueError) as exc:  # unreadable, not TOML, or not a valid mapping
            raise ImporterConfigError(f"mapping {mapping}: {exc}") from exc
    if fmt == "anonymous-bank":
        return AnonymousBank(source_tz or ZoneInfo(DEFAULT_SOURCE_ZONES[fmt]), pseudonymizer)
    if fmt == "queue_log":
        return QueueLog()
    if fmt == "connect-ctr":
        return ConnectCtr()
    raise ImporterConfigError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


__all__ = [
    "DEFAULT_SOURCE_ZONES",
    "FORMATS",
    "ImportStats",
    "Importer",
    "ImporterConfigError",
    "RowProblem",
    "make_importer",
]
