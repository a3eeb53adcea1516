"""Delivery of alert events: Prometheus Alertmanager (API v2) and a signed generic webhook.

This is the I/O side of alerting; the rules stay pure (:mod:`alerts.evaluator`). A
:class:`Dispatcher` is an :class:`alerts.evaluator.AlertSink`: an alert event goes into an
outbox (a file, so undelivered notifications survive a restart) and returns at once; a
background thread delivers the outbox to every receiver, retrying with capped exponential
backoff, so event processing never waits on a receiver. Firing alerts are re-sent every
``resend_seconds`` (Alertmanager expires alerts that are not refreshed); a resolution is sent
with ``endsAt``.

Invariants: an outbox entry is removed only once every receiver accepted it; entries go out in
order per receiver; re-sending a firing alert is idempotent (same labels, same ``startsAt``).
Alertmanager keeps state, not history, so its queue holds the latest state of each alert
(a resend or a newer transition replaces the one waiting); a webhook's queue of transitions is
bounded (``max_pending``, the oldest dropped and counted); both go out in batches of
``batch``. An outage of any length costs bounded memory and no giant request on recovery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from alerts.evaluator import Alert, AlertEvent

SIGNATURE_HEADER = "X-CC-Monitor-Signature"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def alertmanager_payload(alert: Alert, generator_url: str = "") -> dict[str, Any]:
    """One alert in Alertmanager's API v2 form (postable alert)."""
    doc: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": {
            "summary": alert.summary,
            "runbook_url": alert.runbook_url,
            "value": f"{alert.value:g}",
        },
        "startsAt": _iso(alert.starts_at),
    }
    if alert.evidence:
        doc["annotations"]["evidence"] = ", ".join(alert.evidence)
    if alert.ends_at is not None:
        doc["endsAt"] = _iso(alert.ends_at)
    if generator_url:
        doc["generatorURL"] = generator_url
    return doc


SIGNATURE_TOLERANCE = 300.0


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The webhook signature header value, ``t=<unix seconds>,sha256=<hex>``: HMAC-SHA256 of
    ``"<t>." + body``. The time is signed with the body (as Stripe and Slack do), so a captured
    request cannot be replayed once it is older than the receiver's tolerance."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},sha256={mac}"


def verify(
    secret: bytes,
    body: bytes,
    header: str | None,
    now: float | None = None,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """A receiver's check of a webhook signature: well formed, signed by ``secret`` over this
    body and its time (constant-time comparison), and that time within ``tolerance`` seconds of
    ``now`` (default: the clock). False for anything else, a missing header included."""
    if not header or not secret:
        return False
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        stamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, stamp), header)


class Receiver(Protocol):
    name: str

    def send(self, events: list[AlertEvent]) -> None:
        """Deliver, or raise ``OSError`` (then the same events are tried again later)."""


class AlertmanagerReceiver:
    """POST /api/v2/alerts."""

    def __init__(self, url: str, timeout: float = 5.0, generator_url: str = "") -> None:
        self.name = "alertmanager"
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.timeout = timeout
        self.generator_url = generator_url

    def send(self, events: list[AlertEvent]) -> None:
        body = json.dumps([alertmanager_payload(e.alert, self.generator_url) for e in events])
        req = urllib.request.Request(
            self.url, data=body.encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise OSError(f"alertmanager answered {resp.status}")


class WebhookReceiver:
    """POSTs ``{"version": 1, "events": [{"status", "alert"}]}`` signed with HMAC-SHA256."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a signing secret (worker.alerts.webhook_secret)")
        self.clock = clock
        self.name = "webhook"
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def send(self, events: list[AlertEvent]) -> None:
        doc = {"version": 1, "events": [{"status": e.status, "alert": e.alert.to_dict()}
                                         for e in events]}  # fmt: skip
        body = json.dumps(doc, sort_keys=True).encode()
        req = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json",
                     SIGNATURE_HEADER: sign(self.secret, body, int(self.clock()))},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise OSError(f"webhook answered {resp.status}")


class Outbox:
    """Pending notifications per receiver, kept in a JSON file (atomically replaced), or only
    in memory when no path is given."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.firing: dict[str, dict[str, Any]] = {}  # fingerprint -> alert, for re-sending
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            self.pending = data["pending"]
            self.firing = data["firing"]

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pending": self.pending, "firing": self.firing}))
        os.replace(tmp, self.path)


class Dispatcher:
    """An alert sink that queues events and delivers them in the background."""

    def __init__(
        self,
        receivers: list[Receiver],
        outbox: Path | None = None,
        resend_seconds: float = 60.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        clock: Callable[[], float] = time.monotonic,
        *,
        max_pending: int = 10_000,
        batch: int = 500,
        include_evidence: bool = False,
    ) -> None:
        """``include_evidence``: send alerts' example contact ids to the receivers (they leave
        the centre's systems with them); off by default, the report and the alerts topic keep
        them for audits."""
        self.receivers = {r.name: r for r in receivers}
        self.box = Outbox(outbox)
        self.resend_seconds = resend_seconds
        self.backoff = backoff
        self.clock = clock
        self._lock = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._retry_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._last_resend = clock()
        self.max_pending = max_pending
        self.batch = batch
        self.include_evidence = include_evidence
        self.delivered: dict[str, int] = {name: 0 for name in self.receivers}
        self.failures: dict[str, int] = {name: 0 for name in self.receivers}
        self.dropped: dict[str, int] = {name: 0 for name in self.receivers}

    def _enqueue(self, name: str, entry: dict[str, Any]) -> None:
        """Queue ``entry`` for receiver ``name`` (the lock held)."""
        items = self.box.pending.setdefault(name, [])
        if name == "alertmanager":
            # state, not history: the latest state of each alert, so this queue is bounded by
            # the alerts there are (firing ones are resent anyway), not by the outage's length
            # (a newer state takes the waiting one's place: in order, and resends cannot starve
            # the back of the queue)
            fp = entry["alert"]["fingerprint"]
            for n, waiting in enumerate(items):
                if waiting["alert"]["fingerprint"] == fp:
                    items[n] = entry
                    return
            items.append(entry)
            return
        items.append(entry)
        over = len(items) - self.max_pending
        if over > 0:
            del items[:over]
            self.dropped[name] += over

    def alert(self, event: AlertEvent) -> None:
        doc = event.alert.to_dict()
        if not self.include_evidence:
            doc["evidence"] = []
        entry: dict[str, Any] = {"status": event.status, "alert": doc}
        with self._lock:
            for name in self.receivers:
                self._enqueue(name, entry)
            if event.status == "firing":
                self.box.firing[event.alert.fingerprint] = entry["alert"]
            else:
                self.box.firing.pop(event.alert.fingerprint, None)
            self.box.save()
            self._lock.notify()

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_seconds: float = 5.0) -> None:
        """Stop after trying to deliver what is pending for up to ``drain_seconds``."""
        deadline = self.clock() + drain_seconds
        while self.pending() and self.clock() < deadline:
            time.sleep(0.05)
        with self._lock:
            self._stop = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def pending(self) -> int:
        with self._lock:
            return sum(len(v) for v in self.box.pending.values())

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stop:
                    return
                self._lock.wait(timeout=0.2)
                if self._stop:
                    return
                now = self.clock()
                if now - self._last_resend >= self.resend_seconds and self.box.firing:
                    self._last_resend = now
                    if "alertmanager" in self.receivers:  # keeps firing alerts alive there
                        for a in self.box.firing.values():
                            self._enqueue("alertmanager", {"status": "firing", "alert": a})
                        self.box.save()
                work = {
                    name: items[: self.batch]
                    for name, items in self.box.pending.items()
                    if items and self._retry_at.get(name, 0.0) <= now
                }
            for name, items in work.items():
                events = [AlertEvent(i["status"], Alert(**i["alert"])) for i in items]
                try:
                    self.receivers[name].send(events)
                except (OSError, urllib.error.URLError, ValueError):
                    self.failures[name] += 1
                    delay = min(self._delay.get(name, self.backoff[0] / 2) * 2, self.backoff[1])
                    self._delay[name] = delay
                    self._retry_at[name] = self.clock() + delay
                    continue
                with self._lock:
                    # only what was sent (the queue may have changed meanwhile: newer states
                    # replace older ones), by identity
                    sent = {id(i) for i in items}
                    queue = self.box.pending[name]
                    queue[:] = [i for i in queue if id(i) not in sent]
                    self.box.save()
                    self.delivered[name] += len(items)
                    self._delay.pop(name, None)
                    self._retry_at.pop(name, None)
