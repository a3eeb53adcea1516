"""The HTML report's charts, drawn by matplotlib as inline SVG: axes from zero with round
ticks and gridlines, dated x ticks, targets as dashed lines, partial periods hollow and out of
the scale, a legend per chart.

Deterministic, offline and self-contained: no pyplot state (a Figure per chart, the Agg-free
SVG backend), a fixed hash salt for the SVG's ids, no date or creator metadata, text drawn as
paths (no font needed where the report is opened); glyphs DejaVu Sans lacks (Korean flow and
queue names) come from the bundled NanumGothic subset (streams/kafka/web/). The same report
gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7a8a")
SEVERITY = {"critical": "#d1242f", "warning": "#bf8700", "info": "#1f6feb"}
GRID = "#d8dee4"
TEXT = "#57606a"


@lru_cache(maxsize=1)
def _matplotlib() -> Any:
    """matplotlib, set up once for deterministic SVG (imported on first use: a replay that
    writes no HTML does not pay for it)."""
    from importlib import resources

    import matplotlib
    from matplotlib import font_manager

    font = resources.files("streams.kafka") / "web" / "wallboard-font.ttf"
    with resources.as_file(font) as path:
        font_manager.fontManager.addfont(str(path))
    matplotlib.rcParams.update({
        "svg.hashsalt": "cc-monitor", "svg.fonttype": "path",
        "font.family": ["DejaVu Sans", "CC Wallboard Sans"], "font.size": 8,
        "axes.edgecolor": GRID, "axes.labelcolor": TEXT, "xtick.color": TEXT,
        "ytick.color": TEXT, "axes.spines.top": False, "axes.spines.right": False,
        "legend.frameon": False, "path.simplify": False,
    })  # fmt: skip
    return matplotlib


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    _matplotlib()
    return Figure(figsize=(width, height), dpi=72)


def _svg(fig: Any, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None,
                                            "Type": None},
                bbox_inches="tight", pad_inches=0.05)  # fmt: skip
    text = buf.getvalue()
    start = text.index("<svg")  # inline: no XML prolog or doctype
    svg = text[start:].replace("<svg ", f'<svg role="img" aria-label="{_attr(title)}" ', 1)
    return svg.strip()


def _attr(s: str) -> str:
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _nice_top(values: Sequence[float]) -> float:
    top = float(max([v for v in values if v is not None and math.isfinite(v)] or [1.0]) or 1.0)
    mag = 10.0 ** math.floor(math.log10(top))
    for m in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if top <= m * mag:
            return m * mag
    return 10.0 * mag


def line_chart(
    labels: list[str],
    series: dict[str, list[float | None]],
    *,
    target: float | None = None,
    partial: frozenset[int] = frozenset(),
    unit: str = "",
    fmt: Callable[[float], str] | None = None,
    title: str = "",
) -> str:
    """Lines per series over ``labels``; ``partial`` indices hollow, dotted and out of the
    scale (clipped at the top if above it), ``target`` dashed."""
    fig = _figure(6.4, 2.7)
    ax = fig.add_subplot()
    n = len(labels)
    scaled: list[float] = [v for vs in series.values() for i, v in enumerate(vs)
                           if v is not None and i not in partial]  # fmt: skip
    top = _nice_top([*scaled, target or 0.0])
    for c, (name, vs) in enumerate(series.items()):
        color = PALETTE[c % len(PALETTE)]
        full = [(i, v) for i, v in enumerate(vs) if v is not None and i not in partial]
        if full:
            ax.plot([i for i, _ in full], [v for _, v in full], color=color, linewidth=1.8,
                    marker="o", markersize=3, label=name)  # fmt: skip
        part = [(i, min(v, top)) for i, v in enumerate(vs) if v is not None and i in partial]
        if part:
            ax.plot([i for i, _ in part], [v for _, v in part], linestyle="none", marker="o",
                    markersize=4, markerfacecolor="white", markeredgecolor=color,
                    label=None if full else name)  # fmt: skip
    if target is not None:
        ax.axhline(target, color="#1a7f37", linestyle=(0, (5, 4)), linewidth=1.2)
        ax.annotate(f"target {fmt(target) if fmt else f'{target:g}'}", (1.0, target),
                    xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    color="#1a7f37", fontsize=7)  # fmt: skip
    ax.set_ylim(0, top)
    ax.set_xlim(-0.5, max(n - 0.5, 0.5))
    ax.grid(True, axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    every = max(1, math.ceil(n / 6))
    ticks = [i for i in range(0, n, every) if n - 1 - i >= every or i == 0]
    if n > 1 and (n - 1) not in ticks:
        ticks.append(n - 1)
    ax.set_xticks(ticks, [labels[i] + ("*" if i in partial else "") for i in ticks])
    if fmt is not None:
        ax.yaxis.set_major_formatter(lambda v, _pos: fmt(v))
    if unit:
        ax.set_ylabel(unit)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, handlelength=1.5)
    return _svg(fig, title)


def bar_chart(bars: list[tuple[str, float]], *, title: str = "", color: str = PALETTE[1]) -> str:
    fig = _figure(6.4, max(1.0, 0.24 * len(bars) + 0.5))
    ax = fig.add_subplot()
    names = [name[:40] for name, _ in bars][::-1]
    values = [v for _, v in bars][::-1]
    ax.barh(range(len(bars)), values, color=color, height=0.7)
    ax.set_yticks(range(len(bars)), names)
    ax.set_xlim(0, _nice_top(values))
    ax.grid(True, axis="x", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,.0f}", (v, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7, color=TEXT)  # fmt: skip
    return _svg(fig, title)


def timeline_chart(alerts: list[dict[str, Any]], *, title: str = "") -> str:
    """Alerts as bars from start to end (an alert firing at the end: to the last time), one
    row per rule, coloured by severity, with a legend of the severities shown."""

    def t(s: str) -> float:
        return datetime.fromisoformat(s).timestamp()

    names = sorted({a["alertname"] for a in alerts})
    starts = [t(a["starts_at"]) for a in alerts]
    last = max(t(a["ends_at"]) if a["ends_at"] else t(a["starts_at"]) for a in alerts)
    fig = _figure(12.0, 0.26 * len(names) + 0.9)
    ax = fig.add_subplot()
    lo = min(starts)
    hours = (last - lo) / 3600 or 1.0
    seen: dict[str, Any] = {}
    for a, s in zip(alerts, starts, strict=True):
        e = t(a["ends_at"]) if a["ends_at"] else last
        y = names.index(a["alertname"])
        sev = a["severity"] if a["severity"] in SEVERITY else "info"
        bar = ax.broken_barh([((s - lo) / 3600, max((e - s) / 3600, hours / 400))],
                             (y - 0.35, 0.7), color=SEVERITY[sev])  # fmt: skip
        seen.setdefault(sev, bar)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, hours)
    ax.set_xlabel(f"hours from {alerts[0]['starts_at'][:16].replace('T', ' ')}")
    ax.grid(True, axis="x", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    order = [s for s in ("critical", "warning", "info") if s in seen]
    ax.legend([seen[s] for s in order], order, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              fontsize=7)  # fmt: skip
    return _svg(fig, title)
