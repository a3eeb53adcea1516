"""The dispatcher's queues while a receiver is away: bounded, latest state per alert for
Alertmanager, batched on recovery, and the outbox file follows (no receiver process needed:
a receiver here is an object that fails until told otherwise)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from alerts.evaluator import Alert, AlertEvent
from streams.delivery import Dispatcher


class Flaky:
    """A receiver that refuses every request while ``down`` and records what it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down = True
        self.requests: list[int] = []
        self.got: list[AlertEvent] = []

    def send(self, events: list[AlertEvent]) -> None:
        if self.down:
            raise OSError("away")
        self.requests.append(len(events))
        self.got.extend(events)


def _alert(i: int, ends: float | None = None) -> Alert:
    return Alert(rule="r", fingerprint=f"f{i}", labels={"alertname": "r", "queue": f"q{i}"},
                 severity="warning", summary="s", runbook_url="u", starts_at=1.0,
                 value=1.0, ends_at=ends)  # fmt: skip


def _wait(cond: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.slow
def test_an_outage_costs_bounded_memory_and_recovery_comes_in_batches(tmp_path: Path) -> None:
    am, hook = Flaky("alertmanager"), Flaky("webhook")
    outbox = tmp_path / "outbox.json"
    d = Dispatcher([am, hook], outbox, resend_seconds=0.05, backoff=(0.01, 0.05),
                   max_pending=30, batch=8).start()  # fmt: skip
    try:
        for i in range(40):
            d.alert(AlertEvent("firing", _alert(i)))
        d.alert(AlertEvent("resolved", _alert(0, ends=2.0)))
        time.sleep(0.6)  # a dozen resend periods with both receivers away
        saved = json.loads(outbox.read_text())["pending"]
        # Alertmanager: one entry per alert, its latest state (f0 resolved)
        states = {e["alert"]["fingerprint"]: e["status"] for e in saved["alertmanager"]}
        assert len(saved["alertmanager"]) == len(states) == 40 and states["f0"] == "resolved"
        assert len(saved["webhook"]) == 30 and d.dropped["webhook"] == 11
        am.down = hook.down = False
        firing_sent = {f"f{i}" for i in range(40)}
        _wait(lambda: not d.box.pending.get("webhook")
              and {e.alert.fingerprint for e in am.got} >= firing_sent)  # fmt: skip
        assert max(am.requests) <= 8 and max(hook.requests) <= 8
        assert {e.alert.fingerprint for e in hook.got} >= {f"f{i}" for i in range(11, 40)}
        assert json.loads(outbox.read_text())["pending"]["webhook"] == []
        # resends go on for what fires, never more than one entry per alert
        assert len(d.box.pending.get("alertmanager", [])) <= 39
    finally:
        d.stop(drain_seconds=0)


def test_webhook_signatures_cover_a_time_and_expire() -> None:
    from streams.delivery import sign, verify

    body = b'{"version": 1}'
    header = sign(b"k", body, 1_000_000)
    assert header.startswith("t=1000000,sha256=")
    assert verify(b"k", body, header, now=1_000_100)
    assert not verify(b"k", body, header, now=1_000_301)  # replayed too late
    assert not verify(b"k", body + b" ", header, now=1_000_100)
    assert not verify(b"", body, header, now=1_000_100)
    assert not verify(b"k", body, None) and not verify(b"k", body, "garbage")
    assert not verify(b"k", body, header.replace("t=1000000", "t=1000200"), now=1_000_200)


def test_a_webhook_without_a_secret_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from streams.kafka.worker_settings import AlertDeliverySettings

    with pytest.raises(ValidationError, match="webhook_secret is required"):
        AlertDeliverySettings(webhook_url="http://127.0.0.1:9/hook")
    ok = AlertDeliverySettings(webhook_url="http://127.0.0.1:9/hook", webhook_secret="s")
    assert ok.webhook_secret is not None


def test_contact_ids_leave_only_when_asked() -> None:
    from dataclasses import replace

    with_ids = AlertEvent("firing", replace(_alert(1), evidence=["c1", "c2"]))
    for include, expected in ((False, []), (True, ["c1", "c2"])):
        hook = Flaky("webhook")
        hook.down = False
        d = Dispatcher([hook], None, include_evidence=include).start()
        try:
            d.alert(with_ids)
            _wait(lambda: hook.got)  # noqa: B023
        finally:
            d.stop(drain_seconds=0)
        assert hook.got[0].alert.evidence == expected
