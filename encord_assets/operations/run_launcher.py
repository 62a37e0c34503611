"""A run launcher that starts each run worker as a fork of a process that has already imported Dagster.

Dagster's default launcher asks the code server for a run worker, which is a fresh interpreter
(multiprocessing "spawn"): it imports Dagster again (about 2 s of CPU, far more while other runs
start beside it on a busy machine) before the run's first event, and a partition run is often
shorter than that. Here the process that launches runs (the daemon, for queued runs) keeps one
multiprocessing "forkserver" that has imported Dagster (and a few libraries), not the project; each run worker is a
fork of it and imports the code location itself, from its module, as Dagster's own
`dagster api execute_run` worker does, so a changed project is picked up by the next run.

The worker runs on the launching machine, with the launching process's environment (the daemon's:
`dagster dev` gives the daemon and the code server the same) and the folder it started in;
deployments that run workers elsewhere name their own launcher (deploy/).
"""

import multiprocessing
import os
import signal
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._serdes import ConfigurableClass, ConfigurableClassData, deserialize_value, serialize_value

WORKER_PID_TAG = "encord/run_worker_pid"
# What every run worker imports beyond `dagster` (its execute_run body, the sqlite storages, the code
# loading; ~1.3 s of CPU on top of `import dagster` here) and the libraries our code location imports.
# Libraries only, so the code location is imported fresh by each run; and only ones that start no
# thread when imported (polars and pyarrow do): a fork copies no threads, so their locks could stay held.
# A name a later Dagster drops is skipped by the forkserver (it ignores ImportError).
PRELOAD = [
    "dagster",
    "dagster._cli.api",
    "dagster._core.instance.factory",
    "dagster._core.storage.event_log",
    "dagster._core.storage.legacy_storage",
    "dagster._core.storage.runs",
    "dagster._core.storage.sqlite_storage",
    "dagster._utils.test.definitions",
    "fsspec",
    "requests",
    "upath",
]


def execute_run(run_id: str, serialized_instance_ref: str, environment: dict[str, str]) -> None:
    """The run worker: the body of `dagster api execute_run`, in a fork of the forkserver, with the
    environment the launching process has now (the forkserver keeps the one it started with)."""
    os.environ.clear()
    os.environ.update(environment)
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import InstanceRef
    from dagster._utils.interrupts import capture_interrupts, setup_interrupt_handlers

    setup_interrupt_handlers()  # SIGTERM, like SIGINT, interrupts the run (it ends CANCELED)
    with capture_interrupts(), dg.DagsterInstance.from_ref(deserialize_value(serialized_instance_ref, InstanceRef)) as instance:
        # reports code that does not load as the run's failure, as Dagster's own worker does
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


class ForkedRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a fork of a forkserver that has imported Dagster (see the module's doc)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._context = None
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> "ForkedRunLauncher":
        return cls(inst_data=inst_data)

    def _forkserver(self):
        if self._context is None:
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload(PRELOAD)
        return self._context

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        multiprocessing.active_children()  # reaps the workers that have ended
        worker = self._forkserver().Process(
            target=execute_run, args=(run.run_id, serialize_value(self._instance.get_ref()), dict(os.environ)), name=f"run-{run.run_id}"
        )
        worker.start()
        self._instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(worker.pid)})

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished or WORKER_PID_TAG not in run.tags:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(int(run.tags[WORKER_PID_TAG]), signal.SIGINT)
        except ProcessLookupError:
            return False
        return True
