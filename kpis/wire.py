"""The engine's records: msgspec structs mirroring :mod:`kpis.events` field for field.

msgspec decodes and validates a JSON line into one of these in a single C pass (faster than
``orjson.loads`` into a dict), so the per-event cost of validation all but disappears. The
pydantic models stay the authority: whatever msgspec rejects is handed to pydantic, which either
accepts it (with its coercions) or rejects it with the reason and message a report shows. Tests
keep the two definitions equal (names, required fields, constraints) and check that whatever
msgspec accepts, pydantic accepts with the same values.

The ``type`` tag is not an attribute; the class is the type (see :data:`TYPE_OF`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Reason = Annotated[str, msgspec.Meta(max_length=200)]
ReasonCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ReasonCodes = Annotated[list[ReasonCode], msgspec.Meta(max_length=10)]  # events.MAX_REASONS
Priority = Annotated[int, msgspec.Meta(ge=0, le=9)]
Channel = Literal["voice", "chat", "email", "sms", "social", "video"]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
"""RFC 3339 with an offset; digits beyond the microsecond are rounded to the nearest one."""


class Rec(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True, gc=False):
    schema_version: Literal[1] = 1
    event_id: Id
    ts: AwareDatetime
    channel: Channel
    contact_id: Id
    case_id: Id | None = None
    tenant: Label | None = None
    queue: Label | None = None
    agent_id: Id | None = None
    customer_id: Id | None = None
    attributes: dict[str, Any] = {}


class ContactStarted(Rec, tag="contact.started"):
    direction: Literal["inbound", "outbound"] = "inbound"
    initiation: Literal["inbound", "outbound", "callback", "transfer"] = "inbound"
    callback_id: Id | None = None
    priority: Priority | None = None


class ContactTransferred(Rec, tag="contact.transferred"):
    to_queue: Label | None = None
    to_agent_id: Id | None = None


class ContactEnded(Rec, tag="contact.ended"):
    ended_by: Literal["customer", "agent", "system"]
    reason: Reason | None = None
    resolved: bool | None = None
    reasons: ReasonCodes = []


class IvrEntered(Rec, tag="ivr.entered"):
    flow: Label
    greeting_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None


class IvrMenu(Rec, tag="ivr.menu"):
    flow: Label
    menu: Label
    level: Annotated[int, msgspec.Meta(ge=1, le=100)]


class IvrInput(Rec, tag="ivr.input"):
    flow: Label
    requested: Label
    menu: Label | None = None


class IvrExited(Rec, tag="ivr.exited"):
    flow: Label
    outcome: Literal["queue", "self_served", "hang_up", "error"]
    agent_requested: bool = False


class QueueEntered(Rec, tag="queue.entered"):
    queue: Label
    priority: Priority | None = None


class QueueAbandoned(Rec, tag="queue.abandoned"):
    pass


class AgentOffered(Rec, tag="agent.offered"):
    agent_id: Id


class AgentConnected(Rec, tag="agent.connected"):
    agent_id: Id


class AgentMessage(Rec, tag="agent.message"):
    sender: Literal["human", "bot"] = "human"


class CustomerMessage(Rec, tag="customer.message"):
    pass


class HoldStarted(Rec, tag="hold.started"):
    pass


class HoldEnded(Rec, tag="hold.ended"):
    pass


class WrapupEnded(Rec, tag="wrapup.ended"):
    resolved: bool | None = None
    reasons: ReasonCodes = []


class CaseResolved(Rec, tag="case.resolved"):
    pass


class CaseReopened(Rec, tag="case.reopened"):
    pass


class CallbackRequested(Rec, tag="callback.requested"):
    callback_id: Id
    reserved_for: AwareDatetime | None = None


class CallbackAttempted(Rec, tag="callback.attempted"):
    callback_id: Id
    outcome: Literal["reached", "no_answer", "busy", "failed"]


class CallbackCancelled(Rec, tag="callback.cancelled"):
    callback_id: Id


class SystemStatus(Rec, tag="system.status"):
    component: Label
    status: Literal["up", "degraded", "down"]


class AgentState(Rec, tag="agent.state"):
    agent_id: Id
    state: Literal["available", "busy", "after_work", "away", "offline"]
    reason: ReasonCode | None = None


class SurveyAnswered(Rec, tag="survey.answered"):
    survey: Literal["csat", "ces", "nps"]
    score: Annotated[int, msgspec.Meta(ge=0, le=10)]
    scale: Literal[5, 7, 10]
    verbatim: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class ComplaintOpened(Rec, tag="complaint.opened"):
    complaint_id: Id
    category: ReasonCode
    severity: Literal["low", "medium", "high", "critical"] | None = None
    remedy: ReasonCode | None = None


class ComplaintUpdated(Rec, tag="complaint.updated"):
    complaint_id: Id
    status: Literal["acknowledged", "investigating", "waiting_for_customer", "proposed"]


class ComplaintEscalated(Rec, tag="complaint.escalated"):
    complaint_id: Id


class ComplaintCompensated(Rec, tag="complaint.compensated"):
    complaint_id: Id
    amount_class: Literal["none", "small", "medium", "large"]


class ComplaintClosed(Rec, tag="complaint.closed"):
    complaint_id: Id
    outcome: Literal["upheld", "partly_upheld", "not_upheld", "withdrawn"]


class ComplaintReopened(Rec, tag="complaint.reopened"):
    complaint_id: Id


AnyRec = (
    ContactStarted
    | ContactTransferred
    | ContactEnded
    | IvrEntered
    | IvrMenu
    | IvrInput
    | IvrExited
    | QueueEntered
    | QueueAbandoned
    | AgentOffered
    | AgentConnected
    | AgentMessage
    | CustomerMessage
    | HoldStarted
    | HoldEnded
    | WrapupEnded
    | CaseResolved
    | CaseReopened
    | CallbackRequested
    | CallbackAttempted
    | CallbackCancelled
    | SystemStatus
    | AgentState
    | SurveyAnswered
    | ComplaintOpened
    | ComplaintUpdated
    | ComplaintEscalated
    | ComplaintCompensated
    | ComplaintClosed
    | ComplaintReopened
)

RECORD_TYPES: tuple[type[Rec], ...] = get_args(AnyRec)
TYPE_OF: dict[type[Rec], str] = {cls: str(cls.__struct_config__.tag) for cls in RECORD_TYPES}
CLASS_OF: dict[str, type[Rec]] = {t: cls for cls, t in TYPE_OF.items()}
