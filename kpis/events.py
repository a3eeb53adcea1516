"""The canonical, versioned event model (SPEC section 3).

These pydantic v2 models are the single authority on what a valid event is: the JSON Schema that
``cc-monitor schema`` prints is generated from them, and every input the fast decoder
(:mod:`kpis.decode`) cannot prove valid on its own is validated here. The engine consumes
msgspec records (:mod:`kpis.wire`) that mirror these models, because constructing a model per
event costs several times the whole per-event budget of a replay; a property test keeps the two
in agreement.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = 1
"""Version of the event model. Bumped on any incompatible change; additive changes keep it."""

Channel: TypeAlias = Literal["voice", "chat", "email", "sms", "social", "video"]
CHANNELS: tuple[str, ...] = ("voice", "chat", "email", "sms", "social", "video")
TEXT_CHANNELS = frozenset({"chat", "email", "sms", "social"})
"""Channels whose first human response is an ``agent.message`` rather than ``agent.connected``."""

Id = Annotated[str, Field(min_length=1, max_length=200)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
Priority = Annotated[int, Field(ge=0, le=9)]
ReasonCode = Annotated[str, Field(min_length=1, max_length=64)]
MAX_REASONS = 10
"""Reason codes one event may carry."""


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event_id: Id = Field(description="Unique id; a repeated id is dropped as a duplicate.")
    ts: AwareDatetime = Field(
        strict=True, description="Event time, RFC 3339 with an offset. Naive is rejected."
    )
    channel: Channel
    contact_id: Id = Field(description="One interaction: a call, a chat session, an e-mail thread.")
    case_id: Id | None = Field(
        default=None,
        description="The customer's issue, spanning contacts and channels; defaults to contact_id.",
    )
    tenant: Label | None = None
    queue: Label | None = None
    agent_id: Id | None = None
    customer_id: Id | None = Field(default=None, description="Pseudonymous customer id.")
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_case(self) -> EventBase:
        if self.case_id is None:
            object.__setattr__(self, "case_id", self.contact_id)
        return self


# --- contact ---


class ContactStarted(EventBase):
    type: Literal["contact.started"]
    direction: Literal["inbound", "outbound"] = "inbound"
    initiation: Literal["inbound", "outbound", "callback", "transfer"] = "inbound"
    callback_id: Id | None = Field(
        default=None, description="For initiation=callback: the callback request this serves."
    )
    priority: Priority | None = Field(
        default=None,
        description="The source's priority class, 0-9, as the source numbers it (target rules "
        "match the number; whether 1 or 9 goes first is the source's).",
    )


class ContactTransferred(EventBase):
    type: Literal["contact.transferred"]
    to_queue: Label | None = None
    to_agent_id: Id | None = None


class ContactEnded(EventBase):
    type: Literal["contact.ended"]
    ended_by: Literal["customer", "agent", "system"]
    reason: Annotated[str, Field(max_length=200)] | None = None
    resolved: bool | None = Field(
        default=None, description="Sources without case events: true marks the case resolved."
    )
    reasons: list[ReasonCode] = Field(
        default_factory=list,
        max_length=MAX_REASONS,
        description="Contact reason (wrap-up) codes from the tenant's configured list "
        "(engine.contact_reasons; docs/kpis.md). Several allowed; the contact's reasons are "
        "those of its end and its wrap-ups together.",
    )


# --- IVR ---


class IvrEntered(EventBase):
    type: Literal["ivr.entered"]
    flow: Label
    greeting_seconds: Annotated[float, Field(ge=0)] | None = None


class IvrMenu(EventBase):
    type: Literal["ivr.menu"]
    flow: Label
    menu: Label
    level: Annotated[int, Field(ge=1, le=100)] = Field(description="1 is the top menu.")


class IvrInput(EventBase):
    type: Literal["ivr.input"]
    flow: Label
    menu: Label | None = None
    requested: Label = Field(description="What the IVR asked for, e.g. account_number.")


class IvrExited(EventBase):
    type: Literal["ivr.exited"]
    flow: Label
    outcome: Literal["queue", "self_served", "hang_up", "error"]
    agent_requested: bool = Field(
        default=False, description="The customer asked for an agent during the IVR."
    )


# --- queue and hand-off ---


class QueueEntered(EventBase):
    type: Literal["queue.entered"]
    queue: Label
    priority: Priority | None = Field(
        default=None, description="Priority in this queue, 0-9 as the source numbers it."
    )


class QueueAbandoned(EventBase):
    type: Literal["queue.abandoned"]


class AgentOffered(EventBase):
    type: Literal["agent.offered"]
    agent_id: Id


class AgentConnected(EventBase):
    type: Literal["agent.connected"]
    agent_id: Id


# --- conversation ---


class AgentMessage(EventBase):
    type: Literal["agent.message"]
    sender: Literal["human", "bot"] = "human"


class CustomerMessage(EventBase):
    type: Literal["customer.message"]


class HoldStarted(EventBase):
    type: Literal["hold.started"]


class HoldEnded(EventBase):
    type: Literal["hold.ended"]


class WrapupEnded(EventBase):
    type: Literal["wrapup.ended"]
    resolved: bool | None = None
    reasons: list[ReasonCode] = Field(
        default_factory=list,
        max_length=MAX_REASONS,
        description="Contact reason (wrap-up) codes the agent chose (as on contact.ended).",
    )


# --- case ---


class CaseResolved(EventBase):
    type: Literal["case.resolved"]


class CaseReopened(EventBase):
    type: Literal["case.reopened"]


# --- callback ---


class CallbackRequested(EventBase):
    type: Literal["callback.requested"]
    callback_id: Id
    reserved_for: AwareDatetime | None = Field(
        default=None, strict=True, description="The slot the customer reserved, if any."
    )


class CallbackAttempted(EventBase):
    type: Literal["callback.attempted"]
    callback_id: Id
    outcome: Literal["reached", "no_answer", "busy", "failed"]


class CallbackCancelled(EventBase):
    type: Literal["callback.cancelled"]
    callback_id: Id


# --- platform ---


class SystemStatus(EventBase):
    type: Literal["system.status"]
    component: Label = Field(description="trunk, ivr, acd, chat_gateway, ...")
    status: Literal["up", "degraded", "down"]


class AgentState(EventBase):
    type: Literal["agent.state"]
    agent_id: Id
    state: Literal["available", "busy", "after_work", "away", "offline"]
    reason: ReasonCode | None = Field(
        default=None,
        description="Away: the pause reason, a code of the tenant's list (engine.pause_reasons): "
        "break, lunch, training, ...",
    )


# --- customer surveys ---


class SurveyAnswered(EventBase):
    """A post-contact survey answer about ``contact_id`` (and its case). Counted where the
    contact belongs (channel, queue, agent, the contact's day), however late it arrives."""

    type: Literal["survey.answered"]
    survey: Literal["csat", "ces", "nps"] = Field(
        description="csat: satisfaction, 1..scale, higher is better; ces: 'the company made it "
        "easy to handle my issue', 1..scale, higher is easier; nps: 0..10 likelihood to "
        "recommend (scale 10)."
    )
    score: Annotated[int, Field(ge=0, le=10)]
    scale: Literal[5, 7, 10] = Field(description="The highest score of the survey's scale.")
    verbatim: Annotated[str, Field(max_length=2000)] | None = Field(
        default=None, description="Free text; never logged, labelled or kept by the engine."
    )


# --- complaints (KS S 1006 다.(1)) ---

ComplaintSeverity: TypeAlias = Literal["low", "medium", "high", "critical"]


class ComplaintOpened(EventBase):
    """A complaint received on ``contact_id`` (its channel is the channel of receipt), under
    a unique id. ``category`` and ``remedy`` are codes of bounded lists, never free text."""

    type: Literal["complaint.opened"]
    complaint_id: Id
    category: ReasonCode = Field(
        description="From the tenant's list (engine.complaint_categories); else 'unknown'."
    )
    severity: ComplaintSeverity | None = Field(
        default=None, description="As the centre's criteria rate it (KS S 1006 다.(1) 4))."
    )
    remedy: ReasonCode | None = Field(
        default=None,
        description="The remedy the customer asks for, as a code (다.(1) 3)): refund, apology, ...",
    )


class ComplaintUpdated(EventBase):
    type: Literal["complaint.updated"]
    complaint_id: Id
    status: Literal["acknowledged", "investigating", "waiting_for_customer", "proposed"]


class ComplaintEscalated(EventBase):
    type: Literal["complaint.escalated"]
    complaint_id: Id


class ComplaintCompensated(EventBase):
    type: Literal["complaint.compensated"]
    complaint_id: Id
    amount_class: Literal["none", "small", "medium", "large"] = Field(
        description="The compensation's size class (never an amount or personal data)."
    )


class ComplaintClosed(EventBase):
    type: Literal["complaint.closed"]
    complaint_id: Id
    outcome: Literal["upheld", "partly_upheld", "not_upheld", "withdrawn"]


class ComplaintReopened(EventBase):
    type: Literal["complaint.reopened"]
    complaint_id: Id


Event = Annotated[
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
    | ComplaintReopened,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_MODELS: tuple[type[EventBase], ...] = get_args(get_args(Event)[0])


def model_type(model: type[EventBase]) -> str:
    """The ``type`` literal a model is discriminated by."""
    annotation = model.model_fields["type"].annotation
    (value,) = annotation.__args__  # type: ignore[union-attr]
    return str(value)


MODELS_BY_TYPE: dict[str, type[EventBase]] = {model_type(m): m for m in EVENT_MODELS}
EVENT_TYPES: frozenset[str] = frozenset(MODELS_BY_TYPE)

# Order of processing for events with the same timestamp: an interaction's beginning before its
# middle before its end, so that ties never depend on arrival order (the engine sorts by
# (ts, rank, event_id)).
TYPE_RANK: dict[str, int] = {
    t: i
    for i, t in enumerate(
        (
            "system.status",
            "agent.state",
            "contact.started",
            "callback.requested",
            "ivr.entered",
            "ivr.menu",
            "ivr.input",
            "ivr.exited",
            "queue.entered",
            "agent.offered",
            "agent.connected",
            "customer.message",
            "agent.message",
            "hold.started",
            "hold.ended",
            "queue.abandoned",
            "contact.transferred",
            "callback.attempted",
            "callback.cancelled",
            "contact.ended",
            "wrapup.ended",
            "case.resolved",
            "case.reopened",
            "survey.answered",
            "complaint.opened",
            "complaint.updated",
            "complaint.escalated",
            "complaint.compensated",
            "complaint.closed",
            "complaint.reopened",
        )
    )
}
assert set(TYPE_RANK) == EVENT_TYPES


def json_schema() -> dict[str, Any]:
    """JSON Schema of the whole event union, with the schema version in its metadata."""
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cc-monitor event"
    schema["x-schema-version"] = SCHEMA_VERSION
    return schema
