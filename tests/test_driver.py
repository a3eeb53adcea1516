"""The aiokafka driver's own parts that need no broker: which offsets it commits, and what
its web server serves (the broker-facing rest: tests/test_live_worker.py, on a real broker)."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest
from aiokafka import TopicPartition
from yarl import URL

from alerts.rules import RulesConfig
from streams.kafka.app import runbooks_page, wallboard_page
from streams.kafka.checkpoint import MemoryCheckpoints
from streams.kafka.driver import Acks, RecordAck, web_app
from tests.fakes import Consumer, day, records_by_tp, runtime


def test_the_commit_offset_follows_the_highest_acknowledged_record() -> None:
    acks = Acks()
    a, b = TopicPartition("cc.calls", 0), TopicPartition("cc.calls", 1)
    for offset in (0, 1, 2, 5, 3):  # a checkpoint covers every record below its offsets
        RecordAck(acks, a, offset)()
    RecordAck(acks, b, 7)()
    assert acks.due({a, b}) == {a: 6, b: 8}
    assert acks.due({a}) == {a: 6}
    acks.committed.update({a: 6})
    assert acks.due({a, b}) == {b: 8}
    RecordAck(acks, a, 4)()  # a redelivered record below: the offset never goes back
    assert acks.due({a}) == {}
    acks.forget({a})
    assert acks.due({a, b}) == {b: 8} and a not in acks.done


@pytest.mark.slow
def test_the_web_server_serves_the_worker_views_and_nothing_else() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    data = records_by_tp(day()[:3000], 2)
    rt = runtime(MemoryCheckpoints(), 2)
    Consumer(data, {}).run(rt, {0, 1}, random.Random(1))
    asyncio.run(rt.tick())

    async def check() -> None:
        client = TestClient(TestServer(web_app(rt, wallboard_page(), runbooks_page())))
        await client.start_server()
        try:
            health = await client.get("/health")
            assert health.status == 200 and health.content_type == "application/json"
            assert orjson.loads(await health.read())["partitions"] == [0, 1]
            kpis = orjson.loads(await (await client.get("/api/kpis")).read())
            assert kpis["partitions"]["covered"] == [0, 1]
            metrics = await client.get("/metrics")
            assert b"cc_contacts_total" in await metrics.read()
            page = await client.get("/wallboard")
            assert page.headers["Cache-Control"] == "no-cache"
            # an alert's runbook link, relative to the wallboard as the default rules make it
            link = RulesConfig().runbook_url + "#abandonment-high"
            book = await client.get(page.url.join(URL(link)).path)
            assert book.status == 200 and book.content_type == "text/html"
            text = await book.text()
            assert '<h2 id="abandonment-high">abandonment-high</h2>' in text
            for rule in RulesConfig().rules:  # every rule's link has its section
                assert f'id="{rule.replace("_", "-")}"' in text, rule
            for other in ("/", "/router/", "/table/", "/api/kpis/../../etc"):
                assert (await client.get(other)).status == 404, other
        finally:
            await client.close()

    asyncio.run(check())
