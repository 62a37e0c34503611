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


def relax_sqlite_durability() -> None:
    """WAL with synchronous=NORMAL for this process's sqlite connections (the demo's, the tests').

    Dagster's sqlite storages commit each event with an fsync, which on a slow disk costs more
    than a small partition run; NORMAL keeps the database consistent after a crash of this
    process and can only lose the last events on power loss, fine for a local demo instance.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if event.contains(Engine, "connect", _synchronous_normal):
        return
    event.listen(Engine, "connect", _synchronous_normal)


def _synchronous_normal(connection, _record) -> None:
    if type(connection).__module__.startswith("sqlite3"):
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
