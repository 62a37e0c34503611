"""Helpers shared by the operations tests."""

import dagster as dg

from encord_assets.materialize import Materializer


def run_partition(materializer: Materializer, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute a run request the way the daemon would: the fill job, with the request's partition and tags."""
    job = materializer.defs.resolve_job_def("fill_image_coco")
    return job.execute_in_process(
        partition_key=request.partition_key, instance=materializer.instance, tags=request.tags, raise_on_error=False
    )


def failing(mirror):
    """Every COCO request answers 503 (transient) until `mirror.set_faults(0)`."""
    mirror.set_faults(1.0, kinds=("503",), path_prefix="/coco/")
