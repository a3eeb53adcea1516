"""Hostile input: whatever a source sends, every record ends accepted or rejected with a reason,
nothing raises, and no timestamp can stall the engine or throw away the rest of a log."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_monitor.simulator import SimConfig, lines
from kpis.config import EngineConfig
from kpis.decode import REJECT_REASONS, Decoder, Rejection
from streams.agents import Outcome
from streams.partitioned import PartitionEngine, dead_letter_record
from streams.replay import Replay, Source
from tests.helpers import Log, replay_lines

DAY = [*lines(SimConfig(contacts_per_day=150))]
VALID = orjson.dumps(
    {"event_id": "e1", "type": "contact.started", "ts": "2026-11-02T09:00:00Z",
     "channel": "voice", "contact_id": "c1"}
)  # fmt: skip


def _mutate(line: bytes, data: st.DataObject) -> bytes:
    """One random edit of a line: a byte replaced, inserted or removed, or the line cut."""
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
    at = data.draw(st.integers(0, max(0, len(line) - 1)))
    byte = bytes([data.draw(st.integers(0, 255))])
    if kind == "replace":
        return line[:at] + byte + line[at + 1 :]
    if kind == "insert":
        return line[:at] + byte + line[at:]
    if kind == "delete":
        return line[:at] + line[at + 1 :]
    return line[:at]


def _decode_outcome(dec: Decoder, raw: bytes) -> str:
    try:
        dec.decode(raw)
    except Rejection as rej:
        assert rej.reason in REJECT_REASONS
        return rej.reason
    return "accepted"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
@pytest.mark.slow
def test_the_decoder_answers_every_mutation_of_a_valid_event(data: st.DataObject) -> None:
    line = DAY[data.draw(st.integers(0, len(DAY) - 1))]
    _decode_outcome(Decoder(), _mutate(line, data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_the_decoder_answers_random_bytes(raw: bytes) -> None:
    _decode_outcome(Decoder(), raw)


def test_invalid_utf8_and_deep_nesting_are_rejected_not_raised(tmp_path: Path) -> None:
    bad_utf8 = VALID.replace(b'"c1"', b'"c\xff1"')
    deep = b'{"a":' * 1000
    deep_inside = VALID[:-1] + b',"attributes":' + b'{"a":' * 600 + b"1" + b"}" * 600 + b"}"
    dec = Decoder()
    for raw in (bad_utf8, deep):
        assert _decode_outcome(dec, raw) == "malformed_json"
    # free-form attributes may nest; accepted or not, an answer, and a checkpoint holds it
    assert _decode_outcome(dec, deep_inside) in ("accepted", "malformed_json", "schema")
    held = PartitionEngine(0, EngineConfig(), inputs=("t",))
    held.process("t", 0, deep_inside)
    assert PartitionEngine.from_checkpoint(0, EngineConfig(), held.checkpoint(), ("t",))
    rep = replay_lines([VALID, bad_utf8, deep, b""], tmp_path)
    assert rep["events"]["accepted"] == 1
    assert rep["rejected"]["by_reason"]["malformed_json"] == 2
    # the same through a live partition: outcomes, never an exception
    pe = PartitionEngine(0, EngineConfig())
    outs = [pe.process("t", i, raw) for i, raw in enumerate([VALID, bad_utf8, deep])]
    assert [o.status for o in outs] == ["accepted", "rejected", "rejected"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
@pytest.mark.slow
def test_replay_and_a_live_partition_account_for_every_line(data: st.DataObject) -> None:
    """Random mutations of a slice of a simulated day: lines = accepted + rejected + blank in
    replay, and a live partition gives every record an outcome."""
    start = data.draw(st.integers(0, len(DAY) - 60))
    chunk = [
        _mutate(line, data) if data.draw(st.booleans()) else line
        for line in DAY[start : start + 60]
    ]
    chunk = [c.replace(b"\n", b" ") for c in chunk]  # one record a line
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rep = replay_lines(chunk, Path(tmp))
    ev = rep["events"]
    assert ev["lines"] == ev["accepted"] + ev["rejected"] + ev["blank_lines"] == len(chunk)
    pe = PartitionEngine(0, EngineConfig())
    for i, raw in enumerate(chunk):
        out = pe.process("t", i, raw)
        assert out.status in ("accepted", "rejected")


def test_a_huge_rejected_record_is_dead_lettered_cut_with_its_size_and_digest() -> None:
    value = b"x" * 1_000_000
    out = Outcome("rejected", "oversized", "1000000 bytes is over the limit of 65536")
    key, cut, headers = dead_letter_record(b"k" * 5000, value, out, 65_536)
    assert len(cut) == 65_536 and cut == value[:65_536]
    assert headers["cc-size"] == b"1000000"
    assert headers["cc-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["cc-reason"] == b"oversized"
    assert key is not None and len(key) == 1024 and "cc-key-sha256" in headers
    small_key, small, small_headers = dead_letter_record(b"k", b"{}", out, 65_536)
    assert small == b"{}" and "cc-size" not in small_headers and small_key == b"k"


def _with(line_no: int, **changes: Any) -> list[bytes]:
    ev = orjson.loads(DAY[line_no])
    ev.update(changes)
    return [*DAY[:line_no], orjson.dumps(ev), *DAY[line_no:]]


def _alerts(rep: dict[str, Any]) -> list[Any]:
    return [(a["alertname"], a["starts_at"], a["ends_at"], a["labels"]) for a in rep["alerts"]]


@pytest.mark.parametrize("ts", ["9999-12-31T00:00:00Z", "1970-01-01T00:00:00Z",
                                "0001-01-01T00:00:00+14:00"])  # fmt: skip
@pytest.mark.slow
def test_a_timestamp_out_of_range_is_rejected_and_changes_nothing(tmp_path: Path, ts: str) -> None:
    whole = replay_lines(DAY, tmp_path)
    rep = replay_lines(_with(100, event_id="far", contact_id="far", ts=ts), tmp_path)
    assert rep["rejected"]["by_reason"]["out_of_range"] == 1
    assert rep["events"]["accepted"] == whole["events"]["accepted"]
    assert rep["kpis"] == whole["kpis"] and _alerts(rep) == _alerts(whole)
    # the same as the first line of a log
    first = replay_lines([_with(0, event_id="old", contact_id="old", ts=ts)[0], *DAY], tmp_path)
    assert first["rejected"]["by_reason"]["out_of_range"] == 1
    assert first["kpis"] == whole["kpis"]


@pytest.mark.slow
def test_a_clock_a_day_ahead_does_not_make_the_rest_late_with_max_lead(tmp_path: Path) -> None:
    ev = orjson.loads(DAY[100])
    ahead = ev["ts"][:8] + f"{int(ev['ts'][8:10]) + 1:02d}" + ev["ts"][10:]
    skewed = _with(100, event_id="skewed", contact_id="skewed", ts=ahead)
    unbounded = replay_lines(skewed, tmp_path)
    assert unbounded["rejected"]["by_reason"]["late"] > len(DAY) // 2  # the failure mode
    bounded = replay_lines(skewed, tmp_path, EngineConfig(max_lead_seconds=6 * 3600))
    assert bounded["rejected"]["by_reason"]["out_of_range"] == 1
    assert bounded["rejected"]["by_reason"]["late"] == 0
    assert bounded["kpis"] == replay_lines(DAY, tmp_path)["kpis"]


def test_a_live_partition_rejects_events_far_ahead_of_the_wall_clock() -> None:
    pe = PartitionEngine(0, EngineConfig())
    now = orjson.loads(DAY[0])["ts"]
    from datetime import datetime

    t0 = datetime.fromisoformat(now).timestamp()
    assert pe.process("t", 0, DAY[0], now=t0).status == "accepted"
    ahead = orjson.loads(DAY[1])
    ahead["ts"] = "2026-12-31T00:00:00Z"
    out = pe.process("t", 1, orjson.dumps(ahead), now=t0)
    assert (out.status, out.reason) == ("rejected", "out_of_range")
    assert pe.engine.max_ts == t0  # it moved nothing


def _gappy_log() -> list[bytes]:
    """Two busy hours, a gap of three days with a contact left waiting and a component down,
    then another busy hour: oldest-wait, component and silence rules all act in the gap."""
    log = Log()
    t = 0.0
    for i in range(120):
        c = f"a{i}"
        log.add(t, "contact.started", c, tenant="bank")
        log.add(t + 1, "queue.entered", c, tenant="bank", queue="cards")
        log.add(t + 20, "agent.connected", c, tenant="bank", queue="cards", agent_id="x")
        log.add(t + 200, "contact.ended", c, tenant="bank", ended_by="agent")
        log.add(t + 230, "wrapup.ended", c, tenant="bank", agent_id="x")
        t += 60
    log.add(t, "contact.started", "stuck", tenant="bank")
    log.add(t + 1, "queue.entered", "stuck", tenant="bank", queue="cards")
    log.add(t + 2, "system.status", "-", tenant="bank", component="trunk", status="down")
    t += 3 * 86400
    log.add(t, "system.status", "-", tenant="bank", component="trunk", status="up")
    for i in range(60):
        c = f"b{i}"
        log.add(t + i * 60, "contact.started", c, tenant="bank")
        log.add(t + i * 60 + 5, "contact.ended", c, tenant="bank", ended_by="customer")
    return log.lines()


def _replay(lines_: list[bytes], tmp: Path, jump: bool, config: EngineConfig) -> tuple[Any, int]:
    path = tmp / f"gap-{jump}.jsonl"
    path.write_bytes(b"".join(x + b"\n" for x in lines_))
    rep = Replay(config, __import__("zoneinfo").ZoneInfo("UTC"))
    rep.engine.core.jump = jump
    rep.stage.jump = jump
    calls = 0
    on_tick = rep.stage.logic.on_tick

    def counted(at: float) -> None:
        nonlocal calls
        calls += 1
        on_tick(at)

    rep.stage.logic.on_tick = counted  # type: ignore[method-assign]
    return rep.run([Source(str(path))]), calls


def test_jumping_over_empty_time_gives_the_alerts_of_ticking_through_it(tmp_path: Path) -> None:
    log = _gappy_log()
    config = EngineConfig()
    jumped, n_jumped = _replay(log, tmp_path, True, config)
    ticked, n_ticked = _replay(log, tmp_path, False, config)
    jumped.pop("input"), ticked.pop("input")  # the file names differ
    assert jumped == ticked  # the whole report, alerts with their times included
    names = {a["alertname"] for a in jumped["alerts"]}
    assert {"oldest_wait_high", "component_down"} <= names
    assert n_ticked > 4000 and n_jumped < n_ticked / 5  # three days of minutes, mostly skipped


def test_a_gap_of_centuries_costs_work_not_time(tmp_path: Path) -> None:
    log = _gappy_log()
    late = orjson.loads(log[-1])
    late.update(event_id="far", contact_id="far", ts="2399-01-01T00:00:00Z")
    config = EngineConfig(latest_event_time="2400-01-01T00:00:00Z")
    rep, calls = _replay([*log, orjson.dumps(late)], tmp_path, True, config)
    assert rep["events"]["accepted"] == len(log) + 1
    assert calls < 5000  # 195 million minute ticks in the gap


def test_a_truncated_gzip_and_a_byte_order_mark(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(x + b"\n" for x in DAY[:500]))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    rep = Replay(EngineConfig(), __import__("zoneinfo").ZoneInfo("UTC")).run([Source(str(cut))])
    assert rep["rejected"]["by_reason"]["unreadable"] == 1
    assert 0 < rep["events"]["accepted"] < 500
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b"".join(x + b"\n" for x in DAY[:50]))
    rep = Replay(EngineConfig(), __import__("zoneinfo").ZoneInfo("UTC")).run([Source(str(bom))])
    assert rep["events"]["accepted"] == 50


def test_produce_pseudonymizes_customer_and_agent_ids_once() -> None:
    from streams.inputs.privacy import Pseudonymizer
    from streams.kafka.producer import pseudonymized

    p = Pseudonymizer("k")
    raw = orjson.dumps({**orjson.loads(VALID), "customer_id": "cu123", "agent_id": "ann"})
    rec, _ = Decoder().decode(raw)
    out = orjson.loads(pseudonymized(raw, rec, p))
    assert out["customer_id"] == p("cu123") and out["agent_id"] == p("ann")
    assert out["contact_id"] == "c1"  # contact ids stay (they are what audits trace)
    again = orjson.dumps(out)
    assert pseudonymized(again, Decoder().decode(again)[0], p) == again
    assert pseudonymized(VALID, Decoder().decode(VALID)[0], p) == VALID


def test_live_commands_never_hash_with_an_empty_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cc_monitor.settings
    from cc_monitor.settings import load_settings
    from streams.inputs.privacy import Pseudonymizer

    monkeypatch.setattr(cc_monitor.settings, "_WARNED", [])  # a run of its own

    settings = load_settings()
    settings = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"data_dir": tmp_path})}
    )
    replayed = settings.pseudonymizer(live=False)
    assert "warning" in capsys.readouterr().err
    assert replayed("x") == Pseudonymizer("")("x")
    live = settings.pseudonymizer(live=True)
    key = (tmp_path / "pseudonym.key").read_text().strip()
    assert len(key) == 64 and live("x") == Pseudonymizer(key)("x") != replayed("x")
    assert (tmp_path / "pseudonym.key").stat().st_mode & 0o077 == 0
    # the kept key is used from then on, by replays too
    assert settings.pseudonymizer(live=False)("x") == live("x")
