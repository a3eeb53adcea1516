"""The HTML report: self-contained, deterministic, and its charts render in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import orjson
import pytest

from cc_monitor.cli import main
from cc_monitor.html import render_html
from cc_monitor.simulator import SimConfig, simulate
from tests.helpers import replay_lines

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@lru_cache(maxsize=1)
def week_lines() -> tuple[bytes, ...]:
    cfg = SimConfig(days=7, contacts_per_day=1500)
    return tuple(orjson.dumps(e) for e in simulate(cfg))


@pytest.mark.slow
def test_html_is_deterministic_and_self_contained(tmp_path: Path) -> None:
    log = tmp_path / "week.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in week_lines()))
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    assert main(["replay", str(log), "--html", str(a), "--quiet", "--no-progress"]) == 0
    assert main(["replay", str(log), "--html", str(b), "--quiet", "--no-progress"]) == 0
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert "<script" not in text and "<link" not in text and " src=" not in text
    assert text.count("<svg") >= 12  # day and week trends, IVR, rejected, alert timeline
    for heading in ("Per day, per channel", "KS S 1006 scorecard", "CX benchmark", "Alerts ("):
        assert heading in text
    assert "loans.mortgage.rates" in text
    # charts: axes from zero, the target, the partial tail marked, the severities named
    # (matplotlib writes each text as a comment beside its drawn glyphs)
    assert "<!-- 0 -->" in text and "<!-- target 80 -->" in text
    assert re.search(r"<!-- 2026-11-\d\d\* -->", text)  # a tail day, starred
    assert "<!-- critical -->" in text and "<!-- warning -->" in text
    assert "가" in text or "data:font/ttf;base64," in text  # the clause numbers' glyphs


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium missing")
def test_charts_render_in_headless_chromium(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    report = tmp_path / "week.html"
    report.write_text(render_html(replay_lines(list(week_lines()), tmp_path)))
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")

    def chromium(*args: str) -> subprocess.CompletedProcess[str]:
        profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip

    dom = chromium("--dump-dom", report.as_uri()).stdout
    assert dom.count("<svg") >= 12 and dom.count("<path") >= 100  # matplotlib's drawing
    shots = {}
    for name, page in (("report", report), ("blank", blank)):
        png = tmp_path / f"{name}.png"
        chromium("--window-size=1280,2400", f"--screenshot={png}", page.as_uri())
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        shots[name] = png.stat().st_size
    assert shots["report"] > 10 * shots["blank"]  # drawn, not an empty page


def test_a_day_without_contacts_of_its_own_shows_no_rates(tmp_path: Path) -> None:
    """The simulated week's last day held only the ends of earlier contacts (an e-mail
    answered late, resolutions made final): it showed "service level 0.0 %, one-touch
    100.0 %". With nothing of its own to measure its rates are –."""
    from cc_monitor.render import render_markdown
    from tests.helpers import Log, replay_log

    log = Log()  # 2026-11-02 09:00 UTC
    log.add(0, "contact.started", "m1", channel="email")
    log.add(0, "queue.entered", "m1", channel="email", queue="mail")
    # answered the next day, 26 h later: outside the 24 h target
    log.add(26 * 3600, "agent.message", "m1", channel="email", queue="mail", agent_id="a",
            sender="human")  # fmt: skip
    log.add(26 * 3600 + 60, "contact.ended", "m1", channel="email", queue="mail",
            agent_id="a", ended_by="agent")  # fmt: skip
    rep = replay_log(log, tmp_path)
    md = render_markdown(rep)
    day2 = next(line for line in md.splitlines() if line.startswith("| 2026-11-03 |"))
    assert day2.startswith("| 2026-11-03 | 0 | 0 | – | – |"), day2
    assert "0.0%" not in day2
    day1 = next(line for line in md.splitlines() if line.startswith("| 2026-11-02 |"))
    assert "| 1 | 1 |" in day1
    html_doc = render_html(rep)
    assert "nothing of its own to measure" in html_doc
