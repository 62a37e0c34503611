"""The Dagster instance settings the project runs with (written into a DAGSTER_HOME that has none)."""

from pathlib import Path

INSTANCE_YAML = """\
telemetry:
  enabled: false
# One event-log database for all runs: the default opens (and migrates) one sqlite file per
# run, which costs more than a small partition run itself.
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir:
      env: DAGSTER_HOME
"""


def ensure_instance_config(dagster_home: Path) -> Path:
    path = Path(dagster_home) / "dagster.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(INSTANCE_YAML)
    return path
