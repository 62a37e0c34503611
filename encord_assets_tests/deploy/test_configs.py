"""The deployment files, checked offline: Dagster validates the instance configs, the worker config
and the Helm values carry the project's run queue, pools and run monitoring, the Dockerfile copies
files that exist and serves the project's code location."""

import re
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster_celery.cli import get_validated_config

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
INSTANCE_CONFIGS = [DEPLOY / "postgres" / "dagster.yaml", DEPLOY / "celery" / "dagster.yaml"]
PROJECT_YAML = REPO / "encord_assets" / "operations" / "dagster.yaml"
ENV = {
    "DAGSTER_POSTGRES_URL": "postgresql+psycopg2://dagster@127.0.0.1:5432/dagster",
    "DAGSTER_CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "DAGSTER_CELERY_BACKEND_URL": "redis://127.0.0.1:6379/1",
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def camel_keys(value):
    if isinstance(value, dict):
        return {camel(k): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


@pytest.fixture
def env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("path", INSTANCE_CONFIGS, ids=lambda p: p.parent.name)
def test_instance_configs_validate_and_share_the_project_queue_and_pools(path, tmp_path, env):
    shutil.copyfile(path, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any schema error
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert config["concurrency"] == yaml.safe_load(PROJECT_YAML.read_text())["concurrency"]
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["free_slots_after_run_end_seconds"] <= 30


def test_celery_instance_and_worker_use_the_same_broker_and_fail_dead_runs(env):
    instance = yaml.safe_load((DEPLOY / "celery" / "dagster.yaml").read_text())
    assert instance["run_launcher"]["class"] == "CeleryRunLauncher"
    assert instance["run_monitoring"]["max_resume_run_attempts"] == 0  # failed, then retried by the sensor
    worker = get_validated_config(str(DEPLOY / "celery" / "worker.yaml"))
    assert (worker["broker"], worker["backend"]) == (ENV["DAGSTER_CELERY_BROKER_URL"], ENV["DAGSTER_CELERY_BACKEND_URL"])


def test_helm_values_carry_the_same_queue_pools_and_monitoring():
    values = yaml.safe_load((DEPLOY / "kubernetes" / "values.yaml").read_text())
    project = yaml.safe_load(PROJECT_YAML.read_text())["concurrency"]
    assert values["concurrency"] == {"enabled": True, **camel_keys(project)}
    monitoring = yaml.safe_load((DEPLOY / "celery" / "dagster.yaml").read_text())["run_monitoring"]
    for key, value in values["dagsterDaemon"]["runMonitoring"].items():
        assert monitoring[re.sub(r"([A-Z])", r"_\1", key).lower()] == value
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    module = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]


def test_dockerfile_copies_existing_files_and_serves_the_code_location():
    text = (DEPLOY / "kubernetes" / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.M)
    assert copies
    for line in copies:
        *sources, _destination = line.split()
        assert all((REPO / source).exists() for source in sources), line
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    python = re.search(r"^FROM python:(\d+\.\d+)", text, flags=re.M).group(1)
    assert python in ("3.11", "3.12") and project["project"]["requires-python"] == ">=3.11,<3.13"
    assert f'"-m", "{project["tool"]["dagster"]["module_name"]}"' in text
    assert "uv sync --frozen" in text
