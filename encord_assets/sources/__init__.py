"""Upstream sources: the registry, the asset factory, and one module per fetch strategy."""
