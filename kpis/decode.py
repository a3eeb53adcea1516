"""Turn raw event bytes into engine records, or into a rejection with a reason.

Two paths, one answer:

* a fast path that accepts only what it can prove valid with a few type checks (plain JSON types,
  canonical RFC 3339 timestamps, known keys), and
* pydantic (:data:`kpis.events.EVENT_ADAPTER`), the authority, for everything else: unusual
  but valid input (``"level": "2"``, a ``true`` spelled ``"yes"``) is accepted with pydantic's
  coercions, and invalid input is rejected with pydantic's error message.

Invariant (checked by a property test): whatever the fast path accepts, pydantic accepts too, and
both produce the same record. The fast path exists because building a pydantic model per event
costs more than the whole per-event budget of a replay.

A record (:class:`EventRecord`) is a plain dict with the event's own keys as sent (coerced), plus
``case_id`` defaulted to ``contact_id``, and with ``ts`` (and ``reserved_for``) replaced by epoch
seconds computed from exact integer microseconds, so that both paths give bit-identical floats.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal, Required, TypedDict

import orjson
from pydantic import ValidationError

from kpis.events import EVENT_ADAPTER, MODELS_BY_TYPE, EventBase

RejectReason = Literal[
    "oversized",
    "malformed_json",
    "unknown_type",
    "naive_timestamp",
    "schema",
    "duplicate",
    "late",
]
REJECT_REASONS: tuple[str, ...] = (
    "oversized",
    "malformed_json",
    "unknown_type",
    "naive_timestamp",
    "schema",
    "duplicate",
    "late",
)


class EventRecord(TypedDict, total=False):
    """An event as the engine sees it: the model's fields, ``ts`` in epoch seconds."""

    event_id: Required[str]
    type: Required[str]
    ts: Required[float]
    channel: Required[str]
    contact_id: Required[str]
    case_id: Required[str]
    schema_version: int
    tenant: str | None
    queue: str | None
    agent_id: str | None
    customer_id: str | None
    attributes: dict[str, Any]
    direction: str
    initiation: str
    callback_id: str | None
    to_queue: str | None
    to_agent_id: str | None
    ended_by: str
    reason: str | None
    resolved: bool | None
    flow: str
    greeting_seconds: float | None
    menu: str | None
    level: int
    requested: str
    outcome: str
    agent_requested: bool
    sender: str
    reserved_for: float | None
    component: str
    status: str
    state: str


class Rejection(Exception):
    """An input that is not an event. Carries a stable reason code and a human-readable detail."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail


# --- timestamps ---

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_CACHE: dict[str, int] = {}
_MINUTE_CACHE_MAX = 200_000


def epoch_seconds(dt: datetime) -> float:
    """Epoch seconds of an aware datetime, via exact integer microseconds."""
    delta = dt - _EPOCH
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) / 1e6


def _fast_ts(s: object) -> float | None:
    """Epoch seconds of a canonical RFC 3339 string, or None if it is not in canonical form.

    Canonical: ``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)``. Anything else (including a naive time)
    goes to pydantic, which gives the authoritative answer and message.
    """
    if type(s) is not str:
        return None
    n = len(s)
    if n < 20 or s[4] != "-" or s[7] != "-" or s[10] != "T" or s[13] != ":" or s[16] != ":":
        return None
    if s[-1] == "Z":
        end = n - 1
    elif n >= 25 and s[-3] == ":" and (s[-6] == "+" or s[-6] == "-"):
        end = n - 6
    else:
        return None
    sec = s[17:19]
    if not (sec.isdigit() and sec.isascii()) or sec > "59":
        return None
    if end == 19:
        micros = 0
    else:
        frac = s[20:end]
        if s[19] != "." or not (0 < len(frac) <= 6 and frac.isdigit() and frac.isascii()):
            return None
        micros = int(frac.ljust(6, "0"))
    key = s[:16] + s[end:]
    base = _MINUTE_CACHE.get(key)
    if base is None:
        try:
            dt = datetime.fromisoformat(s[:16] + ":00" + ("+00:00" if end == n - 1 else s[end:]))
        except ValueError:
            return None
        if dt.tzinfo is None or dt.utcoffset() is None:
            return None
        delta = dt - _EPOCH
        base = delta.days * 86_400 + delta.seconds
        if len(_MINUTE_CACHE) >= _MINUTE_CACHE_MAX:
            _MINUTE_CACHE.clear()
        _MINUTE_CACHE[key] = base
    return (base * 1_000_000 + int(sec) * 1_000_000 + micros) / 1e6


# --- fast field checks ---

Check = Callable[[Any], bool]


def _id(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= 200


def _label(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= 100


def _opt(check: Check) -> Check:
    def inner(v: Any) -> bool:
        return v is None or check(v)

    return inner


def _one_of(*values: str) -> Check:
    allowed = frozenset(values)

    def inner(v: Any) -> bool:
        return type(v) is str and v in allowed

    return inner


def _bool(v: Any) -> bool:
    return type(v) is bool


def _level(v: Any) -> bool:
    return type(v) is int and 1 <= v <= 100


def _nonneg_number(v: Any) -> bool:
    return (type(v) is float or type(v) is int) and v >= 0 and v != float("inf")


def _short_text(v: Any) -> bool:
    return type(v) is str and len(v) <= 200


# Checks for the type-specific keys, and for common keys a type makes stricter (a required
# agent_id or queue). A test keeps these in step with the models; pydantic remains the fallback.
_SPECIFIC: dict[str, dict[str, Check]] = {
    "contact.started": {
        "direction": _one_of("inbound", "outbound"),
        "initiation": _one_of("inbound", "outbound", "callback", "transfer"),
        "callback_id": _opt(_id),
    },
    "contact.transferred": {"to_queue": _opt(_label), "to_agent_id": _opt(_id)},
    "contact.ended": {
        "ended_by": _one_of("customer", "agent", "system"),
        "reason": _opt(_short_text),
        "resolved": _opt(_bool),
    },
    "ivr.entered": {"flow": _label, "greeting_seconds": _opt(_nonneg_number)},
    "ivr.menu": {"flow": _label, "menu": _label, "level": _level},
    "ivr.input": {"flow": _label, "menu": _opt(_label), "requested": _label},
    "ivr.exited": {
        "flow": _label,
        "outcome": _one_of("queue", "self_served", "hang_up", "error"),
        "agent_requested": _bool,
    },
    "queue.entered": {"queue": _label},
    "queue.abandoned": {},
    "agent.offered": {"agent_id": _id},
    "agent.connected": {"agent_id": _id},
    "agent.message": {"sender": _one_of("human", "bot")},
    "customer.message": {},
    "hold.started": {},
    "hold.ended": {},
    "wrapup.ended": {"resolved": _opt(_bool)},
    "case.resolved": {},
    "case.reopened": {},
    "callback.requested": {"callback_id": _id},  # reserved_for: handled as a timestamp
    "callback.attempted": {
        "callback_id": _id,
        "outcome": _one_of("reached", "no_answer", "busy", "failed"),
    },
    "callback.cancelled": {"callback_id": _id},
    "system.status": {"component": _label, "status": _one_of("up", "degraded", "down")},
    "agent.state": {
        "agent_id": _id,
        "state": _one_of("available", "busy", "after_work", "away", "offline"),
    },
}
_COMMON = frozenset(
    {
        "schema_version",
        "event_id",
        "type",
        "ts",
        "channel",
        "contact_id",
        "case_id",
        "tenant",
        "queue",
        "agent_id",
        "customer_id",
        "attributes",
    }
)
_CHANNELS = frozenset({"voice", "chat", "email", "sms", "social", "video"})


def _required_keys(model: type[EventBase]) -> frozenset[str]:
    return frozenset(name for name, f in model.model_fields.items() if f.is_required())


# Per type: (allowed keys, required keys beyond the common ones, specific checks).
_FAST: dict[str, tuple[frozenset[str], frozenset[str], tuple[tuple[str, Check], ...]]] = {
    t: (
        frozenset(MODELS_BY_TYPE[t].model_fields),
        _required_keys(MODELS_BY_TYPE[t]) - {"event_id", "type", "ts", "channel", "contact_id"},
        tuple(checks.items()),
    )
    for t, checks in _SPECIFIC.items()
}


def _fast(d: dict[str, Any]) -> EventRecord | None:
    """The record for ``d`` if it is provably valid with plain checks; None to defer to pydantic."""
    etype = d.get("type")
    if type(etype) is not str:
        return None
    spec = _FAST.get(etype)
    if spec is None:
        return None
    allowed, required, checks = spec
    if not allowed.issuperset(d) or not required.issubset(d):
        return None
    ts = _fast_ts(d.get("ts"))
    if ts is None:
        return None
    contact = d.get("contact_id")
    channel = d.get("channel")
    if not (_id(d.get("event_id")) and _id(contact) and type(channel) is str):
        return None
    if channel not in _CHANNELS:
        return None
    if "case_id" in d:
        if not _id(d["case_id"]):
            return None
    else:
        d["case_id"] = contact
    for key in ("tenant", "queue"):
        v = d.get(key)
        if v is not None and not _label(v):
            return None
    for key in ("agent_id", "customer_id"):
        v = d.get(key)
        if v is not None and not _id(v):
            return None
    if "attributes" in d and type(d["attributes"]) is not dict:
        return None
    if "schema_version" in d and (type(d["schema_version"]) is not int or d["schema_version"] != 1):
        return None
    for key, check in checks:
        if key in d and not check(d[key]):
            return None
    if "reserved_for" in d and d["reserved_for"] is not None:
        reserved = _fast_ts(d["reserved_for"])
        if reserved is None:
            return None
        d["reserved_for"] = reserved
    d["ts"] = ts
    return d  # type: ignore[return-value]


def record_from_model(model: EventBase) -> EventRecord:
    """The engine record of a validated model (keys as sent, values coerced)."""
    rec: dict[str, Any] = model.model_dump(exclude_unset=True)
    rec["type"] = getattr(model, "type")  # noqa: B009 - a discriminator is always set
    rec["case_id"] = model.case_id
    rec["ts"] = epoch_seconds(model.ts)
    reserved = rec.get("reserved_for")
    if isinstance(reserved, datetime):
        rec["reserved_for"] = epoch_seconds(reserved)
    return rec  # type: ignore[return-value]


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


class Decoder:
    """Decodes raw event lines. Stateless apart from a timestamp cache; safe to share."""

    def __init__(self, max_line_bytes: int = 65_536) -> None:
        self.max_line_bytes = max_line_bytes

    def decode(self, raw: bytes) -> EventRecord:
        """The record for one raw event, or raise :class:`Rejection`."""
        if len(raw) > self.max_line_bytes:
            raise Rejection(
                "oversized", f"{len(raw)} bytes is over the limit of {self.max_line_bytes}"
            )
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejection("malformed_json", str(exc)) from None
        if type(d) is dict:
            rec = _fast(d)
            if rec is not None:
                return rec
        else:
            raise Rejection("schema", f"an event is a JSON object, not {type(d).__name__}")
        return self.validate_slow(raw)

    def decode_obj(self, d: dict[str, Any]) -> EventRecord:
        """The record for an already parsed object (consumes ``d``)."""
        rec = _fast(d)
        if rec is not None:
            return rec
        return self.validate_slow(orjson.dumps(d))

    @staticmethod
    def validate_slow(raw: bytes) -> EventRecord:
        """Validation by pydantic: the authoritative answer for anything the fast path defers."""
        try:
            model = EVENT_ADAPTER.validate_json(raw)
        except ValidationError as err:
            raise _classify(err) from None
        return record_from_model(model)


def iso(ts: float, tz: tzinfo = UTC) -> str:
    """RFC 3339 text of epoch seconds in ``tz``, microsecond precision (for reports)."""
    return (_EPOCH + timedelta(microseconds=round(ts * 1e6))).astimezone(tz).isoformat()
