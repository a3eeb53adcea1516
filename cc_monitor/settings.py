"""Application settings: defaults < TOML file (``--config``) < environment (``CC_MONITOR_*``).

Nested values use ``__`` in environment names, e.g.
``CC_MONITOR_ENGINE__ALLOWED_LATENESS_SECONDS=120``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from alerts.rules import RulesConfig
from kpis.config import EngineConfig
from streams.kafka.app import WorkerSettings
from streams.kafka.settings import KafkaSettings


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
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    rules_file: Path | None = Field(
        None, description="Alert rules (TOML, docs/alerts.md); built-in defaults without it."
    )
    pseudonym_key: SecretStr = Field(
        SecretStr(""),
        description="Key of the keyed hash that pseudonymizes customer ids at ingest. Set it in "
        "production (CC_MONITOR_PSEUDONYM_KEY); the same key gives the same pseudonyms.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

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


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, an optional TOML file, the environment, then command-line flags
    (``overrides``: only top-level scalars such as ``timezone``; None means not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    settings = Settings(**values)
    update = {k: v for k, v in overrides.items() if v is not None}
    if "timezone" in update:
        Settings._known_zone(update["timezone"])
    return settings.model_copy(update=update) if update else settings
