"""Repeat contacts (kpis.rules.repeats): a customer back within the window makes their
previous contact a repeated one, counted where it belongs, per reason too; bounded memory."""

from __future__ import annotations

import orjson
import pytest

from kpis.config import EngineConfig
from kpis.decode import Decoder
from kpis.engine import Engine
from streams.partitioned import partition_doc, replay_partitioned
from streams.sinks.metrics import MetricsSink
from tests.builders import call, kpi_total, report, totals

pytestmark = pytest.mark.unit
DAY = 86_400.0


def test_a_customer_back_within_the_window_repeats_the_earlier_contact() -> None:
    lines = [
        *call("c1", 0, customer_id="cust-a", wrap=["fee"]),
        *call("c2", 2 * DAY, customer_id="cust-a", queue="billing", case_id="other-case"),
        *call("c3", 10 * DAY, customer_id="cust-a"),  # 8 days after c2: not a repeat of it
        *call("c4", 10 * DAY + 1000, customer_id="cust-b", wrap=["lost_card"]),
        *call("c5", 10 * DAY + 2000),  # no customer id: not judged
    ]
    rep = report(lines)
    total = kpi_total(rep)
    assert total["contacts_identified"] == 4 and total["contacts_repeated"] == 1
    assert total["repeat_rate"] == 0.25
    # counted on the repeated contact's labels (cards), not the repeat's (billing)
    cards = next(r for r in rep["kpis"] if r["period"] == "total" and r["queue"] == "cards"
                 and r["tenant"] == "bank")["metrics"]  # fmt: skip
    assert cards["contacts_repeated"] == 1
    t = totals(rep)
    assert t["fee"]["reason_repeated"] == 1 and t["fee"]["reason_repeat_rate"] == 1.0
    assert t["lost_card"]["reason_repeated"] == 0 and t["lost_card"]["reason_repeat_rate"] == 0.0
    assert rep["examples"]["contacts_repeated"] == ["c1"]


def test_outbound_contacts_and_a_zero_window_are_not_repeats() -> None:
    lines = [*call("c1", 0, customer_id="cust-a"),
             *call("c2", 1000, customer_id="cust-a", direction="outbound")]  # fmt: skip
    assert kpi_total(report(lines))["contacts_repeated"] == 0
    back = [*call("c1", 0, customer_id="cust-a"), *call("c2", 1000, customer_id="cust-a")]
    assert kpi_total(report(back))["contacts_repeated"] == 1
    off = kpi_total(report(back, EngineConfig(repeat_window_seconds=0)))
    assert (off["contacts_repeated"], off["contacts_identified"], off["repeat_rate"]) == (
        0,
        0,
        None,
    )


def test_memory_is_bounded_by_the_window_and_the_cap() -> None:
    config = EngineConfig(repeat_window_seconds=DAY, max_repeat_customers=50)
    sink = MetricsSink()
    eng = Engine(config, sink)
    dec = Decoder()
    for i in range(400):  # 400 customers, one every 20 minutes: about 72 a day
        for line in call(f"c{i}", i * 1200.0, customer_id=f"cust-{i}"):
            eng.ingest(*dec.decode(line))
    kept = len(eng.repeats.recent) + len(eng.repeats._old)
    over = sum(v for (n, _), v in sink.counters.items() if n == "dq_repeat_over_cap")
    print(f"\n400 customers in 5.6 days, window 1 day, cap 50: {kept} kept, {over:.0f} over cap")
    assert kept <= 50 and over > 0
    bigger = Engine(EngineConfig(repeat_window_seconds=DAY), MetricsSink())
    for i in range(400):
        for line in call(f"c{i}", i * 1200.0, customer_id=f"cust-{i}"):
            bigger.ingest(*dec.decode(line))
    kept = len(bigger.repeats.recent) + len(bigger.repeats._old)
    assert kept <= 2 * 72 + 2  # one to two windows of customers, whatever the log's length


def test_live_partitions_show_no_partial_repeats_and_a_checkpoint_keeps_the_customers() -> None:
    """A live partition sees the cases that hash to it, not all of a customer's: it measures
    no repeats (no series at all, rather than partial ones); a replay's engine does, and its
    checkpoint keeps the customers it remembers."""
    lines: list[bytes] = []
    for i in range(60):  # 20 customers, each back twice, across cases and queues
        queue = ("cards", "billing")[i % 2]
        lines += call(f"c{i}", i * 400.0, customer_id=f"cust-{i % 20}", case_id=f"k{i}",
                      queue=queue, wrap=[("fee", "lost_card")[i % 2]])  # fmt: skip
    one = MetricsSink()
    eng = Engine(EngineConfig(), one)
    dec = Decoder()
    for line in lines:
        eng.ingest(*dec.decode(line))
    eng.flush()
    assert one.counters[("contacts_repeated", ("bank", "voice", "cards"))] == 20
    assert one.counters[("reason_repeated", ("bank", "voice", "cards", "fee"))] == 20
    engines = replay_partitioned(lines, 3, EngineConfig())
    names = {n for pe in engines.values() for n, _, _ in partition_doc(pe)["counters"]}
    assert "contacts_coded" in names
    assert not {n for n in names if "repeat" in n or n == "contacts_identified"}
    snap = orjson.loads(orjson.dumps(eng.snapshot()))
    again = Engine(EngineConfig(), MetricsSink())
    again.restore(snap)
    assert again.repeats.recent.keys() == (eng.repeats.recent.keys() | eng.repeats._old.keys())
    assert again.snapshot()["repeats"] == eng.snapshot()["repeats"]
