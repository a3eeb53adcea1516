"""Turn raw event bytes into engine records, or into a rejection with a reason.

Two paths, one answer:

* msgspec decodes and validates a line into a record (:mod:`kpis.wire`) in one C pass;
* pydantic (:data:`kpis.events.EVENT_ADAPTER`), the authority, decides everything else: unusual
  but valid input (``"level": "2"``, a ``true`` spelled ``"yes"``, a timestamp with nine
  fractional digits) is accepted with pydantic's coercions, and invalid input is rejected with
  pydantic's error message and a reason code.

Invariant (checked by a property test): whatever the fast path accepts, pydantic accepts too,
with the same values. Event time is epoch seconds from exact integer microseconds, and both
paths read timestamp text with the same parser, so they give bit-identical floats.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal, get_args

import msgspec
import orjson
from pydantic import AwareDatetime as PydanticAwareDatetime
from pydantic import TypeAdapter, ValidationError

from kpis.events import EVENT_ADAPTER, EventBase
from kpis.wire import CLASS_OF, AnyRec, AwareDatetime, Rec

RejectReason = Literal[
    "oversized",
    "malformed_record",
    "malformed_json",
    "unknown_type",
    "naive_timestamp",
    "schema",
    "duplicate",
    "late",
    "out_of_range",
    "unreadable",
]
REJECT_REASONS: tuple[str, ...] = get_args(RejectReason)


class Rejection(Exception):
    """An input that is not an event. Carries a stable reason code and a human-readable detail."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail


# --- timestamps ---

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reparse(raw: bytes, model: EventBase) -> dict[str, Any]:
    """The model's values with timestamps read by the fast path's own RFC 3339 parser where it
    can read them, so that a timestamp means the same instant whichever path an event took
    (pydantic truncates digits beyond the microsecond; msgspec rounds them)."""
    d: dict[str, Any] = model.model_dump()
    try:
        sent = orjson.loads(raw)
    except orjson.JSONDecodeError:  # pydantic read it, so this cannot happen; keep pydantic's
        return d
    for key in ("ts", "reserved_for"):
        text = sent.get(key)
        if isinstance(text, str):
            with contextlib.suppress(msgspec.ValidationError):  # a form only pydantic reads
                d[key] = msgspec.convert(text, AwareDatetime)
    return d


def record_from_model(model: EventBase, raw: bytes) -> tuple[Rec, float]:
    """The engine record (and its epoch time) of an event pydantic validated from ``raw``."""
    d = _reparse(raw, model)
    try:
        rec = msgspec.convert(d, AnyRec)
    except msgspec.ValidationError as exc:  # the two definitions disagree: a bug, not input
        raise Rejection("schema", f"accepted by the model but not by its record: {exc}") from None
    return rec, rec.ts.timestamp()


def _classify(err: ValidationError) -> Rejection:
    errors = err.errors(include_url=False)
    kinds = {e["type"] for e in errors}
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"][1:] if not isinstance(p, int)) or "event"
    detail = f"{where}: {first['msg']}"
    if len(errors) > 1:
        detail += f" (+{len(errors) - 1} more)"
    if "union_tag_invalid" in kinds:
        return Rejection("unknown_type", detail)
    if kinds & {"timezone_aware"}:
        return Rejection("naive_timestamp", detail)
    if "json_invalid" in kinds:
        return Rejection("malformed_json", detail)
    return Rejection("schema", detail)


def _unreadable(raw: bytes, exc: Exception) -> Rejection:
    """JSON text is UTF-8 and nested within reason: what breaks either is malformed JSON."""
    if isinstance(exc, UnicodeDecodeError):
        bad = bytes(exc.object[exc.start : exc.start + 1])
        return Rejection("malformed_json", f"not UTF-8: byte {bad!r} in a string")
    return Rejection("malformed_json", "nested deeper than a decoder can follow")


_RECORDS: msgspec.json.Decoder[AnyRec] = msgspec.json.Decoder(AnyRec)
NOT_FAST = (msgspec.ValidationError, msgspec.DecodeError)


class Decoder:
    """Decodes raw event lines and importers' event dicts. Stateless; safe to share."""

    def __init__(self, max_line_bytes: int = 65_536) -> None:
        self.max_line_bytes = max_line_bytes

    def decode(self, raw: bytes) -> tuple[Rec, float]:
        """The record of one raw event and its event time in epoch seconds.

        Raises :class:`Rejection` for anything that is not a valid event.
        """
        if len(raw) > self.max_line_bytes:
            raise Rejection(
                "oversized", f"{len(raw)} bytes is over the limit of {self.max_line_bytes}"
            )
        got = self.decode_line(raw)
        if got is None:
            raise Rejection("malformed_json", "an empty record")
        return got

    def decode_line(self, raw: bytes) -> tuple[Rec, float] | None:
        """:meth:`decode` of a line already within the size limit; None for a blank line (a
        replay counts those apart). The one fast path: replay, partitioned replay and the live
        worker all decode here."""
        try:
            rec = _RECORDS.decode(raw)
        except NOT_FAST:
            if not raw.strip():
                return None
            return self.validate_slow(raw)
        except (UnicodeDecodeError, RecursionError) as exc:
            raise _unreadable(raw, exc) from None
        if rec.case_id is None:
            rec.case_id = rec.contact_id
        return rec, rec.ts.timestamp()

    def feed_lines(
        self,
        lines: Iterable[bytes | None],
        ingest: Callable[[Rec, float], None],
        reject: Callable[[int, str, str], None],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int, int]:
        """Decode every line and hand each event to ``ingest`` (which may raise
        :class:`Rejection` too); ``reject(line number, reason, detail)`` for the others
        (``None`` stands for a line over the size limit). Returns (lines, accepted, blank).

        :meth:`decode_line` inlined: a replay calls this once per input, not once per line
        (a call per line was a few percent of a replay)."""
        fast = _RECORDS.decode
        slow = self.validate_slow
        accepted = blank = 0
        n = 0
        rec: Rec
        try:
            for n, raw in enumerate(lines, 1):
                if raw is None:
                    reject(n, "oversized", f"over {self.max_line_bytes} bytes")
                    continue
                try:
                    try:
                        rec = fast(raw)
                    except NOT_FAST:
                        if not raw.strip():
                            blank += 1
                            continue
                        rec, ts = slow(raw)
                    except (UnicodeDecodeError, RecursionError) as exc:
                        raise _unreadable(raw, exc) from None
                    else:
                        if rec.case_id is None:
                            rec.case_id = rec.contact_id
                        ts = rec.ts.timestamp()
                    ingest(rec, ts)
                    accepted += 1
                except Rejection as rej:
                    reject(n, rej.reason, rej.detail)
                if progress is not None and not n & 0xFFFF:
                    progress(n)
        except (EOFError, OSError, zlib.error) as exc:
            # raised while reading the lines (ingest raises only Rejection): a truncated or
            # corrupt gzip, a read error. What was read counts; the rest is named.
            n += 1
            reject(n, "unreadable", f"input unreadable from here: {exc}"[:300])
        return n, accepted, blank

    def decode_mapping(self, event: dict[str, Any]) -> tuple[Rec, float]:
        """The record of an event an importer built (a dict of JSON values), without a trip
        through JSON text: the same record and time as :meth:`decode` of its JSON."""
        # convert() to the one class its tag names: to the union it rebuilds its plan each
        # call (17 us against 0.5 us)
        cls = CLASS_OF.get(event.get("type"))  # type: ignore[arg-type]
        try:
            if cls is None:
                raise msgspec.ValidationError("unknown type")
            rec: Rec = msgspec.convert(event, cls)
        except msgspec.ValidationError:
            # the authority decides, on the JSON text it would have seen (rare: a bad row)
            return self.validate_slow(orjson.dumps(event))
        if rec.case_id is None:
            rec.case_id = rec.contact_id
        return rec, rec.ts.timestamp()

    @staticmethod
    def validate_slow(raw: bytes) -> tuple[Rec, float]:
        """Validation by pydantic: the authoritative answer for anything the fast path defers.

        Whatever the bytes, the answer is a record or a :class:`Rejection`: nothing else
        escapes (a worker must never stop on one input)."""
        try:
            model = EVENT_ADAPTER.validate_json(raw)
        except ValidationError as err:
            raise _classify(err) from None
        except (UnicodeDecodeError, RecursionError) as exc:
            raise _unreadable(raw, exc) from None
        except Exception as exc:  # a bug, not input: still a counted, explained reject
            raise Rejection("malformed_record", f"{type(exc).__name__}: {exc}"[:200]) from None
        try:
            rec, ts = record_from_model(model, raw)
        except (OverflowError, ValueError, RecursionError) as exc:
            raise Rejection("schema", f"{type(exc).__name__}: {exc}"[:200]) from None
        if rec.case_id is None:
            rec.case_id = rec.contact_id
        return rec, ts


# --- event time of a line that need not be a valid event (archives, time ranges) ---


class _Meta(msgspec.Struct):
    event_id: Any = None
    ts: Any = None


_META: msgspec.json.Decoder[_Meta] = msgspec.json.Decoder(_Meta)
_PYDANTIC_TIME: TypeAdapter[datetime] = TypeAdapter(PydanticAwareDatetime)


def parse_time(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp with an offset, read as the decoder reads an
    event's ``ts`` (msgspec's parser, else pydantic's forms); None if it has no offset or is not
    a timestamp."""
    try:
        return msgspec.convert(text, AwareDatetime).timestamp()
    except msgspec.ValidationError:
        pass
    try:
        return _PYDANTIC_TIME.validate_python(text).timestamp()
    except ValidationError:
        return None


def event_meta(raw: bytes) -> tuple[str | None, float | None]:
    """(event_id, event time) of a line, as far as it has them, without validating the rest
    (other fields are skipped, not built)."""
    try:
        meta = _META.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None, None
    eid = meta.event_id if isinstance(meta.event_id, str) else None
    ts = parse_time(meta.ts) if isinstance(meta.ts, str) else None
    return eid, ts


def iso(ts: float, tz: tzinfo = UTC) -> str:
    """RFC 3339 text of epoch seconds in ``tz``, microsecond precision (for reports)."""
    return (_EPOCH + timedelta(microseconds=round(ts * 1e6))).astimezone(tz).isoformat()
