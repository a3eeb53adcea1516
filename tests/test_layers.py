"""Checks that keep the structure true: imports point one way down the layers, and every
series a rule emits is declared in the catalogue. Both read the source, so they fail the
moment a change breaks them, whatever the tests exercise."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpis.catalogue import lookup

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("kpis", "alerts", "streams", "cc_monitor")
"""Bottom to top: a module may import its own layer and the layers below it, never above."""


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):  # every import, also inside functions and TYPE_CHECKING
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def layer_violations() -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    out = []
    for package in LAYERS:
        for path in _modules(package):
            for line, module in _imports(path):
                top = module.split(".")[0]
                if top in rank and rank[top] > rank[package]:
                    out.append(f"{path.relative_to(ROOT)}:{line} imports {module} (up)")
    return out


def test_imports_point_one_way_down_the_layers() -> None:
    assert layer_violations() == []


def cross_test_imports(root: Path) -> list[str]:
    """Test modules never import one another: what they share is in tests/helpers.py,
    tests/fakes.py and tests/builders.py (a test module imported elsewhere runs its module-level
    set-up twice and makes one module's refactor break another's tests)."""
    base = root / "tests"
    found = [f"{path.name}:{line} imports {module}"
             for path in sorted(base.glob("*.py"))
             for line, module in _imports(path)
             if module.startswith("tests.test_")]  # fmt: skip
    return found


def test_no_test_module_imports_another() -> None:
    assert cross_test_imports(ROOT) == []


def test_the_test_import_check_sees_one(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_b.py").write_text("from tests.test_a import day\n")
    assert cross_test_imports(tmp_path) == ["test_b.py:1 imports tests.test_a"]


def test_the_layer_check_sees_an_import_that_points_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check itself: a kpis module that imports streams is found."""
    for package in LAYERS:
        (tmp_path / package).mkdir()
    (tmp_path / "kpis" / "bad.py").write_text("def f():\n    from streams.replay import Replay\n")
    (tmp_path / "streams" / "ok.py").write_text("import kpis.engine\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert layer_violations() == ["kpis/bad.py:2 imports streams.replay (up)"]


SINK_CALLS = frozenset({"count", "observe", "gauge"})


def emitted_series(root: Path) -> Iterator[tuple[str, int, str]]:
    """``(file, line, series)`` of every ``<sink>.count / observe / gauge("name", ...)`` with a
    literal name in the engine (kpis/) and in the alert stage's staffing view."""
    for path in [*sorted((root / "kpis").rglob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in SINK_CALLS or not node.args:
                continue
            target = node.func.value
            sink = isinstance(target, ast.Attribute) and target.attr == "sink"
            first = node.args[0]
            if sink and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield str(path.relative_to(root)), node.lineno, first.value


def test_every_series_a_rule_emits_is_declared() -> None:
    found = list(emitted_series(ROOT))
    assert len(found) > 50  # the scan sees the rules' emissions (a broken scan finds none)
    undeclared = [f"{f}:{line} {name}" for f, line, name in found if lookup(name) is None]
    assert undeclared == []


def test_the_series_check_sees_an_undeclared_series(tmp_path: Path) -> None:
    (tmp_path / "kpis").mkdir()
    (tmp_path / "kpis" / "r.py").write_text(
        "class R:\n    def on(self, ts):\n        self.sink.count('no_such_series', (), ts)\n"
    )
    assert list(emitted_series(tmp_path)) == [("kpis/r.py", 3, "no_such_series")]
    assert lookup("no_such_series") is None


def test_the_metrics_page_is_generated_and_current() -> None:
    from cc_monitor.metricsdoc import render

    assert (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8") == render(), (
        "docs/metrics.md is not current: run .venv/bin/python scripts/metrics_doc.py"
    )


@pytest.mark.slow
def test_every_metric_a_live_worker_exports_is_on_the_metrics_page() -> None:
    """A worker with alert rules and live agent states over a simulated day: every family
    of its /metrics is a row of docs/metrics.md (and every row's name is well formed)."""
    import random

    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from alerts.rules import RulesConfig
    from cc_monitor.metricsdoc import engine_rows, worker_rows
    from streams.kafka.checkpoint import MemoryCheckpoints
    from tests.fakes import AgentsTopic, Consumer, day, records_by_tp, runtime

    data = records_by_tp(day(), 2)
    rt = runtime(MemoryCheckpoints(), 2, rules=RulesConfig(), agents=AgentsTopic(data, 2))
    consumer = Consumer(data, {})
    consumer.run(rt, {0, 1}, random.Random(2))
    consumer.quiesce(rt)
    rt.report_lag("calls", 0, 10**6)
    documented = {name for name, *_ in [*engine_rows(), *worker_rows()]}
    exported = set()
    for fam in text_string_to_metric_families(generate_latest(rt.registry).decode()):
        if fam.name.endswith("_created"):
            continue  # prometheus_client's creation times of counters and histograms
        exported.add(fam.name + ("_total" if fam.type == "counter" else ""))
    assert len(exported) > 60
    assert exported - documented == set()


def test_the_shipped_font_has_every_character_the_pages_show() -> None:
    """The wallboard and the HTML report render Korean on a machine without Korean fonts
    only if the font subset they embed (scripts/wallboard_font.py) has each character their
    text uses: text added without running the script again would show as empty boxes there."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(ROOT / "streams" / "kafka" / "web" / "wallboard-font.ttf")).getBestCmap()
    for name in ("streams/kafka/web/wallboard.html", "kpis/scorecard.py", "cc_monitor/html.py",
                 "cc_monitor/render.py"):  # fmt: skip
        text = (ROOT / name).read_text(encoding="utf-8")
        missing = sorted({c for c in text if ord(c) > 126 and ord(c) not in cmap})
        assert not missing, (
            f"{name}: {''.join(missing)} not in the font: run .venv/bin/python "
            "scripts/wallboard_font.py"
        )
