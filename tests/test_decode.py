"""The decoder: bad input gets a reason, and the fast path agrees with pydantic."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kpis import decode as decode_mod
from kpis.decode import Decoder, Rejection
from kpis.events import EVENT_TYPES, MODELS_BY_TYPE, json_schema
from kpis.wire import TYPE_OF, IvrMenu
from tests.helpers import Log, replay_lines, row

GOOD = {
    "event_id": "e1",
    "type": "queue.entered",
    "ts": "2026-11-02T09:00:00.250+09:00",
    "channel": "voice",
    "contact_id": "c1",
    "queue": "billing",
}


def reason(raw: bytes, **kw: Any) -> str:
    with pytest.raises(Rejection) as err:
        Decoder(**kw).decode(raw)
    return err.value.reason


def test_reasons_for_bad_input() -> None:
    assert reason(b'{"event_id": "e1", "type": ') == "malformed_json"
    assert reason(b"[1, 2]") == "schema"
    assert reason(orjson.dumps(dict(GOOD, ts="2026-11-02T09:00:00"))) == "naive_timestamp"
    assert reason(orjson.dumps(dict(GOOD, type="contact.teleported"))) == "unknown_type"
    assert reason(orjson.dumps({k: v for k, v in GOOD.items() if k != "queue"})) == "schema"
    assert reason(orjson.dumps(dict(GOOD, ts=1_700_000_000))) == "schema"  # not RFC 3339
    assert reason(orjson.dumps(dict(GOOD, channel="fax"))) == "schema"
    assert reason(orjson.dumps(dict(GOOD, surprise=1))) == "schema"
    assert reason(orjson.dumps(dict(GOOD, channel={}))) == "schema"  # unhashable: no crash
    assert reason(orjson.dumps(dict(GOOD, type=["queue.entered"]))) == "unknown_type"
    assert reason(orjson.dumps(GOOD), max_line_bytes=10) == "oversized"


def test_messages_name_the_field() -> None:
    with pytest.raises(Rejection) as err:
        Decoder().decode(orjson.dumps(dict(GOOD, type="ivr.menu", flow="f", menu="m", level=0)))
    assert err.value.reason == "schema"
    assert "level" in err.value.detail


def test_case_defaults_to_contact_and_ts_is_epoch_seconds() -> None:
    rec, ts = Decoder().decode(orjson.dumps(GOOD))
    assert rec.case_id == "c1"
    assert ts == datetime(2026, 11, 2, 0, 0, 0, 250000, tzinfo=UTC).timestamp()


def test_pydantic_coercions_are_accepted_through_the_slow_path() -> None:
    raw = orjson.dumps(dict(GOOD, type="ivr.menu", flow="f", menu="m", level="2"))
    rec, _ = Decoder().decode(raw)
    assert isinstance(rec, IvrMenu) and rec.level == 2
    raw = orjson.dumps(dict(GOOD, ts="2026-11-02 09:00:00+09:00"))  # a space for the T
    expected = datetime(2026, 11, 2, 0, 0, 0, tzinfo=UTC).timestamp()
    assert Decoder().decode(raw)[1] == expected


def test_records_mirror_the_models_field_for_field() -> None:
    assert set(TYPE_OF.values()) == EVENT_TYPES
    for cls, etype in TYPE_OF.items():
        model = MODELS_BY_TYPE[etype]
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        fields = {f.name: f for f in info.fields}
        assert set(fields) == set(model.model_fields) - {"type"}, etype
        for name, f in model.model_fields.items():
            if name != "type":
                assert fields[name].required == f.is_required(), (etype, name)


def test_json_schema_names_every_type_and_the_version() -> None:
    schema = json_schema()
    assert schema["x-schema-version"] == 1
    assert set(schema["discriminator"]["mapping"]) == EVENT_TYPES
    queue = schema["$defs"]["QueueEntered"]
    assert "queue" in queue["required"]


# --- the fast path agrees with pydantic ------------------------------------------------------

text = st.one_of(
    st.text(min_size=0, max_size=3),
    st.sampled_from(["voice", "chat", "human", "bot", "queue", "reached", "up", "x" * 101]),
)
timestamps = st.one_of(
    st.sampled_from(
        [
            "2026-11-02T09:00:00+09:00",
            "2026-11-02T09:00:00.5Z",
            "2026-11-02T09:00:00.123456-03:30",
            "2026-11-02T09:00:00.1234567+00:00",
            "2026-11-02T09:00:60+00:00",
            "2026-11-02T24:00:00+00:00",
            "2026-02-30T09:00:00+00:00",
            "2026-11-02 09:00:00+00:00",
            "2026-11-02T09:00:00",
            "2026-11-02T09:00:00+25:00",
            "2026-11-02T09:00:0١+00:00",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers(-(2**63), 2**63 - 1),
)
values = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 200), st.floats(allow_nan=False), text, timestamps,
    st.dictionaries(st.text(max_size=2), st.integers(-5, 5), max_size=2),
    st.lists(st.integers(-5, 5), max_size=2),
)  # fmt: skip
field_names = st.sampled_from(
    sorted({f for m in MODELS_BY_TYPE.values() for f in m.model_fields} | {"bogus"})
)


@st.composite
def candidate_events(draw: st.DrawFn) -> dict[str, Any]:
    etype = draw(st.sampled_from(sorted(EVENT_TYPES)))
    model = MODELS_BY_TYPE[etype]
    d: dict[str, Any] = {"type": etype, "event_id": "e1", "contact_id": "c1", "channel": "chat"}
    d["ts"] = draw(timestamps)
    for name, f in model.model_fields.items():
        if name in d:
            continue
        if f.is_required() or draw(st.booleans()):
            d[name] = draw(values)
    for _ in range(draw(st.integers(0, 2))):  # mutations
        d[draw(field_names)] = draw(values)
    return d


@settings(max_examples=600, deadline=None)
@given(candidate_events())
@pytest.mark.slow
def test_fast_path_accepts_only_what_pydantic_accepts_identically(d: dict[str, Any]) -> None:
    raw = orjson.dumps(d)
    try:
        fast = decode_mod._RECORDS.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    slow, slow_ts = Decoder.validate_slow(raw)  # raises if pydantic disagrees
    assert type(fast) is type(slow)
    assert fast.ts.timestamp() == slow_ts
    a = msgspec.structs.asdict(fast)
    a["case_id"] = a["case_id"] or a["contact_id"]
    assert a == msgspec.structs.asdict(slow)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.timezones()))
@pytest.mark.slow
def test_timestamps_are_exact_integer_microseconds(dt: Any) -> None:
    assume(dt.utcoffset().total_seconds() % 60 == 0)  # RFC 3339 offsets are whole minutes
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    micros = delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds
    exact = float(Fraction(micros, 1_000_000))  # the correctly rounded value
    _, ts = Decoder().decode(orjson.dumps(dict(GOOD, ts=dt.isoformat())))
    assert ts == exact


def test_both_paths_read_extra_fraction_digits_the_same_way() -> None:
    text = "2026-11-02T09:00:00.1234567+09:00"  # pydantic alone would truncate to ...456
    fast = Decoder().decode(orjson.dumps(dict(GOOD, ts=text)))[1]
    slow = Decoder().decode(orjson.dumps(dict(GOOD, ts=text, type="ivr.menu", flow="f",
                                              menu="m", level="2")))[1]  # fmt: skip
    assert fast == slow == datetime(2026, 11, 2, 0, 0, 0, 123457, tzinfo=UTC).timestamp()


# --- through the replay driver -----------------------------------------------------------------


def test_bad_lines_are_counted_listed_and_do_not_stop_the_replay(tmp_path: Path) -> None:
    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(5, "queue.entered", "c1", queue="q")
    log.add(9, "agent.connected", "c1", queue="q", agent_id="a")
    good = log.lines()
    naive = dict(log.events[1], event_id="n1", ts="2026-11-02T09:00:05")
    late = dict(log.events[0], event_id="l1", ts="2026-11-02T08:00:00+00:00")
    lines = [
        good[0],
        b'{"broken": ',
        orjson.dumps(naive),
        good[1],
        b"",
        orjson.dumps(dict(log.events[1], type="contact.teleported", event_id="u1")),
        b"x" * 300,
        good[1],  # duplicate
        good[2],
        orjson.dumps(late),
    ]
    rep = replay_lines(lines, tmp_path, max_line_bytes=250)
    assert rep["rejected"]["by_reason"] == {
        "oversized": 1, "malformed_record": 0, "malformed_json": 1, "unknown_type": 1,
        "naive_timestamp": 1,
        "schema": 0, "duplicate": 1, "late": 1, "out_of_range": 0, "unreadable": 0,
    }  # fmt: skip
    listed = [(r["line"], r["reason"]) for r in rep["rejected"]["events"]]
    assert listed == [
        (2, "malformed_json"), (3, "naive_timestamp"), (6, "unknown_type"), (7, "oversized"),
        (8, "duplicate"), (10, "late"),
    ]  # fmt: skip
    assert rep["events"]["accepted"] == 3 and rep["events"]["blank_lines"] == 1
    assert row(rep, "voice", "q")["answered"] == 1


def test_rejected_listing_is_bounded_but_all_are_counted(tmp_path: Path) -> None:
    lines = [b"{nope"] * 30
    rep = replay_lines(lines, tmp_path, rejected_listing_limit=5)
    assert rep["rejected"]["total"] == 30 and rep["rejected"]["listed"] == 5


def test_oversized_line_across_chunks_is_skipped_without_losing_the_next(tmp_path: Path) -> None:
    from streams.inputs import files as replay

    log = Log()
    log.add(0, "contact.started", "c1")
    log.add(1, "contact.started", "c2")
    good = log.lines()
    huge = b'{"pad": "' + b"y" * (3 * replay.CHUNK) + b'"}'
    rep = replay_lines([good[0], huge, good[1]], tmp_path)
    assert rep["rejected"]["by_reason"]["oversized"] == 1
    assert rep["rejected"]["events"][0]["line"] == 2
    assert rep["events"]["accepted"] == 2
