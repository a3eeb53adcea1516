"""Asterisk queue_log: every documented event, from a log written by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import T, log, replay
from tests.helpers import ivr_row, row


def test_queue_log_calls(tmp_path: Path) -> None:
    path = log(
        tmp_path,
        f"{T}|NONE|NONE|NONE|QUEUESTART|",
        f"{T}|NONE|sales|SIP/101|ADDMEMBER|",
        # c1: waits 12 s, rings an agent who does not answer, then 101 talks 200 s, caller hangs up
        f"{T + 0}|c1|sales|NONE|ENTERQUEUE||0101|1",
        f"{T + 5}|c1|sales|SIP/102|RINGNOANSWER|5000",
        f"{T + 12}|c1|sales|SIP/101|CONNECT|12|c1-b|3",
        f"{T + 212}|c1|sales|SIP/101|COMPLETECALLER|12|200|1",
        # c2: abandons after 40 s
        f"{T + 10}|c2|sales|NONE|ENTERQUEUE||0102|2",
        f"{T + 50}|c2|sales|NONE|ABANDON|1|2|40",
        # c3: leaves with a key after 30 s (customer's choice: abandoned)
        f"{T + 20}|c3|sales|NONE|ENTERQUEUE||0103|2",
        f"{T + 50}|c3|sales|NONE|EXITWITHKEY|1|1|2|30",
        # c4, c5: the queue lets them go without an agent (system)
        f"{T + 30}|c4|sales|NONE|ENTERQUEUE||0104|2",
        f"{T + 330}|c4|sales|NONE|EXITWITHTIMEOUT|1|2|300",
        f"{T + 31}|c5|support|NONE|ENTERQUEUE||0105|1",
        f"{T + 32}|c5|support|NONE|EXITEMPTY|1|1|1",
        # c6: answered in 5 s by 103, blind transfer to support, re-queued, answered by 104
        f"{T + 40}|c6|sales|NONE|ENTERQUEUE||0106|3",
        f"{T + 45}|c6|sales|SIP/103|CONNECT|5|c6-b|2",
        f"{T + 100}|c6|sales|SIP/103|BLINDTRANSFER|2000|default|5|55|3",
        f"{T + 101}|c6|support|NONE|ENTERQUEUE||0106|1",
        f"{T + 111}|c6|support|SIP/104|CONNECT|10|c6-c|2",
        f"{T + 211}|c6|support|SIP/104|COMPLETEAGENT|10|100|1",
        "garbage line",
        f"{T + 300}|NONE|sales|SIP/101|PAUSE|lunch",
    )
    rep = replay(path)
    src = rep["input"]["sources"][0]["import"]
    assert src["skipped"] == {"queuestart": 1}
    assert [(r["line"], r["reason"]) for r in rep["rejected"]["events"]] == [
        (22, "malformed_record")
    ]
    sales = row(rep, "voice", "sales")
    assert (sales["queued"], sales["answered"], sales["abandoned"], sales["dropped"]) == (
        5,
        2,
        2,
        1,
    )
    assert sales["answer_seconds"]["mean"] == (12 + 5) / 2
    assert sales["abandon_wait_seconds"]["mean"] == (40 + 30) / 2
    assert sales["transferred"] == 1
    support = row(rep, "voice", "support")
    assert (support["queued"], support["answered"], support["dropped"]) == (2, 1, 1)
    assert support["answer_seconds"]["mean"] == 10
    handle = row(rep, "voice")["handle_seconds"]
    assert handle["count"] == 3  # c1 by 101, c6 by 103 then 104
    assert handle["mean"] == pytest.approx((200 + 55 + 100) / 3, abs=1e-3)
    assert row(rep, "voice")["contacts"] == 7  # c6's second leg is a contact of the same case
    assert ivr_row(rep)["ivr_disconnected_before_handoff"] == 2  # c4 and c5
    assert rep["data_quality"] == {}


def test_epochs_that_are_no_time_are_counted_and_the_rest_kept(tmp_path: Path) -> None:
    good = [f"{T}|c1|sales|NONE|ENTERQUEUE||100|1", f"{T + 5}|c1|sales|SIP/a|CONNECT|5|c1|1"]
    bad = [f"{e}|c2|sales|NONE|ENTERQUEUE||100|1"
           for e in ("99999999999999999999", "inf", "1e400", "-1e18", "nan")]  # fmt: skip
    path = tmp_path / "queue_log"
    path.write_text("\n".join(good + bad) + "\n")
    rep = replay(path)
    assert rep["rejected"]["by_reason"]["malformed_record"] == len(bad)
    assert row(rep, "voice", "sales")["answered"] == 1
