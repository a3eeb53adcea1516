"""The live worker's settings (``worker.*`` of cc_monitor.settings): web, checkpoints,
fetches, agent states, the reject alarm, a simulated clock, Redis, alert delivery, archive."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator

from kpis.clock import EventClock
from streams.delivery import AlertmanagerReceiver, Dispatcher, Receiver, WebhookReceiver


class RedisSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        None,
        description="redis://host:port/db, or rediss:// for TLS. Without it, /api/kpis shows "
        "this worker's partitions only.",
    )
    password: SecretStr | None = None
    ssl_cafile: str | None = Field(None, description="CA bundle for rediss:// URLs.")
    timeout_seconds: float = Field(2.0, gt=0, description="Per command; then it counts as down.")

    def client(self) -> Any:
        import redis.asyncio as redis

        assert self.url is not None
        opts: dict[str, Any] = {
            "socket_timeout": self.timeout_seconds,
            "socket_connect_timeout": self.timeout_seconds,
        }
        if self.password is not None:
            opts["password"] = self.password.get_secret_value()
        if self.ssl_cafile and self.url.startswith("rediss://"):
            opts["ssl_ca_certs"] = self.ssl_cafile
        return redis.Redis.from_url(self.url, **opts)


class AlertDeliverySettings(BaseModel):
    """Where the evaluating worker sends alert transitions, besides the alerts topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alertmanager_url: str | None = Field(
        None, description="Alertmanager base URL (POST /api/v2/alerts); resent while firing."
    )
    webhook_url: str | None = Field(None, description="Generic webhook, HMAC-SHA256 signed.")
    webhook_secret: SecretStr | None = Field(None, description="The webhook's signing key.")
    resend_seconds: float = Field(60.0, gt=0, description="Firing alerts resent this often.")
    max_pending: int = Field(
        10_000,
        ge=100,
        description="Notifications held per receiver while it is away; past this the oldest "
        "are dropped and counted (Alertmanager holds one per alert, its latest state).",
    )
    batch: int = Field(500, ge=1, description="Notifications per request to a receiver.")
    include_evidence: bool = Field(
        False,
        description="Send alerts' example contact ids to Alertmanager and the webhook (the "
        "report and the alerts topic keep them for audits either way).",
    )
    lease_seconds: float = Field(
        10.0, gt=0, description="Evaluation lease in Redis: another worker takes over after it."
    )

    @model_validator(mode="after")
    def _webhook_signed(self) -> AlertDeliverySettings:
        # an empty key makes a signature anyone can compute
        if self.webhook_url and not (
            self.webhook_secret and self.webhook_secret.get_secret_value()
        ):
            raise ValueError("worker.alerts.webhook_secret is required with a webhook_url")
        return self

    def dispatcher(self, outbox: Path) -> Dispatcher | None:
        receivers: list[Receiver] = []
        if self.alertmanager_url:
            receivers.append(AlertmanagerReceiver(self.alertmanager_url))
        if self.webhook_url:
            secret = self.webhook_secret.get_secret_value().encode() if self.webhook_secret else b""
            receivers.append(WebhookReceiver(self.webhook_url, secret))
        if not receivers:
            return None
        return Dispatcher(
            receivers,
            outbox,
            resend_seconds=self.resend_seconds,
            max_pending=self.max_pending,
            batch=self.batch,
            include_evidence=self.include_evidence,
        )


class ArchiveSettings(BaseModel):
    """The event archive the workers write (docs/audit.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path | None = Field(
        None,
        description="Archive every consumed record here, valid or not. Shared by all workers "
        "(partitions move between them). Off when unset.",
    )
    key: SecretStr | None = Field(
        None,
        description="Seals every manifest entry (HMAC-SHA256) so that `audit verify` with the "
        "key detects a chain recomputed by someone who could rewrite the archive. Keep it out "
        "of the archive's storage (CC_MONITOR_WORKER__ARCHIVE__KEY).",
    )
    retention_days: float | None = Field(
        None, gt=0, description="Segments whose events are all older are deleted (recorded in "
        "the hash chain); kept forever when unset.",
    )  # fmt: skip

    def key_bytes(self) -> bytes | None:
        return self.key.get_secret_value().encode() if self.key is not None else None


class ClockSettings(BaseModel):
    """A simulated clock (the live demo's): the worker's event-time "now" runs ``speed`` times
    faster than the wall clock, from ``event_start`` at wall time ``wall_start``. Unset: the
    wall clock. Every worker and the feeder of one simulation share it (docs/live.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    speed: float = Field(1.0, gt=0, le=1_000_000, description="Event seconds per wall second.")
    wall_start: AwareDatetime | None = Field(
        None, description="The wall-clock instant at which the simulated clock reads event_start."
    )
    event_start: AwareDatetime | None = Field(
        None, description="What the simulated clock reads at wall_start."
    )

    @model_validator(mode="after")
    def _both(self) -> ClockSettings:
        if (self.wall_start is None) != (self.event_start is None):
            raise ValueError("worker.clock needs both wall_start and event_start, or neither")
        if self.speed != 1.0 and self.wall_start is None:
            raise ValueError("worker.clock.speed needs wall_start and event_start")
        return self

    def event_clock(self) -> EventClock:
        if self.wall_start is None or self.event_start is None:
            return EventClock()
        return EventClock(self.wall_start.timestamp(), self.event_start.timestamp(), self.speed)


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app_id: str = Field("cc-monitor", description="Consumer group and table-topic prefix.")
    web_bind: str = Field("127.0.0.1", description="Address of /metrics, /api/kpis, /health.")
    web_port: int = Field(6066, ge=1, le=65535)
    data_dir: Path = Field(
        Path(".cc-monitor"), description="Local files: the alert outbox, a generated pseudonym key."
    )
    checkpoint_interval_seconds: float = Field(
        5.0, gt=0, description="Partition checkpoints (and so offset commits) at most this often."
    )
    idle_flush_seconds: float = Field(
        10.0,
        gt=0,
        description="Input quiet for this long: process what waits for the watermark, as a "
        "replay does at the end of its input.",
    )
    group_timeout_seconds: float | None = Field(
        None,
        gt=0,
        description="Consumer-group session and rebalance timeout (aiokafka's default if unset; "
        "about 6 makes joins on Tansu quick).",
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        description="How long the broker may hold a fetch waiting for data (aiokafka's 500 ms, "
        "which a broker that waits out the whole time, Tansu, turns into latency).",
    )
    fetch_min_bytes: int = Field(
        1,
        ge=1,
        description="The broker answers a fetch once it has this many bytes (or after "
        "fetch_max_wait_ms). Larger values mean fewer, fuller fetches under load at the cost of "
        "up to fetch_max_wait_ms of latency; see docs/performance.md.",
    )
    dead_letter_max_bytes: int = Field(
        65_536,
        ge=1024,
        le=900_000,
        description="A rejected record larger than this goes to the dead-letter topic cut to "
        "this size, with its whole size and SHA-256 in headers (a broker refuses a message over "
        "its limit, 1 MB by default).",
    )
    agent_states: bool = Field(
        True,
        description="Live agent states (/api/agents, cc_agents, the staffing alerts): each "
        "partition publishes its contacts' agent facts to the agents topic (about three small "
        "records per contact, plus a mark per partition and second). Off: agent states are "
        "replay-only.",
    )
    agent_directory: Path | None = Field(
        None,
        description="Display names of agents for /api/agents and the wallboard's agent board: "
        "a CSV (agent or source_id, name) or JSON file (docs/live.md). Read at start; names are "
        "never labels, logged or in reports.",
    )
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Names this worker in logs and /health.",
    )
    reject_alarm_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="/health says degraded (and the wallboard shows a banner) while at least "
        "this share of the input records read in the last reject_window_seconds was rejected "
        "(out of range, late, invalid, ...): a worker that throws away what it reads is not ok.",
    )
    reject_window_seconds: float = Field(
        60.0, gt=0, le=86_400, description="The window of reject_alarm_share (wall clock)."
    )
    reject_alarm_min_records: int = Field(
        20, ge=1, description="Fewer records read in the window raise no reject alarm."
    )
    clock: ClockSettings = Field(default_factory=lambda: ClockSettings())
    redis: RedisSettings = Field(default_factory=RedisSettings)
    alerts: AlertDeliverySettings = Field(default_factory=lambda: AlertDeliverySettings())
    archive: ArchiveSettings = Field(default_factory=lambda: ArchiveSettings())
