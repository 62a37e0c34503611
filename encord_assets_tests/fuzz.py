"""Settings of the property-based tests: the same examples on every run, in a bounded number."""

from hypothesis import HealthCheck, settings

FUZZ = settings(
    derandomize=True,  # examples derive from the test, not from a random seed: CI and laptops agree
    database=None,  # no examples replayed from an earlier run's local database
    deadline=None,  # a busy shared machine is slow now and then; a bound on examples bounds time
    max_examples=60,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
