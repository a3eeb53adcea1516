"""Alert rules: what each watches, with documented defaults, configurable from one file.

The rules are built in (each is a kind of condition over the engine's observations); a rules
file (TOML) tunes or disables them by name. ``cc-monitor rules check FILE`` validates one.
Every rule has a runbook section in docs/runbooks.md.
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kpis.catalogue import require

Severity = Literal["info", "warning", "critical"]
MAX_FILE = 1 << 20

Labels = tuple[str, ...]
Results = dict[Labels, tuple[bool, float, tuple[str, ...]]]
"""Per group: whether the condition holds, the value, and the names of the group's labels."""
QUEUE_LABELS = ("tenant", "channel", "queue")
STATUS_LABELS = ("tenant", "component")


class Tick(Protocol):
    """What a rule reads at one evaluation tick (alerts.evaluator.AlertLogic provides it)."""

    def queue_view(self) -> Mapping[Labels, tuple[int, float]]:
        """Contacts waiting and the oldest wait, per queue."""
        ...

    def staff(self) -> Mapping[Labels, Mapping[str, int]] | None:
        """Agents per queue and state (queues with agent states); None while not all known."""
        ...

    def status(self) -> Mapping[Labels, float]:
        """The latest ``system.status`` per (tenant, component): 1 up, 0 down."""
        ...

    def windowed(self, name: str, held: bool) -> Results | None:
        """Rule ``name``'s sliding windows, slid by one interval and judged by the rule's
        :meth:`window_condition`; None when it has none and nothing is pending or firing."""
        ...

    def staffing_gap(self, name: str, rule: StaffingGapRule) -> Results | None: ...


MAX_SUMMARY = 500
# A summary names fields only ({value}, {tenant}, ...), optionally with a short numeric
# format: no attribute or index access, no conversion, no width (a template must not reach
# Python internals nor allocate without bound).
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_SPEC = re.compile(r"(,?(\.\d)?[fg%]?)")


def _safe_template(text: str) -> str:
    if len(text) > MAX_SUMMARY:
        raise ValueError(f"a summary is at most {MAX_SUMMARY} characters")
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"not a template: {exc} (write {{{{ and }}}} for braces)") from None
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if not _FIELD.fullmatch(field_name):
            raise ValueError(f"{{{field_name}}}: only named fields, such as {{value}}")
        if conversion is not None:
            raise ValueError(f"{{{field_name}!{conversion}}}: no conversions")
        if spec and field_name != "value":
            raise ValueError(f"{{{field_name}:{spec}}}: only {{value}} takes a format")
        if spec and not _SPEC.fullmatch(spec):
            raise ValueError(f"{{{field_name}:{spec}}}: formats are like .1f, .0%, ,.2f")
    try:
        text.format_map(_Sample())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the summary does not format: {exc}") from None
    return text


class _Sample(dict[str, Any]):
    """Values a summary is tried with: every field a number (labels format as text, which
    every allowed spec of a number also refuses, so a spec is checked on ``value``)."""

    def __missing__(self, key: str) -> Any:
        return 1.5


class BaseRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = True
    severity: Severity = "warning"
    for_seconds: float = Field(0.0, ge=0, description="The condition must hold this long.")
    keep_firing_seconds: float = Field(
        0.0,
        ge=0,
        description="A firing alert resolves only after its condition has been "
        "clear this long (against flapping).",
    )
    channels: tuple[str, ...] | None = Field(
        None, description="Only these channels (rules whose groups have a channel); all if unset."
    )
    summary: str = Field(description="Text of the alert; {labels} and {value} are filled in.")

    _summary_safe = field_validator("summary")(_safe_template)

    # --- how a rule of this kind is evaluated (alerts.evaluator.AlertLogic) -----------------

    def judge(self, name: str, tick: Tick, held: bool) -> Results | None:
        """This rule's condition per group at a tick (``held``: some group is pending or
        firing); None: nothing decided either way, no group changes state."""
        raise NotImplementedError

    def reads(self) -> tuple[tuple[str, int], ...]:
        """The engine series its windows sum: (series, 0 numerator or count / 1 denominator)."""
        return ()

    def groups(self) -> tuple[str, ...]:
        """The labels of its groups (an alert per group)."""
        return QUEUE_LABELS

    def takes_target(self) -> bool:
        """Whether its threshold is the group's queue target where one sets it."""
        return False

    def window_condition(
        self, s0: float, s1: float, recent: float, full: bool, limit: float | None
    ) -> tuple[bool, float] | None:
        """A windowed rule's condition and value for one group, from its window's sums (``s0``
        the count or numerator, ``s1`` the denominator, ``recent`` the recent part; ``full``:
        the window holds its whole length)."""
        return None

    def window(self, interval: float) -> tuple[int, int] | None:
        """A windowed rule's length in evaluation intervals and the recent part it keeps."""
        return None

    def staffing_window(self, interval: float) -> int | None:
        """A staffing rule's window of (queued, handled parts, handle seconds), in intervals."""
        return None

    def waiting_past(self, view: Mapping[Labels, tuple[int, float]]) -> Iterator[Labels]:
        """The queues of ``view`` whose oldest wait meets this rule's condition."""
        return iter(())

    def keeps(self, channel: str) -> bool:
        return self.channels is None or channel in self.channels


def _intervals(seconds: float, interval: float) -> int:
    return max(1, math.ceil(seconds / interval))


class _Windowed(BaseRule):
    """A rule over sliding windows of engine series, per group of ``by``."""

    by: tuple[str, ...]
    window_seconds: float = Field(gt=0)

    def judge(self, name: str, tick: Tick, held: bool) -> Results | None:
        return tick.windowed(name, held)

    def groups(self) -> tuple[str, ...]:
        return self.by

    def window(self, interval: float) -> tuple[int, int] | None:
        return _intervals(self.window_seconds, interval), 0


def _declared(names: Any) -> Any:
    """Series a rule reads must be declared in the series catalogue (kpis/catalogue.py)."""
    for name in (names,) if isinstance(names, str) else names:
        require(name)  # ValueError naming the nearest declared series
    return names


class CountRule(_Windowed):
    """Sum of an engine counter over a sliding window, per group, at or above a threshold."""

    kind: Literal["count"] = "count"
    series: str
    by: tuple[str, ...]

    _series_declared = field_validator("series")(_declared)
    threshold: float = Field(gt=0)

    def reads(self) -> tuple[tuple[str, int], ...]:
        return ((self.series, 0),)

    def window_condition(
        self, s0: float, s1: float, recent: float, full: bool, limit: float | None
    ) -> tuple[bool, float] | None:
        return s0 >= self.threshold, s0


class RatioRule(_Windowed):
    """numerator / denominator over a window, per group, above or below a threshold, once the
    denominator has at least ``min_volume``."""

    kind: Literal["ratio"] = "ratio"
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    by: tuple[str, ...]

    _series_declared = field_validator("numerator", "denominator")(_declared)
    threshold: float = Field(ge=0, le=1)
    direction: Literal["above", "below"]
    min_volume: float = Field(1, ge=1)
    threshold_target: Literal["service_level_goal"] | None = Field(
        None,
        description="Take the threshold from the group's queue target (engine.targets) where "
        "one sets it; ``threshold`` elsewhere. Needs by = tenant, channel, queue.",
    )

    @model_validator(mode="after")
    def _target_needs_the_queue(self) -> RatioRule:
        if self.threshold_target is not None and not {"tenant", "channel", "queue"} <= set(self.by):
            raise ValueError("threshold_target needs by to include tenant, channel and queue")
        return self

    def reads(self) -> tuple[tuple[str, int], ...]:
        return (*((n, 0) for n in self.numerator), *((d, 1) for d in self.denominator))

    def takes_target(self) -> bool:
        return self.threshold_target is not None

    def window_condition(
        self, s0: float, s1: float, recent: float, full: bool, limit: float | None
    ) -> tuple[bool, float] | None:
        """``limit``: the group's queue target, where ``threshold_target`` takes it from one."""
        if s1 < self.min_volume:
            return None
        r = s0 / s1
        at = self.threshold if limit is None else limit
        return (r >= at if self.direction == "above" else r < at), r


class OldestWaitRule(BaseRule):
    """The longest-waiting contact of a queue has waited at least ``threshold_seconds``."""

    kind: Literal["oldest_wait"] = "oldest_wait"
    threshold_seconds: float = Field(gt=0)

    def judge(self, name: str, tick: Tick, held: bool) -> Results | None:
        return {
            labels: (age >= self.threshold_seconds, age, QUEUE_LABELS)
            for labels, (_, age) in tick.queue_view().items()
            if self.keeps(labels[1])
        }

    def waiting_past(self, view: Mapping[Labels, tuple[int, float]]) -> Iterator[Labels]:
        for labels, (_, age) in view.items():
            if age >= self.threshold_seconds and self.keeps(labels[1]):
                yield labels


class ComponentDownRule(BaseRule):
    """A ``system.status`` component reported down; resolves when it is reported up."""

    kind: Literal["component_down"] = "component_down"

    def judge(self, name: str, tick: Tick, held: bool) -> Results | None:
        return {labels: (v == 0.0, v, STATUS_LABELS) for labels, v in tick.status().items()}

    def groups(self) -> tuple[str, ...]:
        return STATUS_LABELS


class SilenceRule(_Windowed):
    """A channel had no contacts for a window while its preceding windows averaged at least
    ``min_expected``: its usual traffic says it should not be silent."""

    kind: Literal["silence"] = "silence"
    series: str = "contacts"
    by: tuple[str, ...] = ("tenant", "channel")

    _series_declared = field_validator("series")(_declared)
    baseline_windows: int = Field(6, ge=1)
    min_expected: float = Field(gt=0)

    def reads(self) -> tuple[tuple[str, int], ...]:
        return ((self.series, 0),)

    def window(self, interval: float) -> tuple[int, int] | None:
        n = _intervals(self.window_seconds, interval)
        return n * (1 + self.baseline_windows), n

    def window_condition(
        self, s0: float, s1: float, recent: float, full: bool, limit: float | None
    ) -> tuple[bool, float] | None:
        """Judged once the window holds its baseline: silent now, busy before."""
        if not full:
            return None
        baseline = (s0 - recent) / self.baseline_windows
        return recent == 0 and baseline >= self.min_expected, baseline


class NoAgentsRule(BaseRule):
    """Contacts wait in a queue and none of the agents serving it is available or on a
    contact (all away, in after-contact work or logged out). Only where the source reports
    agent states (a queue without them is not measured)."""

    kind: Literal["no_agents"] = "no_agents"

    def judge(self, name: str, tick: Tick, held: bool) -> Results | None:
        staff = tick.staff()
        if staff is None:
            return None  # the agents are not all known: nothing decided either way
        out: Results = {}
        for labels, (n, _) in tick.queue_view().items():
            states = staff.get(labels)
            if states is None or not self.keeps(labels[1]):
                continue  # no agent states for this queue: not measured
            serving = states.get("available", 0) + states.get("busy", 0)
            out[labels] = (n > 0 and serving == 0, float(n), QUEUE_LABELS)
        return out


class StaffingGapRule(BaseRule):
    """The agents staffed on a queue (available, busy, after-contact work) fall short of the
    agents its recent load needs by at least ``threshold``, while contacts wait. Needed: Erlang
    C for the window's offered contacts and handle time, to the queue's service-level target
    (engine.targets; 80 % within its threshold where none is set)."""

    kind: Literal["staffing_gap"] = "staffing_gap"
    window_seconds: float = Field(gt=0)
    threshold: float = Field(gt=0, description="Agents short.")

    def judge(self, name: str, tick: Tick, held: bool) -> Results | None:
        return tick.staffing_gap(name, self)

    def staffing_window(self, interval: float) -> int | None:
        return _intervals(self.window_seconds, interval)


Rule = Annotated[
    CountRule
    | RatioRule
    | OldestWaitRule
    | ComponentDownRule
    | SilenceRule
    | NoAgentsRule
    | StaffingGapRule,
    Field(discriminator="kind"),
]

M = 60.0
REAL_TIME = ("voice", "video", "chat")  # queue-time rules make no sense on e-mail backlogs
DEFAULT_RULES: dict[str, Rule] = {
    "ivr_depth_exceeded": CountRule(
        series="ivr_depth_exceeded", by=("tenant", "flow", "menu"), window_seconds=15 * M,
        threshold=3, keep_firing_seconds=30 * M,
        summary="IVR menu {menu} of flow {flow} is deeper than allowed: {value:g} "
        "callers reached it in 15 min (KS S 1006 6.4.1: at most 3 levels)",
    ),
    "ivr_repeated_input": CountRule(
        series="ivr_repeated_input", by=("tenant", "flow", "menu"), window_seconds=15 * M,
        threshold=3, keep_firing_seconds=30 * M,
        summary="IVR menu {menu} of flow {flow} asked {value:g} callers for "
        "information they had already given (15 min)",
    ),
    "ivr_system_disconnects": CountRule(
        series="ivr_disconnected_before_handoff", by=("tenant", "flow"), window_seconds=15 * M,
        threshold=3, keep_firing_seconds=30 * M,
        summary="{value:g} callers of flow {flow} were disconnected by the system before "
        "reaching an agent in 15 min (KS S 1006 6.4.1)",
    ),
    "system_disconnects_spike": CountRule(
        series="disconnected_by_system", by=("tenant", "channel"), window_seconds=5 * M,
        threshold=5, severity="critical", keep_firing_seconds=10 * M,
        summary="{value:g} {channel} contacts were cut off by the system in 5 min",
    ),
    "ivr_agent_request_not_routed": CountRule(
        series="ivr_agent_request_not_routed", by=("tenant", "flow"), window_seconds=15 * M,
        threshold=3, keep_firing_seconds=30 * M,
        summary="{value:g} requests for an agent in flow {flow} were not routed "
        "(15 min)",
    ),
    "ivr_greeting_too_long": CountRule(
        series="ivr_greeting_too_long", by=("tenant", "flow"), window_seconds=60 * M,
        threshold=1, severity="info", keep_firing_seconds=120 * M,
        summary="The greeting of flow {flow} is longer than its "
        "target (calls with a long greeting in 60 min: {value:g})",
    ),
    "abandonment_high": RatioRule(
        numerator=("abandoned",), denominator=("answered", "abandoned"),
        by=("tenant", "channel", "queue"), window_seconds=15 * M, threshold=0.2,
        direction="above", min_volume=20, for_seconds=5 * M, keep_firing_seconds=10 * M,
        channels=REAL_TIME,
        summary="Abandonment {value:.0%} in queue {queue} ({channel}) over 15 min",
    ),
    "service_level_low": RatioRule(
        numerator=("answered_in_sl",), denominator=("answered", "abandoned"),
        by=("tenant", "channel", "queue"), window_seconds=30 * M, threshold=0.6,
        direction="below", min_volume=20, for_seconds=10 * M, keep_firing_seconds=15 * M,
        channels=REAL_TIME, threshold_target="service_level_goal",
        summary="Service level {value:.0%} in queue {queue} ({channel}) over 30 min, under target",
    ),
    "oldest_wait_high": OldestWaitRule(
        threshold_seconds=5 * M, keep_firing_seconds=5 * M, channels=REAL_TIME,
        summary="A contact has waited {value:.0f} s in queue {queue} "
        "({channel})",
    ),
    "component_down": ComponentDownRule(
        severity="critical", summary="{component} is down",
    ),
    "channel_silent": SilenceRule(
        window_seconds=10 * M, baseline_windows=6, min_expected=10, severity="critical",
        channels=("voice", "chat", "video"),
        summary="No {channel} contacts for 10 min; the hour before averaged {value:.0f} per "
        "10 min",
    ),
    "csat_low": RatioRule(
        numerator=("survey_csat_satisfied",), denominator=("survey_csat_answers",),
        by=("tenant", "channel", "queue"), window_seconds=240 * M, threshold=0.7,
        direction="below", min_volume=20, for_seconds=30 * M, keep_firing_seconds=60 * M,
        summary="CSAT {value:.0%} in queue {queue} ({channel}) over the answers of 4 h",
    ),
    "no_agents_available": NoAgentsRule(
        for_seconds=2 * M, keep_firing_seconds=5 * M, severity="critical", channels=REAL_TIME,
        summary="{value:g} contacts wait in queue {queue} ({channel}) and no agent serving it "
        "is available or on a contact",
    ),
    "staffing_gap": StaffingGapRule(
        window_seconds=30 * M, threshold=1, for_seconds=15 * M, keep_firing_seconds=10 * M,
        channels=REAL_TIME,
        summary="Queue {queue} ({channel}) is {value:g} agents short of what the last 30 min "
        "of contacts need, and contacts wait",
    ),
    "callbacks_breaching": CountRule(
        series="callbacks_breached", by=("tenant",), window_seconds=60 * M, threshold=3,
        keep_firing_seconds=60 * M,
        summary="{value:g} callbacks missed their deadline in the last hour",
    ),
    "complaint_overdue": CountRule(
        series="complaints_overdue", by=("tenant", "category"), window_seconds=60 * M,
        threshold=1, keep_firing_seconds=60 * M,
        summary="{value:g} complaints ({category}) passed their close target unclosed in the "
        "last hour",
    ),
    "complaints_spike": CountRule(
        series="complaints_opened", by=("tenant", "category"), window_seconds=60 * M,
        threshold=10, keep_firing_seconds=30 * M,
        summary="{value:g} complaints ({category}) opened in the last hour",
    ),
}  # fmt: skip


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    evaluation_interval_seconds: float = Field(
        60.0,
        ge=1,
        le=86400,
        description="Rules are evaluated at each multiple of this, in event time (1 s to a "
        "day: evaluation costs one pass over the rules per interval).",
    )
    runbook_url: str = Field(
        "docs/runbooks.md", description="Base of the runbook links; '#<rule>' is appended."
    )
    evidence_limit: int = Field(5, ge=0, description="Example contact ids kept per alert.")
    rules: dict[str, Rule] = Field(default_factory=lambda: dict(DEFAULT_RULES))

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """A file tunes the built-in rules by name; fields it leaves out keep their defaults."""
        if not isinstance(data, dict) or "rules" not in data:
            return data
        given = data["rules"]
        if not isinstance(given, dict):
            raise ValueError("'rules' is a table of rule names")
        merged: dict[str, Any] = {}
        for name, rule in DEFAULT_RULES.items():
            override = given.get(name, {})
            if not isinstance(override, dict):
                raise ValueError(f"rules.{name} is a table of settings")
            if "kind" in override and override["kind"] != rule.kind:
                raise ValueError(f"rules.{name} is a {rule.kind} rule")
            merged[name] = {**rule.model_dump(), **override}
        unknown = sorted(set(given) - set(DEFAULT_RULES))
        if unknown:
            raise ValueError(
                f"unknown rule(s): {', '.join(unknown)}; known: {', '.join(DEFAULT_RULES)}"
            )
        return {**data, "rules": merged}

    @classmethod
    def load(cls, path: Path) -> RulesConfig:
        """Raises OSError, ValueError (not UTF-8, not TOML, nested too deep) or
        ValidationError."""
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            raise ValueError(f"a rules file is at most {MAX_FILE} bytes")
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 at byte {exc.start}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"not TOML: {exc}") from None
        except RecursionError:
            raise ValueError("nested deeper than a rules file can be") from None
        return cls.model_validate(data)


def check(path: Path) -> list[str]:
    """Problems with a rules file, each a readable line (none when it is valid)."""
    try:
        RulesConfig.load(path)
    except OSError as exc:
        return [f"{path}: {exc.strerror or exc}"]
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"] if p not in ("count", "ratio", "silence",
                             "oldest_wait", "component_down", "no_agents",
                             "staffing_gap"))  # fmt: skip
            out.append(f"{path}: {where or 'file'}: {err['msg']}")
        return out
    except ValueError as exc:
        return [f"{path}: {exc}"]
    return []
