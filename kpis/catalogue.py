"""The series catalogue: every series the KPI rules emit, declared once.

The replay report (its sections and row order), the Prometheus exposition (names, types, help,
labels), the live read model (``/api/kpis``) and the alert rules (which labels a rule may group
by) all read this module; a rule emits a series by name and never knows which sink shows it.

A series belongs to a label *family*, which fixes its label names, the report section it goes
to and its rollups (the scopes a report row and an ``/api/kpis`` row sum over). A *ratio* is
built from counts of one family. Data-quality counts (``dq_<kind>``) are open-ended by kind and
go to one metric with a ``kind`` label.

Adding a series: one :class:`Series` entry here, the rule that emits it, a test
(docs/architecture.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from kpis.interfaces import Labels

ALL = "*"
"""The label value of a rollup over every value of that label."""
NO_LABEL = "-"
"""The label value when the event named none (no tenant, no queue)."""
DQ_PREFIX = "dq_"

Kind = Literal["count", "duration", "gauge"]


def kpi_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, channel, queue): all, per channel, per channel and queue, per tenant
    (and tenant + channel, tenant + channel + queue) when the series has a tenant."""
    tenant, channel, queue = labels
    yield (ALL, ALL, ALL)
    yield (ALL, channel, ALL)
    yield (ALL, channel, queue)
    if tenant != NO_LABEL:
        yield (tenant, ALL, ALL)
        yield (tenant, channel, ALL)
        yield (tenant, channel, queue)


def ivr_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, channel, flow, menu): all, per flow, per flow and menu."""
    _tenant, _channel, flow, menu = labels
    yield (ALL, ALL, ALL, ALL)
    yield (ALL, ALL, flow, ALL)
    if menu != NO_LABEL:
        yield (ALL, ALL, flow, menu)


def system_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, component): per component, and per tenant and component."""
    tenant, component = labels
    yield (ALL, component)
    if tenant != NO_LABEL:
        yield (tenant, component)


def agent_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, agent): per agent, and per tenant and agent."""
    tenant, agent = labels
    yield (ALL, agent)
    if tenant != NO_LABEL:
        yield (tenant, agent)


def reason_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, channel, queue, reason): the KPI scopes, each per reason (a contact
    with two reasons is in two rows, so there is no row over every reason)."""
    tenant, channel, queue, reason = labels
    for scope in kpi_scopes((tenant, channel, queue)):
        yield (*scope, reason)


@dataclass(frozen=True, slots=True)
class Family:
    """Series with the same labels, report section and rollups."""

    name: str
    labels: tuple[str, ...]
    section: str  # the replay report's key for this family's rows
    scopes: Callable[[Labels], Iterator[Labels]] = field(compare=False)
    exported: bool = True  # False: report only, never a Prometheus label (agent ids)


KPI = Family("kpi", ("tenant", "channel", "queue"), "kpis", kpi_scopes)
IVR = Family("ivr", ("tenant", "channel", "flow", "menu"), "ivr", ivr_scopes)
SYSTEM = Family("system", ("tenant", "component"), "system", system_scopes)
AGENT = Family("agent", ("tenant", "agent"), "agents", agent_scopes, exported=False)
"""Per pseudonymous agent: in the report for supervisors and auditors, never in /metrics."""


def complaint_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, channel of receipt, category): all, per channel, per category, per
    channel and category, and the same per tenant when the complaint has one."""
    tenant, channel, category = labels
    for t in (ALL, tenant) if tenant != NO_LABEL else (ALL,):
        yield (t, ALL, ALL)
        yield (t, channel, ALL)
        yield (t, ALL, category)
        yield (t, channel, category)


COMPLAINT = Family("complaint", ("tenant", "channel", "category"), "complaints", complaint_scopes)
"""Complaints per channel of receipt and category (kpis.rules.complaints)."""


def pause_scopes(labels: Labels) -> Iterator[Labels]:
    """Rollups of (tenant, agent, pause reason): per agent and reason, per reason over all
    agents, and the same per tenant."""
    tenant, agent, reason = labels
    yield (ALL, agent, reason)
    yield (ALL, ALL, reason)
    if tenant != NO_LABEL:
        yield (tenant, agent, reason)
        yield (tenant, ALL, reason)


AGENT_PAUSE = Family("agent_pause", ("tenant", "agent", "reason"), "agent_pauses", pause_scopes,
                     exported=False)  # fmt: skip
"""Agents' time per pause reason (report only: an agent id is never a Prometheus label)."""
REASON = Family("reason", ("tenant", "channel", "queue", "reason"), "reasons", reason_scopes)
"""Per contact reason (wrap-up code), bounded per tenant (kpis.rules.reasons)."""
FAMILIES = (KPI, IVR, SYSTEM, AGENT, REASON, COMPLAINT, AGENT_PAUSE)


@dataclass(frozen=True, slots=True)
class Series:
    """One series the rules emit (``sink.count`` / ``observe`` / ``gauge`` with this name)."""

    name: str
    kind: Kind
    family: Family
    help: str
    unit: str = ""  # "seconds" for durations; counts and gauges are plain numbers
    metric: str = ""  # the exported name without the cc_ prefix (default: the series name)
    const_labels: tuple[tuple[str, str], ...] = ()  # extra labels on that exported metric
    metric_help: str = ""  # the exported metric's help, when several series share it
    report: bool = True  # a column of the report's rows (gauges: their peak)
    live: bool = False  # a column of /api/kpis rows

    @property
    def exported(self) -> str:
        return "cc_" + (self.metric or self.name)

    @property
    def exported_help(self) -> str:
        return self.metric_help or self.help


@dataclass(frozen=True, slots=True)
class Ratio:
    """``sum(numerator) / sum(denominator)`` of one family's counts, per row (None if 0)."""

    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    family: Family
    help: str
    minus: tuple[str, ...] = ()  # subtracted from the numerator (NPS: promoters - detractors)


def _count(name: str, family: Family, help: str, *, live: bool = False) -> Series:
    return Series(name, "count", family, help, live=live)


def _duration(name: str, family: Family, help: str, *, live: bool = False) -> Series:
    return Series(name, "duration", family, help, "seconds", live=live)


def _breach(name: str, rule: str, help: str) -> Series:
    return Series(
        name, "count", IVR, help, metric="ivr_rule_breaches", const_labels=(("rule", rule),),
        metric_help="KS S 1006 IVR rule breaches, by rule.",
    )  # fmt: skip


# The order of each family's counts and durations is the order of the report's columns.
SERIES: tuple[Series, ...] = (
    # --- contacts and queues (kpis.rules.contacts) ---
    _count("contacts", KPI, "Contacts started.", live=True),
    _count("cases_opened", KPI, "Cases opened (first contact about them).", live=True),
    _count("queued", KPI, "Contacts offered to a queue.", live=True),
    _count("answered", KPI, "Queued contacts answered by an agent.", live=True),
    _count(
        "answered_in_sl",
        KPI,
        "Queued contacts answered within the channel's service-level threshold.",
        live=True,
    ),
    _count("abandoned", KPI, "Queued contacts abandoned by the customer.", live=True),
    _count(
        "abandoned_short",
        KPI,
        "Abandoned within short_abandon_seconds of queue entry (also counted as abandoned).",
        live=True,
    ),
    _count(
        "queue_callback_requests",
        KPI,
        "Queued contacts that left the queue by requesting a callback (their own outcome; "
        "also counted as abandoned only with engine.callback_request_abandons).",
        live=True,
    ),
    _count(
        "dropped",
        KPI,
        "Queued contacts ended by the system or an agent before an answer.",
        live=True,
    ),
    _count("disconnected_by_system", KPI, "Inbound contacts ended by the system.", live=True),
    _count("left_in_ivr", KPI, "Contacts whose customer hung up in the IVR.", live=True),
    _count("handled", KPI, "Contacts that reached an agent.", live=True),
    _count("transferred", KPI, "Transfers of a contact to another agent or queue.", live=True),
    _count("offers", KPI, "Offers of a contact to an agent (agent.offered).", live=True),
    _count(
        "offers_missed",
        KPI,
        "Offers the agent let ring: the contact was next offered to, or taken by, another agent.",
        live=True,
    ),
    _count("hung_up_first", KPI, "Calls (voice, video) the agent ended while on them.", live=True),
    _count("hung_up_on_hold", KPI, "Contacts the customer ended while on hold.", live=True),
    _count(
        "contacts_identified",
        KPI,
        "Inbound contacts with a customer id, when they end (the repeat rate's denominator; "
        "replays only, kpis.rules.repeats).",
    ),
    _count(
        "contacts_repeated",
        KPI,
        "Inbound contacts whose customer came back within engine.repeat_window_seconds of "
        "their start (counted on them, when the repeat starts; replays only).",
    ),
    _count(
        "complaints",
        KPI,
        "Complaints received on the contacts of the queue (complaints per contact beside).",
        live=True,
    ),
    _count(
        "contacts_coded",
        KPI,
        "Contacts with at least one reason code (a reason's share = its contacts / these).",
        live=True,
    ),
    # --- cases (kpis.rules.cases) ---
    _count("resolved", KPI, "Cases resolved (final, after their reopen window).", live=True),
    _count("resolved_one_touch", KPI, "Cases resolved in one agent interaction.", live=True),
    _count("cases_reopened", KPI, "Cases reopened within their reopen window.", live=True),
    _count(
        "cases_reopened_late",
        KPI,
        "Cases reopened after their reopen window (a new episode).",
        live=True,
    ),
    _count("cases_unresolved", KPI, "Cases closed unresolved after going idle.", live=True),
    _count(
        "cases_followed_up",
        KPI,
        "Unresolved cases followed up by an outbound contact (KS S 1006 나.(4) 2); once a case).",
        live=True,
    ),
    _count(
        "cases_unresolved_no_follow_up",
        KPI,
        "Cases closed unresolved after going idle that no outbound contact followed up.",
        live=True,
    ),
    _count(
        "cases_unresolved_uncoded",
        KPI,
        "Cases closed unresolved whose contacts carried no reason code (no cause to analyse).",
        live=True,
    ),
    _count("cases_open_at_end", KPI, "Cases still open at the end of a replay.", live=True),
    _count(
        "contacts_orphaned", KPI, "Contacts closed by the idle timeout, never ended.", live=True
    ),
    _count(
        "queued_orphaned",
        KPI,
        "Queued contacts closed by the idle timeout while still waiting (never answered).",
        live=True,
    ),
    _count("contacts_open_at_end", KPI, "Contacts still open at the end of a replay.", live=True),
    _count(
        "handle_incomplete",
        KPI,
        "Agent parts of a contact that never got their wrap-up.",
        live=True,
    ),
    # --- targets (kpis.targets; counted only where a target rule sets one) ---
    _count(
        "first_response_targeted",
        KPI,
        "Cases with a first-response target (their first response was measured against it).",
        live=True,
    ),
    _count("first_response_met", KPI, "Cases whose first response met its target.", live=True),
    _count("resolution_targeted", KPI, "Resolved cases with a resolution target.", live=True),
    _count("resolution_met", KPI, "Resolved cases that met their resolution target.", live=True),
    # --- callbacks (kpis.rules.callbacks) ---
    _count("callbacks_requested", KPI, "Callback requests.", live=True),
    _count(
        "callbacks_compliant",
        KPI,
        "Callback requests met within 24 h or at the reserved time.",
        live=True,
    ),
    _count("callbacks_breached", KPI, "Callback requests whose deadline passed unmet.", live=True),
    _count("callbacks_cancelled", KPI, "Callback requests cancelled.", live=True),
    _count("callbacks_pending", KPI, "Callback requests open at the end of a replay.", live=True),
    _count("callback_attempts", KPI, "Callback attempts.", live=True),
    # --- customer surveys (kpis.rules.surveys), on the contact's labels and day ---
    _count(
        "surveys_answered",
        KPI,
        "Contacts with at least one survey answer (response rate = surveys_answered / handled).",
        live=True,
    ),
    _count("survey_csat_answers", KPI, "CSAT answers.", live=True),
    _count(
        "survey_csat_satisfied", KPI, "CSAT answers in the top two boxes of the scale.", live=True
    ),
    _count(
        "survey_csat_one_touch_answers", KPI, "CSAT answers about one-touch contacts.", live=True
    ),
    _count(
        "survey_csat_one_touch_satisfied",
        KPI,
        "CSAT answers about one-touch contacts in the top two boxes.",
        live=True,
    ),
    _count(
        "survey_csat_multi_touch_answers",
        KPI,
        "CSAT answers about multi-touch contacts.",
        live=True,
    ),
    _count(
        "survey_csat_multi_touch_satisfied",
        KPI,
        "CSAT answers about multi-touch contacts in the top two boxes.",
        live=True,
    ),
    _count("survey_ces_answers", KPI, "CES answers.", live=True),
    _count(
        "survey_ces_easy",
        KPI,
        "CES answers agreeing that the company made it easy (above the scale's midpoint).",
        live=True,
    ),
    _count("survey_nps_answers", KPI, "NPS answers.", live=True),
    _count("survey_nps_promoters", KPI, "NPS answers of 9 or 10.", live=True),
    _count("survey_nps_detractors", KPI, "NPS answers of 0 to 6.", live=True),
    # --- durations of the KPI family ---
    _duration(
        "first_response_seconds",
        KPI,
        "First response time per case (from the first request for a human).",
        live=True,
    ),
    _duration(
        "first_response_direct_seconds",
        KPI,
        "First response time of the cases whose first response was not a callback (answered "
        "or written to on the customer's own contact).",
        live=True,
    ),
    _duration("resolution_seconds", KPI, "Total resolution time per case.", live=True),
    _duration(
        "first_response_business_seconds",
        KPI,
        "First response time in business hours (cases whose target names a calendar).",
        live=True,
    ),
    _duration(
        "resolution_business_seconds",
        KPI,
        "Resolution time in business hours (cases whose target names a calendar).",
        live=True,
    ),
    _duration(
        "handle_seconds",
        KPI,
        "Handle time (talk + hold + after-contact work) per agent segment.",
        live=True,
    ),
    _duration(
        "segment_handle_seconds",
        KPI,
        "Handle time per agent segment in the queue that segment served: a transferring "
        "agent's part stays in its own queue (handle_seconds counts it where the contact went).",
        live=True,
    ),
    _duration("talk_seconds", KPI, "Talk time per agent segment.", live=True),
    _duration("hold_seconds", KPI, "Hold time per agent segment.", live=True),
    _duration("acw_seconds", KPI, "After-contact work per agent segment.", live=True),
    _duration("answer_seconds", KPI, "Speed of answer (queue entry to hand-off).", live=True),
    _duration("abandon_wait_seconds", KPI, "Wait in queue before an abandonment.", live=True),
    _duration(
        "callback_delay_seconds",
        KPI,
        "From a callback request to the call that reached the customer.",
        live=True,
    ),
    _duration("ivr_seconds", KPI, "Time in the IVR, per channel and queue.", live=True),
    Series(
        "survey_ces_score",
        "duration",
        KPI,
        "CES scores (a distribution of points, not seconds: mean effort = sum / count).",
        live=True,
    ),
    Series(
        "waiting",
        "gauge",
        KPI,
        "Contacts waiting in queue.",
        metric="contacts_waiting",
    ),
    # --- agents per queue (kpis.rules.agents; an agent in every queue it serves) ---
    Series(
        "agent_staffed_seconds",
        "duration",
        KPI,
        "Agents' available, busy and after-work time, for each queue they serve (live: from the "
        "agent engines, docs/live.md).",
        "seconds",
    ),
    *(
        Series(
            "agents_" + state,
            "gauge",
            KPI,
            f"Agents {text} now, per queue they serve.",
            metric="agents",
            const_labels=(("state", state),),
            metric_help="Agents per queue they serve, by state.",
        )
        for state, text in (
            ("available", "available"),
            ("busy", "on a contact"),
            ("after_work", "in after-contact work"),
            ("away", "away"),
        )
    ),
    # --- IVR (kpis.rules.ivr) ---
    _count("ivr_entries", IVR, "Contacts that entered an IVR flow."),
    _count("ivr_self_served", IVR, "IVR sessions that ended self-served."),
    _count("ivr_hang_up", IVR, "IVR sessions the customer hung up."),
    _count("ivr_errors", IVR, "IVR sessions that ended in an error."),
    _count("ivr_menu_visits", IVR, "IVR menu visits."),
    _count("ivr_inputs", IVR, "Information the IVR asked for (ivr.input)."),
    _count("ivr_agent_requests", IVR, "IVR sessions in which the customer asked for an agent."),
    _count("ivr_greetings", IVR, "IVR greetings whose length the source reported."),
    _breach(
        "ivr_depth_exceeded",
        "depth_exceeded",
        "KS S 1006 breaches: a menu deeper than the limit, per contact and menu.",
    ),
    _breach(
        "ivr_repeated_input",
        "repeated_input",
        "KS S 1006 breaches: the IVR asked for the same information twice.",
    ),
    _breach(
        "ivr_disconnected_before_handoff",
        "disconnected_before_handoff",
        "KS S 1006 breaches: the system ended a contact before an agent hand-off.",
    ),
    _breach(
        "ivr_agent_request_not_routed",
        "agent_request_not_routed",
        "KS S 1006 breaches: a request for an agent was not routed to a queue.",
    ),
    _breach(
        "ivr_greeting_too_long",
        "greeting_too_long",
        "KS S 1006 breaches: a greeting longer than the target.",
    ),
    _duration("ivr_time_seconds", IVR, "Time in the IVR per flow."),
    # --- per agent (report only; kpis.rules.contacts, kpis.rules.surveys) ---
    _count("agent_handled", AGENT, "Contacts the agent took (a part of a contact each)."),
    _count("agent_transferred", AGENT, "Contacts the agent transferred."),
    _count("agent_offers", AGENT, "Contacts offered to the agent."),
    _count("agent_offers_missed", AGENT, "Offers the agent let ring (missed)."),
    _count("agent_hung_up_first", AGENT, "Calls the agent ended while on them."),
    _count("agent_hung_up_on_hold", AGENT, "The agent's contacts the customer ended on hold."),
    _duration("agent_handle_seconds", AGENT, "Handle time of the agent's parts."),
    _duration("agent_talk_seconds", AGENT, "Talk time of the agent's parts."),
    _duration("agent_hold_seconds", AGENT, "Hold time of the agent's parts."),
    _duration("agent_acw_seconds", AGENT, "After-contact work of the agent's parts."),
    _duration("agent_available_seconds", AGENT, "Time available (kpis.rules.agents)."),
    _duration("agent_busy_seconds", AGENT, "Time on contacts."),
    _duration("agent_after_work_seconds", AGENT, "Time in after-contact work."),
    _duration("agent_away_seconds", AGENT, "Time away (paused, on a break)."),
    _duration(
        "agent_pause_seconds",
        AGENT_PAUSE,
        "Time away per pause reason (agent.state away with a reason; kpis.rules.agents).",
    ),
    _count("agent_csat_answers", AGENT, "CSAT answers about the agent's contacts."),
    _count("agent_csat_satisfied", AGENT, "CSAT answers in the top two boxes, per agent."),
    _count("agent_ces_answers", AGENT, "CES answers about the agent's contacts."),
    _count("agent_ces_easy", AGENT, "CES answers agreeing it was easy, per agent."),
    _count("agent_nps_answers", AGENT, "NPS answers about the agent's contacts."),
    _count("agent_nps_promoters", AGENT, "NPS answers of 9 or 10, per agent."),
    _count("agent_nps_detractors", AGENT, "NPS answers of 0 to 6, per agent."),
    # --- contact reasons (kpis.rules.reasons), per reason code ---
    _count(
        "reason_contacts",
        REASON,
        "Contacts coded with the reason (a contact with several reasons counts in each).",
        live=True,
    ),
    _count("reason_resolved", REASON, "Cases resolved whose contacts had the reason.", live=True),
    _count(
        "reason_resolved_one_touch",
        REASON,
        "Cases resolved in one agent interaction whose contacts had the reason.",
        live=True,
    ),
    _count(
        "reason_cases_unresolved",
        REASON,
        "Cases closed unresolved whose contacts had the reason (KS S 1006 나.(4) 3)).",
        live=True,
    ),
    _count(
        "reason_repeated",
        REASON,
        "Contacts with the reason whose customer came back within the repeat window "
        "(replays only).",
    ),
    _count(
        "reason_cases_open_at_end",
        REASON,
        "Cases still unresolved at the end of a replay whose contacts had the reason.",
    ),
    _duration(
        "reason_handle_seconds",
        REASON,
        "Handle time of a contact with the reason (all its agent parts), once it is done.",
        live=True,
    ),
    # --- complaints (kpis.rules.complaints), per channel of receipt and category ---
    _count(
        "complaints_opened", COMPLAINT, "Complaints opened (each under its unique id).", live=True
    ),
    _count(
        "complaints_acknowledged",
        COMPLAINT,
        "Complaints acknowledged (their first update, or their close).",
        live=True,
    ),
    _count(
        "complaints_ack_targeted", COMPLAINT, "Acknowledged complaints with a target.", live=True
    ),
    _count(
        "complaints_ack_in_target", COMPLAINT, "Complaints acknowledged within target.", live=True
    ),
    _count(
        "complaints_ack_overdue",
        COMPLAINT,
        "Complaints whose time to acknowledge passed without an acknowledgement.",
        live=True,
    ),
    _count("complaints_escalated", COMPLAINT, "Complaints escalated (once each).", live=True),
    _count(
        "complaints_compensated", COMPLAINT, "Complaints compensated (an amount class).", live=True
    ),
    _count("complaints_closed", COMPLAINT, "Complaints closed, with an outcome.", live=True),
    _count(
        "complaints_close_targeted", COMPLAINT, "Closed complaints with a close target.", live=True
    ),
    _count("complaints_closed_in_target", COMPLAINT, "Complaints closed within target.", live=True),
    _count("complaints_upheld", COMPLAINT, "Complaints closed upheld or partly upheld.", live=True),
    _count(
        "complaints_overdue",
        COMPLAINT,
        "Complaints still open when their close target passed (the alert complaint_overdue).",
        live=True,
    ),
    _count("complaints_reopened", COMPLAINT, "Closed complaints reopened.", live=True),
    _count(
        "complaints_without_remedy",
        COMPLAINT,
        "Complaints opened without the remedy the customer asks for (KS S 1006 다.(1) 3)).",
    ),
    _count(
        "complaints_unrated",
        COMPLAINT,
        "Complaints opened without a severity (not evaluated by criteria, 다.(1) 4)).",
    ),
    _count("complaints_open_at_end", COMPLAINT, "Complaints still open at the end of a replay."),
    _duration(
        "complaint_ack_seconds",
        COMPLAINT,
        "Time to acknowledge a complaint (calendar time).",
        live=True,
    ),
    _duration(
        "complaint_close_seconds",
        COMPLAINT,
        "Time to close a complaint (calendar time).",
        live=True,
    ),
    Series(
        "complaints_open",
        "gauge",
        COMPLAINT,
        "Complaints open now.",
        report=False,
    ),
    # --- platform (kpis.rules.platform) ---
    _count("system_reports", SYSTEM, "Status reports received from a component."),
    _count("system_down", SYSTEM, "Components reported down."),
    _duration("system_downtime_seconds", SYSTEM, "Downtime of a component, per outage."),
    Series(
        "system_status",
        "gauge",
        SYSTEM,
        "Component status: 1 up, 0.5 degraded, 0 down.",
        report=False,
    ),
)

RATIOS: tuple[Ratio, ...] = (
    Ratio(
        "service_level",
        ("answered_in_sl",),
        ("answered", "abandoned"),
        KPI,
        "Answered within the threshold over answered plus abandoned.",
    ),
    Ratio(
        "abandonment_rate",
        ("abandoned",),
        ("answered", "abandoned"),
        KPI,
        "Abandoned over answered plus abandoned.",
    ),
    Ratio(
        "first_response_sla",
        ("first_response_met",),
        ("first_response_targeted",),
        KPI,
        "Share of cases whose first response met its target.",
    ),
    Ratio(
        "resolution_sla",
        ("resolution_met",),
        ("resolution_targeted",),
        KPI,
        "Share of resolved cases that met their resolution target.",
    ),
    Ratio("one_touch_rate", ("resolved_one_touch",), ("resolved",), KPI, "One-touch resolution."),
    Ratio(
        "callback_compliance",
        ("callbacks_compliant",),
        ("callbacks_compliant", "callbacks_breached"),
        KPI,
        "Callbacks met over callbacks due.",
    ),
    Ratio(
        "repeat_rate",
        ("contacts_repeated",),
        ("contacts_identified",),
        KPI,
        "Share of identified inbound contacts whose customer came back within the window.",
    ),
    Ratio("offer_miss_rate", ("offers_missed",), ("offers",), KPI, "Missed offers over offers."),
    Ratio(
        "agent_offer_miss_rate",
        ("agent_offers_missed",),
        ("agent_offers",),
        AGENT,
        "Missed offers over offers.",
    ),
    Ratio("transfer_rate", ("transferred",), ("handled",), KPI, "Transfers per handled contact."),
    Ratio(
        "csat",
        ("survey_csat_satisfied",),
        ("survey_csat_answers",),
        KPI,
        "CSAT: share of answers in the top two boxes.",
    ),
    Ratio(
        "csat_one_touch",
        ("survey_csat_one_touch_satisfied",),
        ("survey_csat_one_touch_answers",),
        KPI,
        "CSAT of one-touch contacts.",
    ),
    Ratio(
        "csat_multi_touch",
        ("survey_csat_multi_touch_satisfied",),
        ("survey_csat_multi_touch_answers",),
        KPI,
        "CSAT of multi-touch contacts.",
    ),
    Ratio(
        "ces_easy",
        ("survey_ces_easy",),
        ("survey_ces_answers",),
        KPI,
        "CES: share of customers who agree the company made it easy (the CX report's row).",
    ),
    Ratio(
        "nps",
        ("survey_nps_promoters",),
        ("survey_nps_answers",),
        KPI,
        "NPS as a fraction: (promoters - detractors) / answers (x100 for points).",
        minus=("survey_nps_detractors",),
    ),
    Ratio(
        "survey_response_rate",
        ("surveys_answered",),
        ("handled",),
        KPI,
        "Contacts with a survey answer per contact that reached an agent.",
    ),
    Ratio("agent_csat", ("agent_csat_satisfied",), ("agent_csat_answers",), AGENT, "CSAT."),
    Ratio("agent_ces_easy", ("agent_ces_easy",), ("agent_ces_answers",), AGENT, "CES easy."),
    Ratio(
        "agent_nps",
        ("agent_nps_promoters",),
        ("agent_nps_answers",),
        AGENT,
        "NPS as a fraction.",
        minus=("agent_nps_detractors",),
    ),
    Ratio("containment", ("ivr_self_served",), ("ivr_entries",), IVR, "IVR self-service."),
    Ratio(
        "complaints_per_contact",
        ("complaints",),
        ("contacts",),
        KPI,
        "Complaints per contact (x1000: per 1,000 contacts).",
    ),
    Ratio(
        "complaint_close_in_target_rate",
        ("complaints_closed_in_target",),
        ("complaints_close_targeted",),
        COMPLAINT,
        "Share of closed complaints closed within their target.",
    ),
    Ratio(
        "complaint_ack_in_target_rate",
        ("complaints_ack_in_target",),
        ("complaints_ack_targeted",),
        COMPLAINT,
        "Share of acknowledged complaints acknowledged within their target.",
    ),
    Ratio(
        "reason_repeat_rate",
        ("reason_repeated",),
        ("reason_contacts",),
        REASON,
        "Share of the contacts with the reason whose customer came back within the window.",
    ),
    Ratio(
        "reason_one_touch_rate",
        ("reason_resolved_one_touch",),
        ("reason_resolved",),
        REASON,
        "One-touch resolution of the cases with the reason.",
    ),
)


@dataclass(frozen=True, slots=True)
class SumRatio:
    """``sum(numerator durations) / sum(denominator durations)`` per report row (None if 0)."""

    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    family: Family
    help: str


SUM_RATIOS: tuple[SumRatio, ...] = (
    SumRatio(
        "occupancy",
        ("handle_seconds",),
        ("agent_staffed_seconds",),
        KPI,
        "Handle time over staffed time (None where agent states are not measured).",
    ),
    SumRatio(
        "agent_occupancy",
        ("agent_busy_seconds", "agent_after_work_seconds"),
        ("agent_available_seconds", "agent_busy_seconds", "agent_after_work_seconds"),
        AGENT,
        "Busy and after-contact work over staffed time.",
    ),
    SumRatio(
        "agent_utilisation",
        ("agent_busy_seconds", "agent_after_work_seconds"),
        (
            "agent_available_seconds",
            "agent_busy_seconds",
            "agent_after_work_seconds",
            "agent_away_seconds",
        ),
        AGENT,
        "Busy and after-contact work over logged-in time (breaks and pauses included).",
    ),
)

DATA_QUALITY = Series(
    "dq_",
    "count",
    KPI,
    "Events that referred to something never seen, by kind.",
    metric="data_quality_issues",
    report=False,
)
"""The one declaration of every ``dq_<kind>`` count (exported with ``kind=<kind>``)."""

BY_NAME: Mapping[str, Series] = {s.name: s for s in SERIES}


def lookup(name: str) -> Series | None:
    """The declaration of an emitted series name (``dq_*`` included), or None."""
    found = BY_NAME.get(name)
    if found is None and name.startswith(DQ_PREFIX):
        return DATA_QUALITY
    return found


def require(name: str) -> Series:
    """:func:`lookup`, or a ``ValueError`` naming the nearest declared series."""
    found = lookup(name)
    if found is None:
        near = difflib.get_close_matches(name, list(BY_NAME), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"unknown series {name!r}{hint}; see kpis/catalogue.py")
    return found


def label_names(name: str) -> tuple[str, ...]:
    """The names of a series' label values (see :data:`kpis.interfaces.Labels`)."""
    return require(name).family.labels


def names(family: Family, kind: Kind, *, live: bool | None = None) -> tuple[str, ...]:
    """The series of ``family`` of ``kind`` shown in the report (or, ``live=True``, the ones
    ``/api/kpis`` shows), in catalogue order."""
    return tuple(
        s.name
        for s in SERIES
        if s.family is family and s.kind == kind and s.report and (live is None or s.live == live)
    )


def ratios(family: Family) -> tuple[Ratio, ...]:
    found = _RATIOS_OF.get(family.name)
    if found is None:
        found = _RATIOS_OF[family.name] = tuple(r for r in RATIOS if r.family is family)
    return found


_RATIOS_OF: dict[str, tuple[Ratio, ...]] = {}


def ratio_value(num: float, den: float) -> float | None:
    """A ratio as reported (rounded to 1e-6; None without a denominator)."""
    return round(num / den, 6) if den else None


def ratio_values(family: Family, counts: Mapping[str, float]) -> dict[str, float | None]:
    """Every ratio of ``family`` from one row's counts: the one formula the report and the
    read model share."""
    out: dict[str, float | None] = {}
    get = counts.get
    for r in ratios(family):
        out[r.name] = ratio_value(
            sum([get(n, 0) for n in r.numerator]) - sum([get(n, 0) for n in r.minus]),
            sum([get(n, 0) for n in r.denominator]),
        )
    return out


def _check() -> None:
    """Declarations that cannot be right fail at import (a test imports this module)."""
    seen: set[str] = set()
    for s in SERIES:
        if s.name in seen:
            raise AssertionError(f"series {s.name} declared twice")
        seen.add(s.name)
        if s.kind == "duration" and not s.name.endswith(("_seconds", "_score")):
            raise AssertionError(f"distribution {s.name} must end in _seconds or _score")
    for r in RATIOS:
        for n in (*r.numerator, *r.denominator, *r.minus):
            part = BY_NAME.get(n)
            if part is None or part.kind != "count" or part.family is not r.family:
                raise AssertionError(f"ratio {r.name}: {n} is not a count of {r.family.name}")


_check()
