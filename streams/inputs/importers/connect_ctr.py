"""Amazon Connect contact records (CTRs), one JSON object per line. Mapping (docs/importers.md):

* Records are delivered at least once: per ``ContactId`` only the record with the highest
  ``LastUpdateTimestamp`` counts (ties: the later line); the others are skipped as ``superseded``.
* ``InitialContactId`` (else ``ContactId``) is the case, so transfers stay one case.
* ``InitiationTimestamp``: ``contact.started`` (``InitiationMethod`` INBOUND, OUTBOUND /
  EXTERNAL_OUTBOUND / API, CALLBACK, TRANSFER / QUEUE_TRANSFER); DISCONNECT and MONITOR
  contacts and TASK channel records are not customer contacts and are skipped.
* ``Queue.EnqueueTimestamp``: ``queue.entered`` (``Queue.Name``).
* ``Agent.ConnectedToAgentTimestamp``: ``agent.connected`` (``Agent.Username``); on chat also
  the first human response (CTRs carry no message events). ``Agent.CustomerHoldDuration``: one
  hold of that length at the start of the agent's part (CTRs give only the total).
* No agent and ``DisconnectReason`` CUSTOMER_DISCONNECT after queueing: ``queue.abandoned``.
* ``TransferCompletedTimestamp``: ``contact.transferred``.
* ``DisconnectTimestamp``: ``contact.ended``, by the customer (CUSTOMER_DISCONNECT), the agent
  (AGENT_DISCONNECT, THIRD_PARTY_DISCONNECT) or the system (anything else).
* ``Agent.AfterContactWorkEndTimestamp`` (else the disconnect): ``wrapup.ended``, with the
  reason codes of the contact attribute ``Disposition`` (or ``WrapUpCode``, ``ReasonCode``,
  ``ContactReason``; :data:`REASON_ATTRIBUTES`), on ``contact.ended`` for a contact no agent
  took.

Records are read once, deduplicated and sorted by event time in memory (one entry per contact).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson

from streams.inputs.files import ImportStats, Source, SourceStats, scan_lines
from streams.inputs.importers.base import RowProblem, Timeline, reason_codes

CHANNELS = {"VOICE": "voice", "CHAT": "chat", "EMAIL": "email"}
INITIATION = {
    "INBOUND": ("inbound", "inbound"),
    "OUTBOUND": ("outbound", "outbound"),
    "EXTERNAL_OUTBOUND": ("outbound", "outbound"),
    "API": ("outbound", "outbound"),
    "CALLBACK": ("outbound", "callback"),
    "TRANSFER": ("inbound", "transfer"),
    "QUEUE_TRANSFER": ("inbound", "transfer"),
}
ENDED_BY = {
    "CUSTOMER_DISCONNECT": "customer",
    "AGENT_DISCONNECT": "agent",
    "THIRD_PARTY_DISCONNECT": "agent",
}


def _ts(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected an ISO 8601 time, got {value!r}")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"{field}: time without an offset")
    return dt


MAX_HOLD_SECONDS = 7 * 86400.0


def _object(ctr: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object of a record ({} when absent); anything else is a malformed record."""
    value = ctr.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} is {type(value).__name__}, not an object")
    return value


def _hold(value: Any, stats: ImportStats) -> float:
    """Hold seconds of a record; a value that is not a duration is counted as a warning (the
    contact keeps its other events) instead of passing silently as no hold."""
    if value is None or value == 0:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        stats.warn("hold_not_a_number")
        return 0.0
    if not 0 <= value <= MAX_HOLD_SECONDS:
        stats.warn("hold_out_of_range")
        return 0.0
    return float(value)


def _priority(value: Any, stats: ImportStats) -> int | None:
    """Connect's routing priority (``QueuePriority``, 1 routed first, default 5) where the record
    has it; outside 0-9 it is counted as a warning and left out."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return value
    stats.warn("queue_priority_not_0_to_9")
    return None


REASON_ATTRIBUTES = ("disposition", "dispositioncode", "wrapupcode", "wrap_up_code",
                     "reasoncode", "reason_code", "contactreason", "contact_reason")  # fmt: skip
"""Contact attributes read as the contact's reason codes (compared without case): Connect has
no wrap-up code field of its own; centres set one of these in the agent's wrap-up flow."""


def _reasons(ctr: dict[str, Any], stats: ImportStats) -> list[str] | None:
    attributes = _object(ctr, "Attributes")
    for key, value in attributes.items():
        if isinstance(key, str) and key.lower() in REASON_ATTRIBUTES:
            return reason_codes(value, stats)
    return None


class ConnectCtr:
    name = "connect-ctr"
    not_recorded: tuple[str, ...] = ("offers",)  # no ring events in a contact record
    agent_states = False  # a CTR is one contact; agent events are another stream

    def __init__(self, tenant: str | None = None) -> None:
        self.tenant = tenant

    def events(
        self, source: Source, sstats: SourceStats, stats: ImportStats, max_line: int
    ) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
        latest: dict[str, tuple[datetime, int, dict[str, Any]]] = {}
        stream, _ = source.open()
        try:
            for lineno, _, raw in scan_lines(stream, sstats, max_line):
                if raw is None:
                    yield lineno, RowProblem("oversized", f"over {max_line} bytes")
                    continue
                if not raw.strip():
                    continue
                stats.records += 1
                try:
                    ctr = orjson.loads(raw)
                    if not isinstance(ctr, dict):
                        raise ValueError("a contact record is a JSON object")
                    contact = ctr.get("ContactId")
                    if not isinstance(contact, str) or not contact:
                        raise ValueError("no ContactId")
                    updated = _ts(ctr.get("LastUpdateTimestamp"), "LastUpdateTimestamp")
                except (orjson.JSONDecodeError, ValueError) as exc:
                    yield lineno, RowProblem("malformed_record", str(exc))
                    continue
                seen = latest.get(contact)
                if seen is not None:
                    stats.skip("superseded")
                    if updated < seen[0]:
                        continue
                latest[contact] = (updated, lineno, ctr)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        timeline: list[tuple[datetime, int, int, dict[str, Any]]] = []
        for _, lineno, ctr in latest.values():
            try:
                produced = self._contact(ctr, stats)
            except (ValueError, TypeError, KeyError) as exc:
                yield lineno, RowProblem("malformed_record", f"{type(exc).__name__}: {exc}")
                continue
            for when, ev in produced:
                timeline.append((when, lineno, len(timeline), ev))
        timeline.sort(key=lambda t: (t[0], t[1], t[2]))
        for _, lineno, _, ev in timeline:
            stats.events += 1
            yield lineno, ev

    def _contact(
        self, ctr: dict[str, Any], stats: ImportStats
    ) -> list[tuple[datetime, dict[str, Any]]]:
        channel = CHANNELS.get(ctr.get("Channel", ""))
        method = INITIATION.get(ctr.get("InitiationMethod", ""))
        if channel is None or method is None:
            stats.skip(str(ctr.get("Channel")).lower() if channel is None else "not_a_contact")
            return []
        contact: str = ctr["ContactId"]
        queue_info = _object(ctr, "Queue")
        agent_info = _object(ctr, "Agent")
        queue = queue_info.get("Name")
        if queue is not None and not isinstance(queue, str):
            raise ValueError(f"Queue.Name is {type(queue).__name__}, not text")
        base: dict[str, Any] = {
            "channel": channel,
            "contact_id": contact,
            "case_id": ctr.get("InitialContactId") or contact,
        }
        if self.tenant:
            base["tenant"] = self.tenant
        timeline = Timeline(contact, base)
        emit = timeline.emit
        out = timeline.events

        started = _ts(ctr.get("InitiationTimestamp"), "InitiationTimestamp")
        ended = _ts(ctr.get("DisconnectTimestamp"), "DisconnectTimestamp")
        direction, initiation = method
        priority = _priority(ctr.get("QueuePriority"), stats)
        emit(started, "contact.started", direction=direction, initiation=initiation,
             priority=priority)  # fmt: skip
        if queue and queue_info.get("EnqueueTimestamp"):
            base["queue"] = queue
            emit(_ts(queue_info["EnqueueTimestamp"], "Queue.EnqueueTimestamp"), "queue.entered",
                 priority=priority)  # fmt: skip
        agent = agent_info.get("Username") or (agent_info.get("ARN") or "").rsplit("/", 1)[-1]
        reason = ctr.get("DisconnectReason") or "OTHER"
        connected_at = agent_info.get("ConnectedToAgentTimestamp")
        if connected_at and agent:
            connected = _ts(connected_at, "Agent.ConnectedToAgentTimestamp")
            emit(connected, "agent.connected", agent_id=agent)
            if channel == "chat":
                emit(connected, "agent.message", agent_id=agent, sender="human")
            hold = _hold(agent_info.get("CustomerHoldDuration"), stats)
            if hold > 0:
                emit(connected, "hold.started", agent_id=agent)
                emit(connected + timedelta(seconds=hold), "hold.ended", agent_id=agent)
        elif queue and reason == "CUSTOMER_DISCONNECT":
            left = queue_info.get("DequeueTimestamp")
            emit(_ts(left, "Queue.DequeueTimestamp") if left else ended, "queue.abandoned")
        transferred_at = ctr.get("TransferCompletedTimestamp")
        if transferred_at:
            emit(_ts(transferred_at, "TransferCompletedTimestamp"), "contact.transferred",
                 agent_id=agent or None)  # fmt: skip
        fields: dict[str, Any] = {"ended_by": ENDED_BY.get(reason, "system"),
                                  "reason": reason.lower()[:200]}  # fmt: skip
        if connected_at and agent:
            fields["agent_id"] = agent
        reasons = _reasons(ctr, stats)
        if not (connected_at and agent):
            fields["reasons"] = reasons
        emit(ended, "contact.ended", **fields)
        if connected_at and agent:
            acw_end = agent_info.get("AfterContactWorkEndTimestamp")
            wrapped = _ts(acw_end, "Agent.AfterContactWorkEndTimestamp") if acw_end else ended
            emit(max(wrapped, ended), "wrapup.ended", agent_id=agent, reasons=reasons)
        return [(when, {k: v for k, v in ev.items() if v is not None}) for when, ev in out]
