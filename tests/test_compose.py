"""The full stack's compose file and Dockerfile agree with deploy/ and with the settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from cc_monitor.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return doc


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in service.get("ports", [])}


def test_the_stack_has_every_component() -> None:
    services = compose()["services"]
    assert {"kafka", "redis", "worker-1", "worker-2", "simulator", "prometheus",
            "alertmanager", "grafana"} <= set(services)  # fmt: skip
    assert services["kafka"]["image"].startswith("apache/kafka")
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft: no ZooKeeper
    assert "zookeeper" not in services
    assert services["simulator"]["profiles"] == ["demo"]


def test_mounted_config_paths_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
        build = service.get("build")
        if build:
            context = DEPLOY / build["context"]
            assert (context / build["dockerfile"]).is_file(), name


@pytest.mark.parametrize("worker", ["worker-1", "worker-2"])
def test_workers_settings_are_valid_and_point_at_the_stack(
    worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose()["services"]
    env = services[worker]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()  # the worker's own settings: unknown or invalid names fail here
    host = settings.kafka.bootstrap_servers.split(":")[0]
    assert host in services
    assert 9092 in {int(x.split("//:")[-1]) for x in
                    services[host]["environment"]["KAFKA_LISTENERS"].split(",")
                    if x.startswith("PLAINTEXT")}  # fmt: skip
    redis = urlparse(settings.worker.redis.url or "")
    assert redis.hostname in services and redis.port == 6379
    assert settings.worker.worker_id == worker
    assert settings.worker.web_port in container_ports(services[worker])


def test_prometheus_scrapes_the_workers_and_sends_to_alertmanager() -> None:
    services = compose()["services"]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "cc-monitor")
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert sorted(targets) == ["worker-1:9108", "worker-2:9108"]
    for target in targets:
        host, port = target.split(":")
        env = services[host]["environment"]
        assert int(env["CC_MONITOR_WORKER__WEB_PORT"]) == int(port)
    am = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    host, port = am.split(":")
    assert host in services and int(port) in container_ports(services[host])
    for rule_file in prom["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).is_file()


def test_grafana_datasources_and_dashboards_are_where_grafana_looks() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    mounts = dict(str(v).split(":")[:2] for v in grafana["volumes"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dash = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    path = dash["providers"][0]["options"]["path"]
    assert mounts["./grafana/dashboards"] == path
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    ds = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())
    for source in ds["datasources"]:
        url = urlparse(source["url"])
        assert url.hostname in services, source["name"]
        assert url.port in container_ports(services[str(url.hostname)]), source["name"]


def test_the_dockerfile_builds_what_the_package_needs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+)", text, re.M)
    for source in copied:
        assert (ROOT / source).exists(), source
    for package in ("cc_monitor", "streams", "alerts", "kpis"):
        assert package in copied, package
    assert re.search(r"^EXPOSE 9108$", text, re.M)
    assert "CC_MONITOR_WORKER__WEB_BIND=0.0.0.0" in text
    assert 'CMD ["worker"]' in text
