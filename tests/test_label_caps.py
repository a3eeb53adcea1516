"""Label values stay bounded whatever the sources send (kpis.rules.labels): past each
dimension's cap a value becomes `other`, counted as data quality, shown as a digest only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from kpis.config import EngineConfig, LabelCaps, NamedFlow
from kpis.decode import Decoder
from kpis.engine import Engine
from kpis.rules.labels import OTHER, digest
from kpis.targets import TargetRule
from streams.sinks.metrics import MetricsSink

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()
CAPS = LabelCaps(tenants=2, queues_per_tenant=3, queues=5, flows_per_tenant=2, menus_per_flow=2,
                 menus=3, components=2)  # fmt: skip


def ev(kind: str, cid: str, at: float, **fields: Any) -> bytes:
    return orjson.dumps({"event_id": f"{cid}-{kind}-{at}", "type": kind, "contact_id": cid,
                         "ts": datetime.fromtimestamp(T0 + at, UTC).isoformat(),
                         "channel": "voice", **fields})  # fmt: skip


def run(lines: list[bytes], config: EngineConfig | None = None) -> tuple[Engine, MetricsSink]:
    sink = MetricsSink()
    eng = Engine(config or EngineConfig(label_caps=CAPS), sink)
    dec = Decoder()
    for line in lines:
        eng.ingest(*dec.decode(line))
    eng.core.flush()
    return eng, sink


def queued(i: int, tenant: str, queue: str) -> list[bytes]:
    cid = f"c{i}"
    return [ev("contact.started", cid, i, tenant=tenant, queue=queue),
            ev("queue.entered", cid, i + 0.5, tenant=tenant, queue=queue)]  # fmt: skip


def values(sink: MetricsSink, name: str, index: int) -> set[str]:
    return {lb[index] for (n, lb) in sink.counters if n == name}


def test_queues_past_their_caps_fold_into_other_and_are_counted() -> None:
    lines = [x for i in range(40) for x in queued(i, "bank", f"call-id-{i:04d}")]
    eng, sink = run(lines)
    assert values(sink, "queued", 2) == {"call-id-0000", "call-id-0001", "call-id-0002", OTHER}
    folded = sink.counters[("dq_label_folded_queue", ("bank", "voice", OTHER))]
    assert folded == 37 * 2  # both events of each folded contact
    assert eng.labels.folded_examples() == {
        "queue": [digest("call-id-0003"), digest("call-id-0004"), digest("call-id-0005")]
    }
    assert "call-id-0003" not in repr(eng.labels.folded_examples())
    # every later value folds the same way; the first ones stay themselves
    assert sink.counters[("queued", ("bank", "voice", "call-id-0001"))] == 1
    assert sink.counters[("queued", ("bank", "voice", OTHER))] == 37


def test_tenants_and_the_queues_of_all_tenants_have_caps_too() -> None:
    lines = [x for i in range(12) for x in queued(i, f"t{i % 4}", f"q{i}")]
    _, sink = run(lines)
    tenants = values(sink, "queued", 0)
    assert tenants == {"t0", "t1", OTHER}
    # never more than 5 queues in all, 3 per tenant (other counts as a tenant of its own)
    pairs = {(lb[0], lb[2]) for (n, lb) in sink.counters if n == "queued" and lb[2] != OTHER}
    assert len(pairs) <= 5 and all(sum(1 for t, _ in pairs if t == x) <= 3 for x in tenants)
    # a count of a folded tenant carries no value it folded
    for n, lb in sink.counters:
        if n.startswith("dq_label_folded"):
            assert lb[0] in {"t0", "t1", OTHER} and lb[2] in {*{q for _, q in pairs}, OTHER}


def test_queues_a_target_names_are_always_kept() -> None:
    config = EngineConfig(label_caps=CAPS, targets=(TargetRule(tenant="bank", queue="vip"),
                                                    TargetRule(queue="complaints")))  # fmt: skip
    lines = [x for i in range(10) for x in queued(i, "bank", f"noise{i}")]
    lines += queued(100, "bank", "vip") + queued(101, "bank", "complaints")
    _, sink = run(lines, config)
    assert {"vip", "complaints", OTHER} <= values(sink, "queued", 2)


def ivr_lines(n: int, flow: str = "flow0") -> list[bytes]:
    """n contacts, each entering a flow of its own (f0, f1, ...) and a menu of its own in
    ``flow``."""
    out = []
    for i in range(n):
        cid = f"v{i}"
        out += [ev("contact.started", cid, i, tenant="bank"),
                ev("ivr.entered", cid, i + 0.1, tenant="bank", flow=f"f{i}"),
                ev("ivr.menu", cid, i + 0.2, tenant="bank", flow=flow, menu=f"m{i}",
                   level=1)]  # fmt: skip
    return out


def ivr_values(sink: MetricsSink, index: int) -> set[str]:
    return {lb[index] for (n, lb) in sink.counters if n.startswith("ivr_") and len(lb) > index}


def test_flows_and_menus_an_ivr_flow_file_names_are_kept_or_the_only_ones() -> None:
    named = (NamedFlow(flow="f5", menus=("m7", "m8")), NamedFlow(flow="f6", tenant="card"),
             NamedFlow(flow="flow0", menus=("m9",), tenant="bank"))  # fmt: skip
    _, sink = run(ivr_lines(10), EngineConfig(label_caps=CAPS.model_copy(
        update={"ivr_flows": named})))  # fmt: skip
    # outside the caps: the first two flows and menus, and the named ones (f6: another tenant's)
    assert ivr_values(sink, 2) == {"f0", "f1", "f5", "flow0", OTHER}
    assert ivr_values(sink, 3) - {"-"} == {"m0", "m1", "m9", OTHER}  # m7, m8: of f5, not flow0
    only = CAPS.model_copy(update={"ivr_flows": named, "configured_only": True})
    eng, sink = run(ivr_lines(10), EngineConfig(label_caps=only))
    assert ivr_values(sink, 2) == {"f5", "flow0", OTHER}
    assert ivr_values(sink, 3) - {"-"} == {"m9", OTHER}
    assert eng.labels.folded_examples()["flow"][0] == digest("f0")


def test_flows_menus_components_and_transfers() -> None:
    lines = []
    for i in range(6):
        cid = f"i{i}"
        lines += [ev("contact.started", cid, i, tenant="bank"),
                  ev("ivr.entered", cid, i + 0.1, tenant="bank", flow=f"flow{i % 3}"),
                  ev("ivr.menu", cid, i + 0.2, tenant="bank", flow="flow0", menu=f"m{i}", level=1),
                  ev("system.status", cid, i + 0.3, tenant="bank", component=f"c{i}",
                     status="up"),
                  ev("contact.transferred", cid, i + 0.4, tenant="bank", queue="a",
                     to_queue=f"to{i}")]  # fmt: skip
    eng, sink = run(lines)
    ivr = {lb for (n, lb) in sink.counters if n.startswith("ivr_")}
    assert {lb[2] for lb in ivr} <= {"flow0", "flow1", OTHER}  # (tenant, channel, flow, menu)
    assert {lb[3] for lb in ivr if len(lb) > 3} <= {"m0", "m1", OTHER, "-"}
    comps = {lb[1] for (n, lb) in sink.counters if n == "system_reports"}
    assert comps == {"c0", "c1", OTHER}
    kinds = {n for (n, _) in sink.counters if n.startswith("dq_label_folded_")}
    assert kinds >= {"dq_label_folded_flow", "dq_label_folded_menu", "dq_label_folded_component",
                     "dq_label_folded_queue"}  # fmt: skip
    # a checkpoint keeps what was admitted: a restored engine folds the same way
    again = Engine(EngineConfig(label_caps=CAPS), MetricsSink())
    again.restore(orjson.loads(orjson.dumps(eng.snapshot())))
    assert again.labels.snapshot(False) == eng.labels.snapshot(False)
    assert again.labels.totals == eng.labels.totals


def test_state_follows_the_caps_not_the_input() -> None:
    lines = [x for i in range(20_000) for x in queued(i, f"tenant-{i}", f"queue-{i}")]
    eng, sink = run(lines, EngineConfig())
    caps = EngineConfig().label_caps
    admitted = sum(len(v) for v in eng.labels.queues.values())
    assert len(eng.labels.tenants) == caps.tenants and admitted <= caps.queues
    assert len({lb for (n, lb) in sink.counters if n == "queued"}) <= caps.queues + caps.tenants + 1
    print(f"20,000 distinct tenants and queues: {len(eng.labels.tenants)} tenants, "
          f"{admitted} queues kept, "
          f"{sink.counters[('dq_label_folded_tenant', (OTHER, 'voice', OTHER))]:.0f} events "
          "folded")  # fmt: skip


def test_a_live_worker_says_what_it_folded_and_never_the_values() -> None:
    import random

    from prometheus_client import generate_latest

    from streams.kafka.checkpoint import MemoryCheckpoints
    from tests.fakes import Consumer, records_by_tp, runtime

    lines = tuple(x for i in range(60) for x in queued(i, "bank", f"call-id-{i:04d}"))
    rt = runtime(MemoryCheckpoints(), 2, config=EngineConfig(label_caps=CAPS))
    consumer = Consumer(records_by_tp(lines, 2), {})
    consumer.run(rt, {0, 1}, random.Random(1))
    consumer.quiesce(rt)
    health = rt.views.health()
    problems: Any = health["problems"]
    folded = [p for p in problems if "folded" in p]
    assert health["status"] == "degraded" and len(folded) == 1 and "queue: " in folded[0]
    metrics = generate_latest(rt.registry).decode()
    for text in (str(health), metrics, str(rt.views.kpis())):
        assert "call-id-0050" not in text  # folded: neither a label nor shown
    from cc_monitor.metricsdoc import engine_rows

    assert "cc_label_values_folded_total" in {name for name, *_ in engine_rows()}  # documented
    total = sum(rt.registry.get_sample_value(
        "cc_label_values_folded_total", {"dimension": "queue", "partition": str(p)}) or 0
        for p in (0, 1))  # fmt: skip
    # each partition keeps its own first three (per tenant) and folds the rest
    all_rows: Any = rt.views.kpis()["kpis"]
    kept = {r["queue"] for r in all_rows if r["tenant"] == "bank"}
    assert total == 2 * (60 - (len(kept) - 2)) and OTHER in kept and len(kept) <= 2 * 3 + 2


def test_ids_kept_in_memory_have_their_caps() -> None:
    """Open contacts, cases and callbacks past their settings are not kept (counted as data
    quality); agents past their cap are folded like labels."""
    config = EngineConfig(max_open_contacts=5, max_open_cases=4, max_open_callbacks=2,
                          label_caps=LabelCaps(agents=3))  # fmt: skip
    lines = []
    for i in range(10):
        cid = f"k{i}"
        lines += [ev("contact.started", cid, i, tenant="bank", queue="q"),
                  ev("queue.entered", cid, i + 0.1, tenant="bank", queue="q"),
                  ev("callback.requested", cid, i + 0.2, tenant="bank", queue="q",
                     callback_id=f"cb{i}"),
                  ev("agent.connected", cid, i + 0.3, tenant="bank", queue="q",
                     agent_id=f"agent-{i}")]  # fmt: skip
    eng, sink = run(lines, config)
    assert len(eng.contacts.contacts) == 5 and len(eng.cases.cases) <= 4
    assert len(eng.callbacks.callbacks) <= 2
    dq = {n: v for (n, _), v in sink.counters.items() if n.startswith("dq_")}
    # every event that would have opened one of the five contacts (a callback request does not)
    assert dq["dq_contact_over_cap"] == 5 * 3
    assert dq["dq_case_over_cap"] >= 1 and dq["dq_callback_over_cap"] >= 1
    handled = {lb[1] for (n, lb) in sink.counters if n == "agent_handled"}
    assert handled <= {"agent-0", "agent-1", "agent-2", OTHER} and len(handled) <= 4
    assert "agent" in eng.labels.folded_examples() or len(handled) <= 3


def test_a_live_worker_says_when_open_contacts_are_at_their_cap() -> None:
    import random

    from streams.kafka.checkpoint import MemoryCheckpoints
    from tests.fakes import Consumer, records_by_tp, runtime

    lines = tuple(x for i in range(60) for x in queued(i, "bank", "q"))
    rt = runtime(MemoryCheckpoints(), 2, config=EngineConfig(max_open_contacts=10))
    consumer = Consumer(records_by_tp(lines, 2), {})
    consumer.run(rt, {0, 1}, random.Random(1))
    consumer.quiesce(rt)
    problems = rt.views.health()["problems"]
    assert any("open contacts at engine.max_open_contacts (10)" in p for p in problems), problems
    rows: Any = rt.views.kpis()["kpis"]
    key = ("bank", "voice", "q")
    waiting = next(r["metrics"]["contacts_waiting"] for r in rows
                   if (r["tenant"], r["channel"], r["queue"]) == key)  # fmt: skip
    assert waiting == 20  # ten a partition, the rest not tracked


def test_configured_only_folds_live_partitions_and_a_replay_alike() -> None:
    """With the lists from the target rules, what becomes `other` depends on the configuration
    alone: three partitions give the single engine's series exactly, far past any cap."""
    from streams.partitioned import merged, replay_partitioned

    caps = LabelCaps(configured_only=True, tenants=1, queues_per_tenant=1)
    config = EngineConfig(label_caps=caps, targets=(
        TargetRule(tenant="bank", queue="cards"), TargetRule(tenant="bank", queue="loans"),
        TargetRule(tenant="shop"), TargetRule(queue="complaints")))  # fmt: skip
    names = ["cards", "loans", "complaints", "noise-1", "noise-2", "noise-3"]
    lines = tuple(x for i in range(120) for x in queued(
        i, ["bank", "shop", "intruder"][i % 3], names[(i // 3) % len(names)]))  # fmt: skip
    _, single = run(list(lines), config)
    parts = replay_partitioned(lines, 3, config)
    live = merged(pe.metrics for pe in parts.values())
    assert live.counters == single.counters
    kept = {(lb[0], lb[2]) for (n, lb) in single.counters if n == "queued"}
    # bank: its two queues and the one named for every tenant; shop has only that one listed
    assert kept == {("bank", "cards"), ("bank", "loans"), ("bank", "complaints"),
                    ("bank", OTHER), ("shop", "complaints"), ("shop", OTHER),
                    (OTHER, "complaints"), (OTHER, OTHER)}  # fmt: skip


@pytest.mark.parametrize(
    ("env", "value", "why"),
    [
        ("CC_MONITOR_ENGINE__LABEL_CAPS__QUEUES", "0", "greater than or equal to 1"),
        ("CC_MONITOR_ENGINE__LABEL_CAPS__TENANTS", "-5", "greater than or equal to 1"),
        ("CC_MONITOR_ENGINE__LABEL_CAPS__MENUS", "lots", "valid integer"),
        ("CC_MONITOR_ENGINE__LABEL_CAPS__QUEUS", "5", "did you mean 'queues'"),
        ("CC_MONITOR_ENGINE__MAX_OPEN_CONTACTS", "0", "greater than or equal to 1"),
        ("CC_MONITOR_ENGINE__LABEL_CAPS__CONFIGURED_ONLY", "perhaps", "valid boolean"),
    ],
)
def test_a_bad_cap_setting_is_refused_in_one_line(
    env: str, value: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cc_monitor.settings import SettingsError, load_settings

    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert why in str(e.value) and "\n" not in str(e.value).strip(), str(e.value)
