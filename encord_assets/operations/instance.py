"""The project's Dagster instance settings: dagster.yaml (run queue, pools) and the pools' limits."""

import os
import shutil
from pathlib import Path

import dagster as dg

from encord_assets.sources.registry import POOL_LIMITS

INSTANCE_YAML = Path(__file__).with_name("dagster.yaml")


def install_instance_yaml(dagster_home: Path) -> bool:
    """Copy the project's dagster.yaml into a DAGSTER_HOME that has none; True when copied."""
    target = Path(dagster_home) / "dagster.yaml"
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_YAML, target)
    return True


def set_pool_limits(instance: dg.DagsterInstance) -> dict[str, int]:
    """Give each pool of the registry its limit, unless someone already set one (same as
    `dagster instance concurrency set <pool> <limit>`); returns the limits now in force."""
    storage = instance.event_log_storage
    known = {pool.name: pool for pool in storage.get_pool_limits()}
    limits = {}
    for pool, limit in sorted(POOL_LIMITS.items()):
        current = known.get(pool)
        if current is None or current.from_default:
            storage.set_concurrency_slots(pool, limit)
        limits[pool] = storage.get_concurrency_info(pool).slot_count
    return limits


def prepare_instance(dagster_home: Path | None) -> int:
    """`encord-assets instance`: dagster.yaml into DAGSTER_HOME if it has none, then the pools' limits."""
    home = dagster_home or os.environ.get("DAGSTER_HOME")
    if not home:
        print("set DAGSTER_HOME or pass --dagster-home")
        return 2
    home = Path(home).absolute()
    print(f"{'wrote' if install_instance_yaml(home) else 'kept the existing'} {home / 'dagster.yaml'}")
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        for pool, limit in set_pool_limits(instance).items():
            print(f"pool {pool}: {limit} concurrent run(s)")
    return 0


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
