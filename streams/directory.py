"""The agent directory: display names for agents, for the views a supervisor reads
(``/api/agents``, the wallboard's agent board), from a file the operator keeps.

Events carry agents by pseudonym (``produce`` replaces source ids with keyed hashes), so a
supervisor who wants names maps them here. A row names its agent either by ``agent``, the id as
the events carry it (a pseudonym, ``p-...``), or by ``source_id``, the id as the source names it,
which is pseudonymized on load with the same key as ``produce`` (the raw id is never kept). A
name is for display only: never a metric label, never in a log line, never in a report.

Formats: CSV with a header (``agent`` or ``source_id``, and ``name``; other columns ignored), or
JSON, a list of objects with the same keys. At most :data:`MAX_AGENTS` rows and
:data:`MAX_BYTES` bytes; a name is at most :data:`MAX_NAME` characters of printable text. A file
that breaks any of this is refused whole, with the line (CSV) or item (JSON) and the reason:
half a directory would show some agents by name and others not, for no visible reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from pathlib import Path

import orjson

MAX_AGENTS = 100_000
MAX_BYTES = 10 * 1024 * 1024
MAX_NAME = 80
MAX_ID = 200


class DirectoryError(ValueError):
    """The directory file cannot be used; the message names the file, the place and why."""


def load_directory(path: Path, pseudonymize: Callable[[str], str]) -> dict[str, str]:
    """Agent pseudonym -> display name, from ``path`` (CSV, or JSON by its ``.json`` suffix)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DirectoryError(f"{path}: {size} bytes, more than the {MAX_BYTES} allowed")
        data = path.read_bytes()
    except OSError as e:
        raise DirectoryError(f"{path}: cannot read it ({e.strerror or e})") from None
    rows = _json_rows(path, data) if path.suffix.lower() == ".json" else _csv_rows(path, data)
    names: dict[str, str] = {}
    for where, row in rows:
        agent, name = _row(path, where, row, pseudonymize)
        if names.get(agent, name) != name:
            raise DirectoryError(f"{path}: {where}: the agent has another name on an earlier row")
        names[agent] = name
        if len(names) > MAX_AGENTS:
            raise DirectoryError(f"{path}: more than {MAX_AGENTS} agents")
    return names


def _json_rows(path: Path, data: bytes) -> list[tuple[str, Mapping[str, object]]]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DirectoryError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, list):
        raise DirectoryError(f"{path}: a JSON list of {{agent | source_id, name}} objects")
    out: list[tuple[str, Mapping[str, object]]] = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise DirectoryError(f"{path}: item {i + 1}: not an object")
        out.append((f"item {i + 1}", item))
    return out


def _csv_rows(path: Path, data: bytes) -> list[tuple[str, Mapping[str, object]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DirectoryError(f"{path}: not UTF-8 (byte {e.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = set(reader.fieldnames or ())
    if "name" not in fields or not fields & {"agent", "source_id"}:
        raise DirectoryError(f"{path}: line 1: the header needs `name` and `agent` or `source_id`")
    out: list[tuple[str, Mapping[str, object]]] = []
    try:
        for row in reader:
            if None in row:
                raise DirectoryError(f"{path}: line {reader.line_num}: more fields than the header")
            out.append((f"line {reader.line_num}", row))
    except csv.Error as e:
        raise DirectoryError(f"{path}: line {reader.line_num}: {e}") from None
    return out


def _row(
    path: Path, where: str, row: Mapping[str, object], pseudonymize: Callable[[str], str]
) -> tuple[str, str]:
    agent, source, name = row.get("agent") or None, row.get("source_id") or None, row.get("name")
    if (agent is None) == (source is None):
        raise DirectoryError(f"{path}: {where}: one of `agent` or `source_id`, not both or none")
    ident = agent if agent is not None else source
    if not isinstance(ident, str) or not ident.strip() or len(ident) > MAX_ID:
        raise DirectoryError(
            f"{path}: {where}: the agent id is not a text of 1-{MAX_ID} characters"
        )
    if not isinstance(name, str) or not name.strip():
        raise DirectoryError(f"{path}: {where}: no name")
    name = name.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise DirectoryError(f"{path}: {where}: a name is at most {MAX_NAME} printable characters")
    return (ident.strip() if agent is not None else pseudonymize(ident.strip())), name
