"""Jobs the run launcher's tests launch: importable by module, as a code location's jobs are."""

import os
import time

import dagster as dg


@dg.op
def record_pid(context: dg.OpExecutionContext) -> int:
    context.log.info(f"worker pid {os.getpid()}")
    return os.getpid()


@dg.job(executor_def=dg.in_process_executor)  # the step runs in the run worker, as the fill jobs do
def quick_job():
    record_pid()


@dg.op
def wait_long() -> None:
    time.sleep(300)  # until the test terminates the run


@dg.job(executor_def=dg.in_process_executor)  # the step runs in the run worker, as the fill jobs do
def long_job():
    wait_long()
