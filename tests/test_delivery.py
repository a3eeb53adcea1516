"""Alert delivery against a real Prometheus Alertmanager (Debian's prometheus-alertmanager,
started here on loopback) and a signed webhook."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerts.evaluator import Alert, AlertEvent, AlertLogic, fingerprint
from alerts.rules import RulesConfig
from streams.delivery import (
    SIGNATURE_HEADER,
    AlertmanagerReceiver,
    Dispatcher,
    WebhookReceiver,
    verify,
)

BINARY = shutil.which("prometheus-alertmanager")
# In CI the test command installs it: there a missing binary fails instead of skipping.
pytestmark = pytest.mark.skipif(
    BINARY is None and not os.environ.get("CI"), reason="prometheus-alertmanager not installed"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds} s")


class Hook:
    """A webhook receiver on loopback that records what it is sent."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes, dict[str, str]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}  # case-insensitive
                hook.bodies.append((self.path, body, headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self, path: str) -> list[bytes]:
        return [b for p, b, _ in self.bodies if p == path]


class Alertmanager:
    def __init__(self, tmp: Path, port: int, hook: Hook) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.tmp = tmp
        cfg = tmp / "am.yml"
        cfg.write_text(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n"
            "  group_interval: 1s\n  repeat_interval: 1h\n"
            f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook.url}/am\n"
            "        send_resolved: true\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert BINARY is not None
        (self.tmp / "data").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [BINARY, f"--config.file={self.tmp / 'am.yml'}", f"--storage.path={self.tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._ready)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=2) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()


@pytest.fixture
def am(tmp_path: Path, hook: Hook) -> Iterator[Alertmanager]:
    manager = Alertmanager(tmp_path, free_port(), hook)
    yield manager
    manager.stop()


def firing(name: str = "component_down", started: float | None = None) -> AlertEvent:
    labels = {"alertname": name, "severity": "critical", "tenant": "bank", "component": "trunk"}
    alert = Alert(rule=name, fingerprint=fingerprint(labels), labels=labels, severity="critical",
                  summary="trunk is down", runbook_url="docs/runbooks.md#component-down",
                  starts_at=started if started is not None else time.time(), value=0.0,
                  evidence=["c1"])  # fmt: skip
    return AlertEvent("firing", alert)


def resolved(event: AlertEvent) -> AlertEvent:
    data = event.alert.to_dict()
    data["ends_at"] = time.time()
    return AlertEvent("resolved", Alert(**data))


def ours(am: Alertmanager) -> list[dict[str, Any]]:
    return [a for a in am.alerts() if a["labels"].get("alertname") == "component_down"]


def test_alert_appears_with_its_labels_then_resolves(am: Alertmanager, hook: Hook) -> None:
    am.start()
    d = Dispatcher([AlertmanagerReceiver(am.url)]).start()
    event = firing()
    d.alert(event)
    (alert,) = wait_for(lambda: ours(am))
    assert alert["labels"] == event.alert.labels
    assert alert["annotations"]["runbook_url"].endswith("#component-down")
    assert alert["status"]["state"] == "active"
    wait_for(lambda: hook.paths("/am"))  # Alertmanager notified its receiver: firing
    d.alert(resolved(event))
    wait_for(lambda: not ours(am))  # resolved alerts leave the active list
    notes = wait_for(lambda: [json.loads(b) for b in hook.paths("/am")
                              if json.loads(b)["status"] == "resolved"])  # fmt: skip
    assert notes[0]["alerts"][0]["labels"]["component"] == "trunk"
    d.stop()


def test_alertmanager_down_for_a_while_then_up(am: Alertmanager) -> None:
    d = Dispatcher([AlertmanagerReceiver(am.url, timeout=1)], backoff=(0.2, 1.0)).start()
    d.alert(firing())
    wait_for(lambda: d.failures["alertmanager"] >= 2)
    assert d.pending() == 1
    am.start()
    wait_for(lambda: ours(am))
    wait_for(lambda: d.pending() == 0)
    d.stop()


def test_undelivered_notifications_survive_a_restart(am: Alertmanager, tmp_path: Path) -> None:
    box = tmp_path / "outbox.json"
    first = Dispatcher([AlertmanagerReceiver(am.url, timeout=1)], outbox=box,
                       backoff=(0.2, 1.0)).start()  # fmt: skip
    first.alert(firing())
    wait_for(lambda: first.failures["alertmanager"] >= 1)
    first.stop(drain_seconds=0)  # the worker dies with the alert undelivered
    am.start()
    second = Dispatcher([AlertmanagerReceiver(am.url)], outbox=box).start()
    wait_for(lambda: ours(am))
    second.stop()


def test_a_restart_while_firing_does_not_notify_twice(
    am: Alertmanager, hook: Hook, tmp_path: Path
) -> None:
    am.start()
    box = tmp_path / "outbox.json"
    out = Dispatcher([AlertmanagerReceiver(am.url)], outbox=box, resend_seconds=0.5).start()
    logic = AlertLogic(RulesConfig(), out)
    logic.gauge("system_status", ("bank", "trunk"), 0.0, 0.0)
    logic.on_tick(time.time())
    wait_for(lambda: hook.paths("/am"))
    checkpoint = json.loads(json.dumps(logic.snapshot()))
    out.stop()
    # restart: the rules state comes back from the checkpoint, delivery from its outbox
    again = Dispatcher([AlertmanagerReceiver(am.url)], outbox=box, resend_seconds=0.5).start()
    restored = AlertLogic(RulesConfig(), again)
    restored.restore(checkpoint)
    for _ in range(3):
        restored.on_tick(time.time())
        time.sleep(1.0)
    assert again.delivered["alertmanager"] >= 1  # the firing alert was re-sent (kept alive)
    firing_notes = [b for b in hook.paths("/am") if json.loads(b)["status"] == "firing"]
    assert len(firing_notes) == 1
    assert len(ours(am)) == 1
    again.stop()


def test_webhook_is_signed(hook: Hook) -> None:
    secret = b"s3cret"
    d = Dispatcher([WebhookReceiver(hook.url + "/hook", secret)]).start()
    d.alert(firing())
    wait_for(lambda: hook.paths("/hook"))
    (_path, body, headers) = next(b for b in hook.bodies if b[0] == "/hook")
    signature = headers[SIGNATURE_HEADER.lower()]
    assert verify(secret, body, signature)
    assert not verify(b"wrong", body, signature)
    assert not verify(secret, body.replace(b"trunk", b"trunc"), signature)
    # a captured request does not verify once older than the tolerance; no header: False
    stamp = int(signature.split(",")[0][2:])
    assert not verify(secret, body, signature, now=stamp + 301)
    assert not verify(secret, body, None)
    forged = signature.replace(f"t={stamp}", f"t={stamp + 100}")
    assert not verify(secret, body, forged, now=stamp + 100)
    doc = json.loads(body)
    assert doc["events"][0]["status"] == "firing"
    assert doc["events"][0]["alert"]["labels"]["component"] == "trunk"
    d.stop()
