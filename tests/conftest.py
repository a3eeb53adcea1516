"""Test tiers. ``integration``: runs a real broker (Tansu), redis-server, Prometheus,
Alertmanager or Chromium, so it needs the Debian packages the test command installs and takes
seconds to minutes. ``slow``: pure, but replays simulated days or runs workers in process
(half a second or more each, as measured with ``--durations``). ``unit``: the rest, the inner
loop, under a minute:

    .venv/bin/python -m pytest -m unit

A module whose every test uses a real component is listed in ``INTEGRATION_MODULES``; a single
test elsewhere carries ``@pytest.mark.integration`` itself, a slow one ``@pytest.mark.slow``.
Every other test is ``unit``.
"""

from __future__ import annotations

import pytest

INTEGRATION_MODULES = frozenset(
    {
        "test_deploy",  # promtool, prometheus, amtool; a worker scraped by Prometheus
        "test_delivery",  # prometheus-alertmanager
        "test_kafka_produce",  # Tansu
        "test_live_worker",  # Tansu, redis-server, Alertmanager, worker processes
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in INTEGRATION_MODULES and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("integration") is None and (
            item.get_closest_marker("slow") is None
        ):
            item.add_marker(pytest.mark.unit)
