"""Engine configuration: every KPI threshold and time horizon, with the SPEC's defaults."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from kpis.targets import Calendar, TargetRule

DAY = 86_400.0
INTERVAL_CHOICES = (0, 15, 30)


class PerChannel(BaseModel):
    """One value per channel. A file or the environment that names one channel changes that
    channel only (the others keep their defaults); an unknown channel is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def get(self, channel: str, default: float) -> float:
        value = getattr(self, channel, None)
        return default if value is None else float(value)


class ServiceLevelSeconds(PerChannel):
    """20 s for real-time channels (SPEC); deferred channels use a published target."""

    voice: float = Field(20.0, gt=0)
    video: float = Field(20.0, gt=0)
    chat: float = Field(20.0, gt=0)
    sms: float = Field(3600.0, gt=0)
    social: float = Field(3600.0, gt=0)
    email: float = Field(DAY, gt=0)


class IdleTimeoutSeconds(PerChannel):
    """A call that has said nothing for 4 h is gone; an e-mail thread may rest for days."""

    voice: float = Field(4 * 3600.0, gt=0)
    video: float = Field(4 * 3600.0, gt=0)
    chat: float = Field(DAY, gt=0)
    sms: float = Field(DAY, gt=0)
    social: float = Field(DAY, gt=0)
    email: float = Field(7 * DAY, gt=0)


class NamedFlow(BaseModel):
    """An IVR flow and its menus, kept as labels outside the caps (or, with
    ``configured_only``, as the only ones); from an IVR flow file (``ivr_flow_files``) or
    written here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(min_length=1, max_length=200)
    menus: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = Field(
        (), max_length=10_000
    )
    tenant: str | None = Field(None, min_length=1, description="None: every tenant.")


class ReasonList(BaseModel):
    """The contact reason (wrap-up) codes of a tenant (or, without ``tenant``, of every tenant
    that has no list of its own): a code outside it is counted as ``unknown``, never a new
    label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str | None = Field(None, min_length=1, max_length=100)
    codes: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        min_length=1, max_length=500
    )

    @field_validator("codes")
    @classmethod
    def _no_reserved(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        taken = {"unknown", "other", "*", "-"} & set(v)
        if taken:
            raise ValueError(f"{', '.join(sorted(taken))}: reserved (what unlisted codes become)")
        return v


class ComplaintTarget(BaseModel):
    """How fast a complaint is acknowledged and closed: per tenant, category and severity
    (each unset: any); the most specific rule that matches wins, then the earlier one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str | None = Field(None, min_length=1, max_length=100)
    category: str | None = Field(None, min_length=1, max_length=64)
    severity: Literal["low", "medium", "high", "critical"] | None = None
    acknowledge_seconds: float | None = Field(None, gt=0)
    close_seconds: float | None = Field(None, gt=0)


DEFAULT_COMPLAINT_TARGETS = (
    ComplaintTarget(acknowledge_seconds=DAY, close_seconds=14 * DAY),
    ComplaintTarget(severity="critical", acknowledge_seconds=4 * 3600.0, close_seconds=3 * DAY),
)


class LabelCaps(BaseModel):
    """How many distinct values each label dimension keeps (kpis.rules.labels); past a cap a
    value is folded into ``other`` and counted as data quality ``label_folded_<dimension>``.
    The series per queue are about 80, so the queue caps bound /metrics: 500 queues are about
    40,000 series."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: int = Field(50, ge=1, description="Tenants.")
    queues_per_tenant: int = Field(200, ge=1, description="Queues of one tenant.")
    queues: int = Field(500, ge=1, description="Queues of all tenants together.")
    flows_per_tenant: int = Field(50, ge=1, description="IVR flows of one tenant.")
    menus_per_flow: int = Field(200, ge=1, description="IVR menus of one flow.")
    menus: int = Field(2000, ge=1, description="IVR menus of all flows together.")
    components: int = Field(100, ge=1, description="Platform components (system.status).")
    reasons_per_tenant: int = Field(
        100, ge=1, description="Contact reason codes of a tenant without a configured list."
    )
    complaint_categories_per_tenant: int = Field(
        50, ge=1, description="Complaint categories of a tenant without a configured list."
    )
    pause_reasons_per_tenant: int = Field(
        30, ge=1, description="Agents' pause reasons of a tenant without a configured list."
    )
    agents: int = Field(10_000, ge=1, description="Agents of all tenants together.")
    configured_only: bool = Field(
        False,
        description="Tenants and queues only as the target rules name them: a tenant any rule "
        "names; for a tenant whose rules name queues (or if rules without a tenant do), those "
        "queues. Every other value is `other`, decided by the configuration alone, so live "
        "partitions and a replay fold exactly alike. A dimension no rule names keeps its cap. "
        "IVR flows and menus likewise, as `ivr_flows` names them.",
    )
    ivr_flows: tuple[NamedFlow, ...] = Field(
        (),
        max_length=1000,
        description="IVR flows and their menus always kept (and with configured_only the only "
        "ones for a tenant that has any). The flow files of `ivr_flow_files` add theirs.",
    )


class EngineConfig(BaseModel):
    """Thresholds of the KPI engine. All durations in seconds of event time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_lateness_seconds: float = Field(
        60.0, ge=0, description="Watermark = max event time seen minus this. Older is 'late'."
    )
    earliest_event_time: AwareDatetime = Field(
        datetime(1990, 1, 1, tzinfo=UTC),
        description="Events dated before this are rejected as out_of_range (a clock reset to "
        "1970 or 0001 is not an event time).",
    )
    latest_event_time: AwareDatetime = Field(
        datetime(2100, 1, 1, tzinfo=UTC),
        description="Events dated at or after this are rejected as out_of_range.",
    )
    max_lead_seconds: float | None = Field(
        None,
        gt=0,
        description="If set, an event more than this far ahead of the latest event time seen "
        "is rejected as out_of_range and does not move the watermark (one skewed clock cannot "
        "make the rest of a log late). Set it above the longest quiet period of the centre "
        "(nights, weekends, holidays): a real jump that long would be rejected too.",
    )
    max_clock_lead_seconds: float = Field(
        900.0,
        gt=0,
        description="Live workers: an event more than this far ahead of the wall clock is "
        "rejected as out_of_range (replays have no wall clock).",
    )
    dedupe_horizon_seconds: float = Field(
        3600.0,
        ge=0,
        description="How long behind the watermark a processed event_id is remembered, so that a "
        "repeat is reported as 'duplicate' rather than 'late'.",
    )
    service_level_seconds: ServiceLevelSeconds = Field(
        default_factory=ServiceLevelSeconds,
        description="Per channel: answered within this many seconds counts as within service "
        "level. 20 s for real-time channels (SPEC); deferred channels use a published target.",
    )
    short_abandon_seconds: float = Field(
        5.0,
        ge=0,
        description="An abandonment within this many seconds of queue entry is also counted as "
        "short (a misdial or a customer who changed their mind, not a wait that was too long).",
    )
    callback_request_abandons: bool = Field(
        False,
        description="A queued customer who accepts a callback offer leaves the queue as "
        "queue_callback_requests, its own outcome, outside service level and abandonment (the "
        "ACD and WFM reading). True counts it as abandoned as well (the reading of centres "
        "that treat every queue exit before an answer as lost).",
    )
    ivr_max_depth: int = Field(3, ge=1, description="KS S 1006 6.4.1: menus at most 3 levels.")
    greeting_target_seconds: float = Field(15.0, gt=0, description="Longest acceptable greeting.")
    callback_deadline_seconds: float = Field(DAY, gt=0, description="Callback within 24 h.")
    callback_reserved_tolerance_seconds: float = Field(
        900.0, ge=0, description="A reserved callback is on time within this of the slot."
    )
    reopen_window_seconds: float = Field(
        7 * DAY, ge=0, description="A reopen within this turns one-touch into multi-touch."
    )
    contact_idle_timeout_seconds: IdleTimeoutSeconds = Field(
        default_factory=IdleTimeoutSeconds,
        description="Per channel: a contact with no event for this long is closed as orphaned.",
    )
    wrapup_timeout_seconds: float = Field(
        3600.0, gt=0, description="After a contact ends, how long to wait for wrapup.ended."
    )
    case_idle_timeout_seconds: float = Field(
        30 * DAY, gt=0, description="An unresolved case with no contact for this long is closed."
    )

    # an int checked against the choices, not a Literal: an environment value is text, and
    # pydantic does not read "15" as the literal 15 (it does read it as the int 15)
    interval_minutes: int = Field(
        30,
        description="Length of the intraday intervals (report section 'intervals'); 0: the "
        "section is left out (a replay of a year need not pay for it).",
    )
    agent_stretch_max_seconds: float = Field(
        31 * DAY,
        gt=0,
        description="Longest time in one agent state that counts (replays' agent states); "
        "beyond it a logout was never sent: the rest counts as offline, as data quality "
        "agent_state_too_long (and the intervals it would spread over stay bounded).",
    )
    survey_window_seconds: float = Field(
        14 * DAY,
        ge=0,
        description="How long after a handled contact ends a survey answer about it is still "
        "counted where the contact belongs (one small entry per contact is kept that long; "
        "0: answers are counted on their own labels and day).",
    )
    repeat_window_seconds: float = Field(
        7 * DAY,
        ge=0,
        description="A customer's inbound contact within this long of the start of their "
        "previous one makes that one a repeated contact (kpis.rules.repeats; one small entry "
        "per customer is kept one to two windows; 0: repeats are not measured).",
    )
    max_repeat_customers: int = Field(
        2_000_000,
        ge=1,
        description="Customers remembered for repeat contacts at most; past it a new customer's "
        "contacts are counted as data quality repeat_over_cap (and not judged).",
    )
    max_open_contacts: int = Field(
        500_000,
        ge=1,
        description="Contacts kept open at most (until they end, or their channel's idle "
        "timeout); past it a new contact is not tracked and its events are counted as data "
        "quality contact_over_cap.",
    )
    max_open_cases: int = Field(
        2_000_000,
        ge=1,
        description="Cases kept at most (unresolved ones stay case_idle_timeout_seconds); past "
        "it a new case is not kept, counted as case_over_cap.",
    )
    max_open_callbacks: int = Field(
        200_000,
        ge=1,
        description="Callback requests kept at most until answered or due; past it, "
        "callback_over_cap.",
    )
    label_caps: LabelCaps = Field(
        default_factory=LabelCaps,
        description="Distinct values kept per label dimension (tenant, queue, flow, menu, "
        "component); later ones are folded into `other` (docs/configuration.md).",
    )
    contact_reasons: tuple[ReasonList, ...] = Field(
        (),
        max_length=1000,
        description="Contact reason (wrap-up) codes per tenant: a code outside its tenant's "
        "list is counted as `unknown` (data quality unknown_reason). A tenant without a list "
        "keeps its first label_caps.reasons_per_tenant codes, later ones fold into `other`.",
    )
    complaint_categories: tuple[ReasonList, ...] = Field(
        (),
        max_length=1000,
        description="Complaint categories per tenant, as contact_reasons: a category outside "
        "its tenant's list is `unknown` (data quality unknown_complaint_category).",
    )
    pause_reasons: tuple[ReasonList, ...] = Field(
        (),
        max_length=1000,
        description="Agents' pause reasons per tenant, as contact_reasons: a reason outside its "
        "tenant's list is `unknown` (data quality unknown_pause_reason).",
    )
    complaint_targets: tuple[ComplaintTarget, ...] = Field(
        DEFAULT_COMPLAINT_TARGETS,
        max_length=1000,
        description="Time to acknowledge and to close a complaint, per tenant, category and "
        "severity (the most specific match wins); the default: 1 day and 14 days, critical "
        "ones 4 h and 3 days. A complaint unclosed at its target is overdue.",
    )
    max_open_complaints: int = Field(
        200_000,
        ge=1,
        description="Complaints kept open at most; past it a new one is counted as data "
        "quality complaint_over_cap and not followed.",
    )
    complaint_reopen_window_seconds: float = Field(
        30 * DAY,
        ge=0,
        description="A closed complaint is remembered this long, so that a reopen counts on it.",
    )
    targets: tuple[TargetRule, ...] = Field(
        (),
        description="Ordered target rules per tenant / channel / queue / priority (most specific "
        "wins, then the earlier one): service-level threshold and goal, first-response and "
        "resolution targets, calendar. See docs/configuration.md.",
    )
    calendars: dict[str, Calendar] = Field(
        default_factory=dict, description="Business-hours calendars, by name."
    )
    callback_calendar: str | None = Field(
        None,
        description="KS S 1006's callback within 24 h is on the wall clock; naming a calendar "
        "here counts the 24 h (callback_deadline_seconds) in its business hours instead.",
    )

    @field_validator("contact_reasons", "complaint_categories", "pause_reasons")
    @classmethod
    def _one_list_per_tenant(cls, v: tuple[ReasonList, ...]) -> tuple[ReasonList, ...]:
        tenants = [r.tenant for r in v]
        twice = sorted({str(t) for t in tenants if tenants.count(t) > 1})
        if twice:
            raise ValueError(f"more than one list for tenant(s) {', '.join(twice)} "
                             "('None': the list without a tenant)")  # fmt: skip
        return v

    @field_validator("interval_minutes")
    @classmethod
    def _interval_choice(cls, v: int) -> int:
        if v not in INTERVAL_CHOICES:
            raise ValueError(f"must be one of {', '.join(map(str, INTERVAL_CHOICES))}")
        return v

    @model_validator(mode="after")
    def _calendars_named_exist(self) -> EngineConfig:
        named = [(f"targets[{i}].calendar", t.calendar) for i, t in enumerate(self.targets)]
        named.append(("callback_calendar", self.callback_calendar))
        for where, name in named:
            if name is not None and name not in self.calendars:
                close = difflib.get_close_matches(name, list(self.calendars), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                known = ", ".join(sorted(self.calendars)) or "none defined"
                raise ValueError(f"{where}: no calendar {name!r}{hint} (calendars: {known})")
        return self

    def idle_timeout(self, channel: str) -> float:
        return self.contact_idle_timeout_seconds.get(channel, DAY)

    def service_level(self, channel: str) -> float:
        return self.service_level_seconds.get(channel, 20.0)
