"""Asterisk ``queue_log``: ``epoch|callid|queue|agent|EVENT|data1|data2|...``, one line per event,
appended in time order. Mapping (docs/importers.md):

* ``ENTERQUEUE``: ``contact.started`` the first time a call id appears, then ``queue.entered``.
* ``CONNECT``: ``agent.connected`` (the agent column). ``RINGNOANSWER``: ``agent.offered``.
* ``COMPLETECALLER`` / ``COMPLETEAGENT``: ``contact.ended`` by the customer / the agent and
  ``wrapup.ended`` (queue_log has no after-contact work).
* ``ABANDON``, ``EXITWITHKEY``: ``queue.abandoned`` and ``contact.ended`` by the customer.
* ``EXITWITHTIMEOUT``, ``EXITEMPTY``: ``contact.ended`` by the system (reason ``queue_timeout``,
  ``queue_empty``): the queue let the caller go without an agent.
* ``BLINDTRANSFER``, ``ATTENDEDTRANSFER``: ``contact.transferred``, then the agent's part ends
  (``contact.ended`` by the agent, ``wrapup.ended``); if the call id comes back to a queue it is
  a new contact of the same case.
* Agent events: ``AGENTLOGIN``, ``ADDMEMBER``, ``UNPAUSE``, ``UNPAUSEALL``: available;
  ``PAUSE``, ``PAUSEALL``: away, with the pause reason of the line's first data field;
  ``AGENTLOGOFF``, ``REMOVEMEMBER``: offline (``agent.state``).
* Anything else (``QUEUESTART``, ``CONFIGRELOAD``, ...) is skipped and counted by name.

State is kept only for calls in progress, so memory does not grow with the log.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from streams.inputs.files import ImportStats, Source, SourceStats, scan_lines
from streams.inputs.importers.base import MAX_CODE_CHARS, RowProblem

AGENT_STATES = {
    "AGENTLOGIN": "available",
    "ADDMEMBER": "available",
    "UNPAUSE": "available",
    "UNPAUSEALL": "available",
    "PAUSE": "away",
    "PAUSEALL": "away",
    "AGENTLOGOFF": "offline",
    "REMOVEMEMBER": "offline",
}
ENDS = {
    "COMPLETECALLER": ("customer", None),
    "COMPLETEAGENT": ("agent", None),
    "ABANDON": ("customer", None),
    "EXITWITHKEY": ("customer", "exit_with_key"),
    "EXITWITHTIMEOUT": ("system", "queue_timeout"),
    "EXITEMPTY": ("system", "queue_empty"),
}
NO_AGENT = ("", "NONE")


class _Call:
    __slots__ = ("agent", "contact", "leg", "queue")

    def __init__(self, contact: str, leg: int) -> None:
        self.contact = contact
        self.leg = leg
        self.queue: str | None = None
        self.agent: str | None = None


class QueueLog:
    name = "queue_log"
    not_recorded: tuple[str, ...] = ("hold", "after_contact_work")  # no HOLD, no wrap-up
    agent_states = True  # AGENTLOGIN, PAUSE, ADDMEMBER, ...

    def __init__(self, tenant: str | None = None) -> None:
        self.tenant = tenant

    def converter(self) -> QueueLogConverter:
        """A stateful line-by-line converter (used by the file importer and the live tail)."""
        return QueueLogConverter(self.tenant)

    def events(
        self, source: Source, sstats: SourceStats, stats: ImportStats, max_line: int
    ) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
        stream, _ = source.open()
        convert = self.converter()
        try:
            for lineno, _, raw in scan_lines(stream, sstats, max_line):
                if raw is None:
                    yield lineno, RowProblem("oversized", f"over {max_line} bytes")
                    continue
                text = raw.decode("utf-8", "replace").strip()
                if not text:
                    continue
                stats.records += 1
                try:
                    produced = convert.line(text, stats)
                except ValueError as exc:
                    yield lineno, RowProblem("malformed_record", str(exc))
                    continue
                for ev in produced:
                    stats.events += 1
                    yield lineno, ev
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()


class QueueLogConverter:
    """queue_log lines to events, keeping state only for calls in progress."""

    def __init__(self, tenant: str | None = None) -> None:
        self.tenant = tenant
        self.calls: dict[str, _Call] = {}
        self.legs: dict[str, int] = {}  # call ids seen, for legs after a transfer

    def line(self, text: str, stats: ImportStats) -> list[dict[str, Any]]:
        """The events of one line; raises ValueError for a line that is not queue_log."""
        return self._line(text, self.calls, self.legs, stats)

    def _line(
        self, text: str, calls: dict[str, _Call], legs: dict[str, int], stats: ImportStats
    ) -> list[dict[str, Any]]:
        cells = text.split("|")
        if len(cells) < 5:
            raise ValueError(f"{len(cells)} fields; expected epoch|callid|queue|agent|EVENT|...")
        epoch_text, callid, queue, agent, event = cells[:5]
        data = cells[5:]
        try:
            epoch = float(epoch_text)
            ts = datetime.fromtimestamp(epoch, UTC).isoformat()
        except (ValueError, OverflowError, OSError):  # inf, nan, 1e400, out of a date's range
            raise ValueError(f"not an epoch time: {epoch_text!r}") from None
        agent_id = agent if agent not in NO_AGENT else None
        out: list[dict[str, Any]] = []

        def emit(call: _Call, etype: str, **fields: Any) -> None:
            ev: dict[str, Any] = {
                "event_id": f"{call.contact}:{epoch_text}:{event}:{len(out)}",
                "type": etype,
                "ts": ts,
                "channel": "voice",
                "contact_id": call.contact,
                "case_id": callid,
            }
            if self.tenant:
                ev["tenant"] = self.tenant
            if call.queue:
                ev["queue"] = call.queue
            ev.update(fields)
            out.append(ev)

        if event in AGENT_STATES:
            if agent_id is None:
                raise ValueError(f"{event} without an agent")
            who = _Call(f"agent:{agent_id}", 0)
            # the queue of ADDMEMBER / REMOVEMEMBER / PAUSE (NONE for the agent as a whole)
            who.queue = queue if queue and queue != "NONE" else None
            state = AGENT_STATES[event]
            pause = data[0].strip() if state == "away" and data and data[0].strip() else None
            if pause is not None and len(pause) > MAX_CODE_CHARS:
                stats.warn("pause_reason_too_long")
                pause = None
            extra = {"reason": pause} if pause is not None else {}
            emit(who, "agent.state", agent_id=agent_id, state=state, **extra)
            return out
        if event == "ENTERQUEUE":
            call = calls.get(callid)
            if call is None:
                leg = legs.get(callid, 0) + 1
                legs[callid] = leg
                call = calls[callid] = _Call(callid if leg == 1 else f"{callid}.{leg}", leg)
                call.queue = queue or None
                emit(call, "contact.started", direction="inbound",
                     initiation="inbound" if leg == 1 else "transfer")  # fmt: skip
            call.queue = queue or call.queue
            emit(call, "queue.entered")
            return out
        call = calls.get(callid)
        if call is None:  # system lines (QUEUESTART, ...), or a call that began before the log
            stats.skip(event.lower() or "empty")
            return out
        if event == "CONNECT":
            if agent_id is None:
                raise ValueError("CONNECT without an agent")
            call.agent = agent_id
            emit(call, "agent.connected", agent_id=agent_id)
        elif event == "RINGNOANSWER":
            if agent_id is not None:
                emit(call, "agent.offered", agent_id=agent_id)
        elif event in ENDS:
            ended_by, reason = ENDS[event]
            if event in ("ABANDON", "EXITWITHKEY"):
                emit(call, "queue.abandoned")
            fields: dict[str, Any] = {"ended_by": ended_by}
            if reason:
                fields["reason"] = reason
            if call.agent:
                fields["agent_id"] = call.agent
            emit(call, "contact.ended", **fields)
            if call.agent and event.startswith("COMPLETE"):
                emit(call, "wrapup.ended", agent_id=call.agent)
            del calls[callid]
        elif event in ("BLINDTRANSFER", "ATTENDEDTRANSFER"):
            target = data[0] if data and data[0] else None
            emit(call, "contact.transferred", to_queue=target[:100] if target else None)
            fields = {"ended_by": "agent", "reason": "transferred"}
            if call.agent:
                fields["agent_id"] = call.agent
            emit(call, "contact.ended", **fields)
            if call.agent:
                emit(call, "wrapup.ended", agent_id=call.agent)
            del calls[callid]
        else:
            stats.skip(event.lower() or "empty")
        return out
