"""Amazon Connect contact records: deduplication, queue and agent times, transfers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from kpis.config import EngineConfig
from streams.inputs.importers import make_importer
from streams.inputs.privacy import Pseudonymizer
from streams.replay import Replay, Source
from tests.builders import BYE, at, ctr
from tests.helpers import row


def replay(tmp: Path, *lines: bytes) -> dict[str, Any]:
    path = tmp / "ctr.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    importer = make_importer("connect-ctr", Pseudonymizer(""))
    return Replay(EngineConfig(), ZoneInfo("UTC")).run([Source(str(path))], importer=importer)


def test_contact_records(tmp_path: Path) -> None:
    answered = ctr(
        "c1", at(20),
        InitiationTimestamp=at(0), DisconnectTimestamp=at(10),
        DisconnectReason=BYE,
        Queue={"Name": "billing", "EnqueueTimestamp": at(0, 30), "DequeueTimestamp": at(1)},
        Agent={"Username": "kim", "ConnectedToAgentTimestamp": at(1), "CustomerHoldDuration": 60,
               "AfterContactWorkEndTimestamp": at(11)},
    )  # fmt: skip
    stale = dict(answered, LastUpdateTimestamp=at(15), DisconnectTimestamp=at(5))
    abandoned = ctr(
        "c2", at(9),
        InitiationTimestamp=at(2), DisconnectTimestamp=at(3), DisconnectReason=BYE,
        Queue={"Name": "billing", "EnqueueTimestamp": at(2, 10), "DequeueTimestamp": at(2, 50)},
    )  # fmt: skip
    transferred = ctr(
        "c3", at(30),
        InitiationTimestamp=at(4), DisconnectTimestamp=at(8), DisconnectReason="AGENT_DISCONNECT",
        TransferCompletedTimestamp=at(7),
        Queue={"Name": "billing", "EnqueueTimestamp": at(4), "DequeueTimestamp": at(4, 5)},
        Agent={"Username": "lee", "ConnectedToAgentTimestamp": at(4, 5)},
    )  # fmt: skip
    second_leg = ctr(
        "c4", at(30), InitialContactId="c3", InitiationMethod="TRANSFER",
        InitiationTimestamp=at(7), DisconnectTimestamp=at(12), DisconnectReason=BYE,
        Queue={"Name": "loans", "EnqueueTimestamp": at(7), "DequeueTimestamp": at(7, 20)},
        Agent={"Username": "park", "ConnectedToAgentTimestamp": at(7, 20)},
    )  # fmt: skip
    chat = ctr(
        "k1", at(30), Channel="CHAT",
        InitiationTimestamp=at(5), DisconnectTimestamp=at(9), DisconnectReason=BYE,
        Queue={"Name": "chat", "EnqueueTimestamp": at(5, 10), "DequeueTimestamp": at(5, 40)},
        Agent={"Username": "choi", "ConnectedToAgentTimestamp": at(5, 40)},
    )  # fmt: skip
    task = ctr("t1", at(30), Channel="TASK", InitiationTimestamp=at(1), DisconnectTimestamp=at(2))
    rep = replay(
        tmp_path,
        orjson.dumps(answered), orjson.dumps(abandoned), orjson.dumps(stale),
        orjson.dumps(transferred), orjson.dumps(second_leg), orjson.dumps(chat),
        orjson.dumps(task), b"{not json", orjson.dumps({"ContactId": "x"}),
    )  # fmt: skip
    src = rep["input"]["sources"][0]["import"]
    assert src["skipped"] == {"superseded": 1, "task": 1}
    assert [(r["line"], r["reason"]) for r in rep["rejected"]["events"]] == [
        (8, "malformed_record"), (9, "malformed_record"),
    ]  # fmt: skip
    billing = row(rep, "voice", "billing")
    assert (billing["queued"], billing["answered"], billing["abandoned"]) == (3, 2, 1)
    assert billing["answer_seconds"]["mean"] == pytest.approx((30 + 5) / 2)
    assert billing["abandon_wait_seconds"]["mean"] == pytest.approx(40)
    assert billing["transferred"] == 1
    handle = row(rep, "voice", "billing")["handle_seconds"]
    assert handle["count"] == 2
    assert handle["mean"] == pytest.approx((600 + 235) / 2)  # c1: 09:01-09:11, c3: to 09:08
    assert row(rep, "voice", "billing")["hold_seconds"]["mean"] == pytest.approx(30)  # 60 and 0
    assert row(rep, "voice", "loans")["answered"] == 1
    assert row(rep, "voice")["contacts"] == 4  # c1, c2, c3 and c3's transferred leg c4
    assert row(rep, "chat", "chat")["first_response_seconds"]["mean"] == pytest.approx(30)
    assert rep["data_quality"] == {}


def test_records_of_the_wrong_shape_are_counted_and_holds_reported(tmp_path: Path) -> None:
    def answered(contact: str, **agent: Any) -> bytes:
        return orjson.dumps(ctr(
            contact, at(5), InitiationTimestamp=at(0), DisconnectTimestamp=at(4),
            DisconnectReason="AGENT_DISCONNECT",
            Queue={"Name": "billing", "EnqueueTimestamp": at(0, 10)},
            Agent={"Username": "ann", "ConnectedToAgentTimestamp": at(0, 30), **agent},
        ))  # fmt: skip

    bad_queue = orjson.dumps(ctr("q", at(5), InitiationTimestamp=at(0), Queue="billing",
                                 DisconnectTimestamp=at(4)))  # fmt: skip
    bad_agent = orjson.dumps(ctr("a", at(5), InitiationTimestamp=at(0), Agent=[1, 2],
                                 DisconnectTimestamp=at(4)))  # fmt: skip
    rep = replay(
        tmp_path, bad_queue, bad_agent, answered("ok", CustomerHoldDuration=30),
        answered("huge", CustomerHoldDuration=1e300), answered("ten", CustomerHoldDuration="ten"),
        answered("neg", CustomerHoldDuration=-100),
    )  # fmt: skip
    assert rep["rejected"]["by_reason"]["malformed_record"] == 2
    warnings = rep["input"]["sources"][0]["import"]["warnings"]
    assert warnings == {"hold_not_a_number": 1, "hold_out_of_range": 2}
    m = row(rep, "voice", "billing")
    assert m["answered"] == 4 and m["hold_seconds"]["count"] == 4
