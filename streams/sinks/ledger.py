"""The contacts behind the numbers: for an audit's drill-down (``replay --csv``,
``cc-monitor explain``).

:class:`ContactLedger` is both a :class:`kpis.interfaces.Tracer` (the engine tells it which
event or timer is being handled) and a :class:`kpis.interfaces.KpiSink` (it sees every count
and duration the rules emit): each KPI count is attributed to the contact whose event or timer
produced it, and each contact's facts (times, queue, IVR path, agents, outcome) come from its
events. A case's timers (resolution, reopen window) count for the case's latest contact, a
callback's for the contact that asked for it. So summing the contacts' counts gives the
report's counts (tested), except what only a replay's end settles (open at the end).

Memory: one row per contact, at most ``max_contacts`` (a setting); contacts beyond it are
counted, not kept, and the export says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kpis import wire as w
from kpis.catalogue import KPI, REASON, lookup
from kpis.interfaces import Labels
from kpis.rules.base import TIMER_CALLBACK, TIMER_CASE, TIMER_CASE_CLOSED

MAX_PATH = 20
MAX_AGENTS = 10
_NOT_CONTACTS = (w.AgentState, w.SystemStatus)
_CASE_EVENTS = (w.CaseResolved, w.CaseReopened)


@dataclass(slots=True)
class ContactRow:
    contact_id: str
    case_id: str = ""
    customer_id: str = ""
    tenant: str = "-"
    channel: str = ""
    queue: str = "-"
    initiation: str = ""
    started: float | None = None
    queued: float | None = None
    answered: float | None = None
    ended: float | None = None
    ended_by: str = ""
    ivr_path: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    counted: list[tuple[str, Labels, float]] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # its reason codes, as counted


def _is_kpi(name: str) -> bool:
    s = lookup(name)
    return s is not None and s.family in (KPI, REASON) and not name.startswith("dq_")


class ContactLedger:
    def __init__(self, max_contacts: int = 2_000_000,
                 pseudonymize: Callable[[str], str] | None = None) -> None:  # fmt: skip
        self.max_contacts = max_contacts
        self.pseudonymize = pseudonymize
        self.rows: dict[str, ContactRow] = {}
        self.dropped = 0  # contacts beyond max_contacts
        self.unattributed: dict[tuple[str, Labels], int] = {}  # counts of a replay's end
        self._current: str | None = None
        self._case_last: dict[str, str] = {}
        self._callback_of: dict[str, str] = {}
        self._kpi: dict[str, bool] = {}

    # --- Tracer ------------------------------------------------------------------------------

    def _row(self, contact_id: str) -> ContactRow | None:
        row = self.rows.get(contact_id)
        if row is None:
            if len(self.rows) >= self.max_contacts:
                self.dropped += 1
                return None
            row = self.rows[contact_id] = ContactRow(contact_id)
        return row

    def record(self, rec: object, ts: float) -> None:
        if not isinstance(rec, w.Rec) or isinstance(rec, _NOT_CONTACTS):
            self._current = None
            return
        cid = rec.contact_id
        if isinstance(rec, _CASE_EVENTS) and cid not in self.rows:
            # A case event is not a contact (a reopen note has an id of its own): what it
            # counts belongs to the case's latest contact, and it makes no row
            self._current = self._case_last.get(rec.case_id or cid)
            return
        self._current = cid
        row = self.rows.get(cid) or self._row(cid)
        if row is None:
            return
        if rec.case_id:
            row.case_id = rec.case_id
            self._case_last[rec.case_id] = cid
        elif not row.case_id:
            row.case_id = cid
            self._case_last[cid] = cid
        row.channel = rec.channel
        if rec.tenant:
            row.tenant = rec.tenant
        if rec.queue:
            row.queue = rec.queue
        if rec.customer_id and not row.customer_id:
            cust = rec.customer_id
            row.customer_id = self.pseudonymize(cust) if self.pseudonymize else cust
        if isinstance(rec, w.ContactStarted):
            row.started = ts
            row.initiation = rec.initiation or ""
        elif isinstance(rec, w.IvrMenu):
            if len(row.ivr_path) < MAX_PATH:
                row.ivr_path.append(rec.menu)
        elif isinstance(rec, w.QueueEntered):
            if row.queued is None:
                row.queued = ts
        elif isinstance(rec, w.AgentConnected):
            if row.answered is None:
                row.answered = ts
            if rec.agent_id not in row.agents and len(row.agents) < MAX_AGENTS:
                row.agents.append(rec.agent_id)
        elif isinstance(rec, w.ContactEnded):
            row.ended = ts
            row.ended_by = rec.ended_by or ""
        elif isinstance(rec, w.CallbackRequested):
            self._callback_of[rec.callback_id] = cid
        if row.started is None:
            row.started = ts

    def timer(self, kind: int, key: str, when: float) -> None:
        if kind in (TIMER_CASE, TIMER_CASE_CLOSED):
            self._current = self._case_last.get(key)
        elif kind == TIMER_CALLBACK:
            self._current = self._callback_of.get(key)
        else:  # contacts' and surveys' timers are keyed by contact
            self._current = key

    def done(self) -> None:
        self._current = None

    # --- KpiSink -----------------------------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        known = self._kpi.get(name)
        if known is None:
            known = self._kpi[name] = _is_kpi(name)
        return known

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        if not self._wanted(name):
            return
        cid = self._current
        row = self.rows.get(cid) if cid is not None else None
        if row is None:
            key = (name, labels)
            self.unattributed[key] = self.unattributed.get(key, 0) + 1
            return
        row.counted.append((name, labels, ts))
        if name == "reason_contacts":
            row.reasons.append(labels[3])

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        cid = self._current
        if cid is None or not self._wanted(name):
            return
        row = self.rows.get(cid)
        if row is not None:
            row.durations[name] = row.durations.get(name, 0.0) + value

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        return None


OUTCOMES = (
    ("answered", "answered"), ("abandoned", "abandoned"),
    ("queue_callback_requests", "callback_requested"), ("dropped", "dropped"),
    ("left_in_ivr", "left_in_ivr"), ("contacts_orphaned", "orphaned"),
)  # fmt: skip


def outcome(row: ContactRow) -> str:
    """What became of a contact, in one word (the first that applies)."""
    names = {n for n, _, _ in row.counted}
    for name, word in OUTCOMES:
        if name in names:
            return word
    if row.answered is not None:
        return "handled"
    return "ended" if row.ended is not None else "open"
