import dagster as dg

from encord_assets.cli import main
from encord_assets.operations.instance import INSTANCE_YAML


def test_the_instance_command_installs_dagster_yaml_and_keeps_limits_a_user_set(tmp_path, capsys, monkeypatch):
    home = tmp_path / "dagster_home"
    assert main(["instance", "--dagster-home", str(home)]) == 0
    assert (home / "dagster.yaml").read_text() == INSTANCE_YAML.read_text()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 2 and config.run_queue_config.max_concurrent_runs == 6
        limits = {pool.name: pool.limit for pool in instance.event_log_storage.get_pool_limits()}
        assert limits == {"youtube": 2, "huggingface": 4, "http": 4}
        instance.event_log_storage.set_concurrency_slots("http", 8)  # what `dagster instance concurrency set http 8` does

    # the user's own file (same storage, so the limit set above is still there) is kept as is
    users_own = "# the user's own\n" + INSTANCE_YAML.read_text()
    (home / "dagster.yaml").write_text(users_own)
    assert main(["instance", "--dagster-home", str(home)]) == 0
    assert (home / "dagster.yaml").read_text() == users_own
    assert "pool http: 8 concurrent run(s)" in capsys.readouterr().out
