"""A local emulation of every upstream, on 127.0.0.1, for tests, benchmarks and the demo."""
