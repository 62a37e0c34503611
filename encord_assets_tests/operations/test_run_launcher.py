"""The project's run launcher on a real instance (the project's dagster.yaml names it): each run
worker is a fork of a forkserver, runs the run to its end, can be terminated, and a run whose
code does not load fails instead of staying STARTING."""

import os
import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.launcher import LaunchRunContext

from encord_assets.operations.run_launcher import PRELOAD, WORKER_PID_TAG, ForkedRunLauncher
from encord_assets_tests.operations import launched_jobs
from encord_assets_tests.processes import PATIENCE_SECONDS


@pytest.fixture
def instance(dagster_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def launch(instance: dg.DagsterInstance, job: dg.JobDefinition, attribute: str | None = None) -> dg.DagsterRun:
    """Create a run of `job` (code origin: its module's `attribute`, the job's own name by default) and launch it."""
    recon = ReconstructableJob(ReconstructableRepository.for_module(launched_jobs.__name__, attribute or job.name), job.name)
    run = instance.create_run_for_job(job_def=job, job_code_origin=recon.get_python_origin())
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def wait(instance: dg.DagsterInstance, run_id: str, statuses: set[dg.DagsterRunStatus]) -> dg.DagsterRun:
    since = time.monotonic()
    while (run := instance.get_run_by_id(run_id)).status not in statuses:
        assert time.monotonic() < since + PATIENCE_SECONDS, run.status
        time.sleep(0.2)
    return run


def test_the_project_instance_forks_each_run_worker_which_runs_the_run(instance):
    assert isinstance(instance.run_launcher, ForkedRunLauncher)
    run = wait(instance, launch(instance, launched_jobs.quick_job).run_id, {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE})
    assert run.status == dg.DagsterRunStatus.SUCCESS
    worker = int(run.tags[WORKER_PID_TAG])
    assert worker != os.getpid()
    logged = [record.message for record in instance.all_logs(run.run_id) if record.message]
    assert any(message.endswith(f"worker pid {worker}") for message in logged)


def test_terminating_a_run_cancels_it_in_its_worker(instance):
    run = launch(instance, launched_jobs.long_job)
    since = time.monotonic()
    # terminate once the op is running: the worker has its interrupt handlers by then
    while not any(record.dagster_event and record.dagster_event.event_type_value == "STEP_START" for record in instance.all_logs(run.run_id)):
        assert time.monotonic() < since + PATIENCE_SECONDS
        time.sleep(0.2)
    assert instance.run_launcher.terminate(run.run_id)
    assert wait(instance, run.run_id, {dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS}).status == dg.DagsterRunStatus.CANCELED
    assert not instance.run_launcher.terminate(run.run_id)  # nothing left to terminate


def test_a_run_whose_code_does_not_load_fails(instance):
    run = launch(instance, launched_jobs.quick_job, attribute="no_such_job")
    run = wait(instance, run.run_id, {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE})
    assert run.status == dg.DagsterRunStatus.FAILURE
    logged = " ".join(record.message or "" for record in instance.all_logs(run.run_id))
    assert "Could not load job definition" in logged


def test_what_the_forkserver_imports_starts_no_thread():
    # a fork copies only the forking thread: a lock another thread held would stay held in every worker
    probe = f"import {', '.join(PRELOAD)}, threading; print(threading.active_count(), open('/proc/self/status').read().split('Threads:')[1].split()[0])"
    # (every name must import, too: the forkserver would skip one silently)
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split() == ["1", "1"]
