"""The dataset store: the only code that reads or writes ROOT, a local folder or an s3:// bucket prefix."""

from encord_assets.store.store import DatasetStore, default_store

__all__ = ["DatasetStore", "default_store"]
