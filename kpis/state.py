"""Per-key engine state. Small, slotted, and free of references to other state objects, so that
a store can serialize each value on its own (``to_dict`` / ``from_dict``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

NO_LABEL = "-"


def _plain(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Field values of a state object, lists copied: ``dataclasses.asdict`` deep-copies through
    recursion and was most of a checkpoint's time."""
    d = {n: getattr(obj, n) for n in names}
    for n, v in d.items():
        if isinstance(v, list):
            d[n] = list(v)
    return d


@dataclass(slots=True)
class Segment:
    """One agent's part of a contact: from connect to the end of after-contact work."""

    agent: str
    start: float
    hold_start: float | None = None
    hold: float = 0.0
    left: float | None = None  # when the agent left the conversation; ACW runs from here
    queue: str = ""  # the queue the contact was in when this agent took it


@dataclass(slots=True)
class ContactState:
    contact_id: str
    case_id: str
    tenant: str
    channel: str
    queue: str
    started: float
    last: float
    labels: tuple[str, str, str]
    inbound: bool = True
    callback: bool = False  # an outbound contact serving a callback request
    priority: int | None = None  # picks targets (kpis.targets)
    flow: str | None = None
    menu: str | None = None
    ivr_entered: float | None = None
    in_ivr: bool = False
    asked: list[str] | None = None  # what the IVR asked for, to see a repeat
    deep_menus: list[str] | None = None  # menus past the depth limit already counted
    queue_entered: float | None = None  # set while waiting
    answered: bool = False
    segments: list[Segment] = field(default_factory=list)
    ended: float | None = None
    reasons: list[str] | None = None  # contact reason codes, as kept (kpis.rules.reasons)
    handled_seconds: float = 0.0  # handle time of its agent parts wrapped up so far
    customer_id: str | None = None  # pseudonymous, as its first event carried it

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self, _CONTACT_FIELDS)
        d["segments"] = [_plain(s, _SEGMENT_FIELDS) for s in self.segments]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContactState:
        d = dict(d)
        d["labels"] = tuple(d["labels"])
        d["segments"] = [Segment(**s) for s in d["segments"]]
        return cls(**d)


@dataclass(slots=True)
class CaseState:
    case_id: str
    labels: tuple[str, str, str]  # of the contact that opened the case
    started: float  # first contact.started (or the late reopen that began this episode)
    last: float
    inbound: bool
    first_asked: float | None = None  # first queue.entered
    responded: bool = False
    handled: list[str] = field(default_factory=list)  # "contact/agent" pairs that handled it
    transferred: bool = False
    reopened: bool = False
    resolved_at: float | None = None
    evidence: str = ""
    priority: int | None = None  # of the contact that opened it, at its first queue
    followed_up: bool = False  # an outbound contact started while it was unresolved
    reasons: list[str] | None = None  # its contacts' reason codes (kpis.rules.reasons)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, _CASE_FIELDS)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseState:
        d = dict(d)
        d["labels"] = tuple(d["labels"])
        return cls(**d)


class _Labelled:
    """State restored from plain data whose ``labels`` come back as a list."""

    __slots__ = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        d = dict(d)
        d["labels"] = tuple(d["labels"])
        return cls(**d)


@dataclass(slots=True)
class RepeatRef(_Labelled):
    """A customer's latest inbound contact (kpis.rules.repeats): where a repeat of it counts."""

    contact_id: str
    started: float
    labels: tuple[str, str, str]  # final once the contact ended
    reasons: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, _REPEAT_FIELDS)


@dataclass(slots=True)
class ComplaintState(_Labelled):
    """An open (or recently closed) complaint (kpis.rules.complaints)."""

    complaint_id: str
    labels: tuple[str, str, str]  # tenant, channel of receipt, category
    opened: float
    severity: str | None
    ack_deadline: float | None
    close_deadline: float | None
    evidence: str  # the contact it came from
    acknowledged: float | None = None
    closed: float | None = None
    escalated: bool = False
    compensated: bool = False
    ack_overdue: bool = False
    overdue: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, _COMPLAINT_FIELDS)


@dataclass(slots=True)
class CallbackState(_Labelled):
    callback_id: str
    labels: tuple[str, str, str]
    requested: float
    window_start: float
    deadline: float
    contact_id: str

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, _CALLBACK_FIELDS)


@dataclass(slots=True)
class SurveyRef(_Labelled):
    """What a survey answer about a closed contact needs: where it is counted."""

    labels: tuple[str, str, str]
    agent: str | None
    started: float  # the contact's day
    case_id: str
    one_touch: bool  # the case's state when the contact ended
    until: float
    answered: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, _SURVEY_FIELDS)


_SEGMENT_FIELDS = tuple(f.name for f in fields(Segment))
_CONTACT_FIELDS = tuple(f.name for f in fields(ContactState))
_CASE_FIELDS = tuple(f.name for f in fields(CaseState))
_CALLBACK_FIELDS = tuple(f.name for f in fields(CallbackState))
_SURVEY_FIELDS = tuple(f.name for f in fields(SurveyRef))
_REPEAT_FIELDS = tuple(f.name for f in fields(RepeatRef))
_COMPLAINT_FIELDS = tuple(f.name for f in fields(ComplaintState))
