"""Static check of a declared IVR menu tree against KS S 1006 6.4.1 (checklist 나.(1)).

Catches before a change goes live what the runtime counters would only show afterwards. The
file format (YAML or JSON) is documented in docs/ivr-lint.md. Pure: the caller reads the file
and gives the date to judge the last review against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["agent", "back", "top", "repeat", "self_service", "transfer", "hangup"]
NoInput = Literal["repeat", "agent", "back", "top", "hangup"]


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # key: 1 is "1"

    key: str = Field(min_length=1, max_length=4)
    label: str | None = None
    action: Action | None = None
    menu: Menu | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Option:
        if (self.action is None) == (self.menu is None):
            raise ValueError(f"option {self.key!r} needs exactly one of 'action' or 'menu'")
        return self


class Menu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt_seconds: float | None = Field(None, ge=0)
    asks: list[str] = Field(default_factory=list, description="Information this menu asks for.")
    on_timeout: NoInput = "repeat"
    on_invalid: NoInput = "repeat"
    options: list[Option] = Field(min_length=1)


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str = Field(min_length=1)
    greeting_seconds: float = Field(ge=0)
    hours: str = Field("24/7", description="When the IVR answers.")
    backup: str | None = Field(None, description="The backup system that takes over.")
    reviewed: date | None = Field(None, description="When the flow was last reviewed.")
    menu: Menu


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Literal["violation", "warning"]
    ks: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class LintConfig:
    max_depth: int = 3
    greeting_target_seconds: float = 15.0
    review_days: int = 180


def lint(flow: Flow, config: LintConfig, today: date) -> list[Finding]:
    """Every finding, in a stable order (depth-first through the menus)."""
    out: list[Finding] = []

    def add(rule: str, severity: Literal["violation", "warning"], ks: str, path: str,
            message: str) -> None:  # fmt: skip
        out.append(Finding(rule, severity, ks, path, message))

    if flow.hours.replace(" ", "").lower() not in ("24/7", "24/7/365", "always"):
        add("hours", "violation", "6.4.1 1)", flow.flow,
            f"the IVR answers {flow.hours!r}, not 24 hours a day, 365 days a year")  # fmt: skip
    if flow.greeting_seconds > config.greeting_target_seconds:
        add("greeting_too_long", "violation", "6.4.1 2)", flow.flow,
            f"greeting of {flow.greeting_seconds:g} s is longer than the target of "
            f"{config.greeting_target_seconds:g} s")  # fmt: skip
    if flow.reviewed is None:
        add("review", "warning", "6.4.1 8)", flow.flow, "no date of the last review ('reviewed')")
    elif (today - flow.reviewed).days > config.review_days:
        add("review", "warning", "6.4.1 8)", flow.flow,
            f"last reviewed {flow.reviewed.isoformat()}, more than {config.review_days} days "
            f"before {today.isoformat()}")  # fmt: skip
    if not flow.backup:
        add("backup", "warning", "6.4.1 9)", flow.flow, "no backup system declared ('backup')")

    def walk(menu: Menu, level: int, trail: list[str], asked: dict[str, str]) -> None:
        # the flow, then the menus (a root menu named as its flow is not said twice)
        parts = [flow.flow, *trail, menu.id]
        path = " > ".join(p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1])
        if level > config.max_depth:
            add("depth", "violation", "6.4.1 2)", path,
                f"menu at level {level}; at most {config.max_depth} levels")  # fmt: skip
        actions = {o.action for o in menu.options if o.action}
        keys = [o.key for o in menu.options]
        for key in sorted({k for k in keys if keys.count(k) > 1}):
            add("duplicate_key", "violation", "6.4.1", path, f"key {key!r} is used twice")
        if "agent" not in actions:
            add("agent_option", "violation", "6.4.1 6)", path,
                "no option to reach an agent directly")  # fmt: skip
        if "repeat" not in actions:
            add("repeat_option", "violation", "6.4.1 5)", path, "no option to hear the menu again")
        if level > 1 and not actions & {"back", "top"}:
            add("back_option", "violation", "6.4.1 5)", path,
                "no option back to the previous or the first menu")  # fmt: skip
        for when, what in (("timeout", menu.on_timeout), ("invalid input", menu.on_invalid)):
            if what == "hangup":
                add("machine_disconnect", "violation", "6.4.1 7)", path,
                    f"on {when} the IVR hangs up on the customer")  # fmt: skip
        mine = dict(asked)
        for item in menu.asks:
            if item in mine:
                add("asked_twice", "violation", "6.4.1 4)", path,
                    f"asks for {item!r} again (already asked in {mine[item]})")  # fmt: skip
            else:
                mine[item] = menu.id
        for option in menu.options:
            if option.menu is not None:
                walk(option.menu, level + 1, [*trail, menu.id], mine)

    walk(flow.menu, 1, [], {})
    return out


MAX_FLOW_BYTES = 1 << 20
MAX_NESTING = 64  # menus inside menus (KS S 1006 allows 3 levels; 64 is far past any flow)


def parse(text: str, name: str) -> Flow:
    """A flow from YAML or JSON text (JSON is YAML, but is read as JSON for exact messages).

    Raises ValueError, whatever the text: YAML anchors and aliases are refused (an alias bomb
    of a few hundred bytes expands to gigabytes), so are tags that build objects, text over
    1 MiB and nesting deeper than :data:`MAX_NESTING`."""
    import orjson
    import yaml

    if len(text) > MAX_FLOW_BYTES:
        raise ValueError(f"a flow is at most {MAX_FLOW_BYTES} bytes")
    try:
        data: Any = orjson.loads(text) if name.endswith(".json") else _load_yaml(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"not a plain YAML document: {exc}") from None
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_NESTING} levels") from None
    _depth(data, 0)
    return Flow.model_validate(data)


def _load_yaml(text: str) -> Any:
    import yaml

    class NoAliases(yaml.SafeLoader):  # type: ignore[misc]
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.events.AliasEvent) or getattr(event, "anchor", None):
                raise yaml.YAMLError(f"anchors and aliases are not allowed ({event.start_mark})")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliases)


def _depth(data: Any, level: int) -> None:
    if level > MAX_NESTING:
        raise ValueError(f"nested deeper than {MAX_NESTING} levels")
    if isinstance(data, dict):
        for v in data.values():
            _depth(v, level + 1)
    elif isinstance(data, list):
        for v in data:
            _depth(v, level + 1)
