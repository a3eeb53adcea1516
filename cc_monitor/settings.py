"""Application settings: defaults < TOML file (``--config``) < environment (``CC_MONITOR_*``).

Nested values use ``__`` in environment names, e.g.
``CC_MONITOR_ENGINE__ALLOWED_LATENESS_SECONDS=120``.
"""

from __future__ import annotations

import difflib
import os
import secrets
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from alerts.rules import RulesConfig
from kpis.config import EngineConfig
from kpis.targets import known_zone
from streams.inputs.privacy import Pseudonymizer
from streams.kafka.settings import KafkaSettings
from streams.kafka.worker_settings import WorkerSettings

_WARNED: list[bool] = []  # the unkeyed-pseudonym warning was printed in this run


def new_run() -> None:
    """A command starts: its once-per-run warnings may be said again."""
    _WARNED.clear()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CC_MONITOR_", env_nested_delimiter="__", extra="forbid"
    )

    timezone: str = Field(
        "UTC", description="IANA zone for report days, weeks and months (e.g. Asia/Seoul)."
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    max_line_bytes: int = Field(65_536, gt=0, description="Longer input lines are rejected.")
    rejected_listing_limit: int = Field(
        1000, ge=0, description="Rejected events listed in a report (all are counted)."
    )
    evidence_limit: int = Field(5, ge=0, description="Example contact ids per rule in a report.")
    csv_max_contacts: int = Field(
        2_000_000,
        ge=0,
        description="Contacts kept for `replay --csv` and `explain` (one row each in memory, "
        "a few hundred bytes); beyond it they are counted, not listed.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    rules_file: Path | None = Field(
        None, description="Alert rules (TOML, docs/alerts.md); built-in defaults without it."
    )
    ivr_flow_files: list[Path] = Field(
        default_factory=list,
        max_length=1000,
        description="IVR flow files (YAML or JSON, docs/ivr-lint.md): their flows and menus "
        "are kept as labels outside the caps, for every tenant "
        "(engine.label_caps.ivr_flows; with configured_only the only ones).",
    )
    pseudonym_key: SecretStr = Field(
        SecretStr(""),
        description="Key of the keyed hash that pseudonymizes customer ids at ingest. Set it in "
        "production (CC_MONITOR_PSEUDONYM_KEY); the same key gives the same pseudonyms.",
    )

    show_agent_names: bool = Field(
        False,
        description="Replays of imported records (--format) show the agent names the source "
        "records (agents table, CSV exports, explain). Off: they become keyed pseudonyms, as "
        "customer ids do and as `produce` makes them (agent names are personal data; a "
        "supervisor who needs names maps pseudonyms in a directory of their own).",
    )

    _known_zone = field_validator("timezone")(known_zone)

    def pseudonymizer(self, *, live: bool) -> Pseudonymizer:
        """The keyed hash of customer and agent ids. Without a configured key: the key kept in
        ``worker.data_dir/pseudonym.key``; live commands (produce, tail, feed, the demo) make one
        there, random, if there is none (a pseudonym under an empty key is a plain hash that
        anyone can recompute); a replay warns and uses the empty key."""
        key = self.pseudonym_key.get_secret_value()
        if key:
            return Pseudonymizer(key)
        path = self.worker.data_dir / "pseudonym.key"
        if path.exists():
            return Pseudonymizer(path.read_text().strip())
        if live:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            print(f"cc-monitor: no pseudonym_key set: made a random one in {path} (keep it: "
                  "the same key gives the same pseudonyms)", file=sys.stderr)  # fmt: skip
            return Pseudonymizer(path.read_text().strip())
        if not _WARNED:  # once per run, however many sources or parts ask for it
            _WARNED.append(True)
            print("cc-monitor: warning: no pseudonym_key set: customer ids are hashed without a "
                  "key, which anyone can recompute (set CC_MONITOR_PSEUDONYM_KEY)",
                  file=sys.stderr)  # fmt: skip
        return Pseudonymizer("")

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def rules(self) -> RulesConfig:
        return RulesConfig.load(self.rules_file) if self.rules_file else RulesConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Init arguments carry the file's values, so they rank below the environment.
        return (env_settings, init_settings)


class SettingsError(ValueError):
    """A settings file or environment the program cannot run with: one line per problem,
    naming the setting, what is wrong and (for an unknown key) the valid names."""


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The settings model that the path ``loc`` ends in (None: not a model). A field holding
    models in a list or a table (``targets``, ``calendars``) takes one more part, the index or
    the name."""
    model: type[BaseModel] = root
    skip = False
    for part in loc:
        if skip:
            skip = False
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        args = typing.get_args(field.annotation)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
            continue
        inner = [t for t in args if isinstance(t, type) and issubclass(t, BaseModel)]
        if not inner:
            return None
        model = inner[0]
        skip = typing.get_origin(field.annotation) in (tuple, list, dict)
    return None if skip else model


def describe(err: ValidationError, root: type[BaseModel] = BaseModel) -> str:
    """One line per problem of a settings validation error."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "settings"
        if e["type"] == "extra_forbidden":
            model = _model_at(root, loc[:-1]) if root is not BaseModel else None
            valid = sorted(model.model_fields) if model is not None else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            names = f" (valid: {', '.join(valid)})" if valid else ""
            lines.append(f"unknown setting {where!r}{hint}{names}")
        else:
            got = repr(e.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."
            lines.append(f"setting {where!r}: {e['msg']} (got {got})")
    return "\n".join(lines)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, an optional TOML file, the environment, then command-line flags
    (``overrides``: only top-level scalars such as ``timezone``; None means not given).

    Tables merge onto the defaults key by key at every level (a file that sets one channel's
    service level changes that channel only); unknown keys are refused. Raises
    :class:`SettingsError` with one line per problem."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except OSError as exc:
            raise SettingsError(f"config file {str(path)!r}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise SettingsError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    try:
        settings = Settings(**values)
    except ValidationError as err:
        raise SettingsError(describe(err, Settings)) from None
    if settings.ivr_flow_files:
        settings = _with_flows(settings)
    update = {k: v for k, v in overrides.items() if v is not None}
    if "timezone" in update:
        try:
            known_zone(update["timezone"])
        except ValueError as exc:
            raise SettingsError(f"--timezone: {exc}") from None
    return settings.model_copy(update=update) if update else settings


def _with_flows(settings: Settings) -> Settings:
    """``engine.label_caps.ivr_flows`` with the flows and menus of ``ivr_flow_files``."""
    from kpis.config import NamedFlow
    from kpis.ivr_lint import Menu, parse

    def menus(menu: Menu) -> list[str]:
        out = [menu.id]
        for option in menu.options:
            if option.menu is not None:
                out += menus(option.menu)
        return out

    named = []
    for path in settings.ivr_flow_files:
        where = f"setting 'ivr_flow_files': {str(path)!r}"
        try:
            flow = parse(path.read_text(encoding="utf-8"), path.name)
            named.append(NamedFlow(flow=flow.flow, menus=tuple(dict.fromkeys(menus(flow.menu)))))
        except OSError as exc:
            raise SettingsError(f"{where}: {exc.strerror or exc}") from None
        except ValidationError as exc:  # a name longer than a label may be
            raise SettingsError(f"{where}: {describe(exc)}") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise SettingsError(f"{where}: {str(exc).splitlines()[0]}") from None
    caps = settings.engine.label_caps
    caps = caps.model_copy(update={"ivr_flows": (*caps.ivr_flows, *named)})
    engine = settings.engine.model_copy(update={"label_caps": caps})
    return settings.model_copy(update={"engine": engine})
