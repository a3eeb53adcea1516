"""streams/kafka/faust_io.py replaces Faust's private ``Consumer._drain_messages`` (batch fetch) and
wraps ``AIOKafkaConsumerThread._create_worker_consumer`` (fetch wait). Private code changes
without notice, so these tests, which need no broker, fail when anything the patch copies or
calls has changed: the upstream functions' source (read the new version, port what changed to
``install_batch_fetch``, then update the digest here) and the names and signatures it uses."""

from __future__ import annotations

import hashlib
import inspect
from importlib.metadata import version
from typing import Any

import pytest

faust_consumer = pytest.importorskip("faust.transport.consumer")
aiokafka_driver = pytest.importorskip("faust.transport.drivers.aiokafka")

# sha256 (first 16 hex digits) of the upstream source the patch was last checked against
UPSTREAM = {
    "Consumer._drain_messages": "44a2500309e83c63",
    "Consumer.getmany": "4b168d84882a70d6",
    "Consumer._wait_next_records": "6218e1969a636b3f",
    "Consumer._add_gap": "4df2573ded7c1c2c",
    "Consumer.ack": "5fcf41cf45153475",
    "AIOKafkaConsumerThread._create_worker_consumer": "c2701bfc3e6f6cad",
}


def _function(qualname: str) -> Any:
    owner, name = qualname.split(".")
    cls = faust_consumer.Consumer if owner == "Consumer" else aiokafka_driver.AIOKafkaConsumerThread
    # once installed (a test started a worker in this process), the original is kept aside
    return cls.__dict__.get("_cc_original_" + name, cls.__dict__[name])


def test_faust_is_the_pinned_minor_version() -> None:
    major, minor = version("faust-streaming").split(".")[:2]
    assert (int(major), int(minor)) == (0, 15), "pyproject pins faust-streaming 0.15.x"


@pytest.mark.parametrize("qualname", sorted(UPSTREAM))
def test_patched_upstream_code_is_what_the_patch_was_written_against(qualname: str) -> None:
    src = inspect.getsource(_function(qualname))
    digest = hashlib.sha256(src.encode()).hexdigest()[:16]
    assert digest == UPSTREAM[qualname], (
        f"{qualname} changed upstream: compare it with streams/kafka/faust_io.py's copy, port the "
        "change, then update UPSTREAM in this test"
    )


def test_what_the_patch_calls_still_exists_with_its_signature() -> None:
    consumer = faust_consumer.Consumer
    params = {
        "_wait_next_records": ["self", "timeout"],
        "_add_gap": ["self", "tp", "offset_from", "offset_to"],
        "_to_message": ["self", "tp", "record"],
        "perform_seek": ["self"],
        "commit": ["self", "topics", "start_new_transaction"],
        "ack": ["self", "message"],
        "highwater": ["self", "tp"],
    }
    for name, expected in params.items():
        fn = consumer.__dict__.get("_cc_original_" + name, getattr(consumer, name))
        got = list(inspect.signature(fn).parameters)
        assert got[: len(expected)] == expected, (name, got)
    for attr in ("flow_active", "should_stop", "consumer_stopped_errors"):
        assert hasattr(consumer, attr), attr
    assert faust_consumer.CONSUMER_FETCHING
    create = _function("AIOKafkaConsumerThread._create_worker_consumer")
    assert list(inspect.signature(create).parameters) == ["self", "transport"]
    # instance attributes the patch reads, set in Consumer.__init__
    init = inspect.getsource(consumer.__init__)
    for attr in ("_read_offset", "_commit_every", "_n_acked", "scheduler", "suspend_flow",
                 "_buffered_partitions"):  # fmt: skip
        assert f"self.{attr}" in init or attr in inspect.getsource(consumer), attr
