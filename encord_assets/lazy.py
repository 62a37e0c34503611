"""The heavy libraries, imported on first use: loading the code location (every run process and
*Reload definitions*) then costs no polars, pyarrow, pandas or numpy import.

Modules on the definitions' import path take these names instead of importing the libraries, and
put `from __future__ import annotations` first so their annotations are not evaluated. Where
Dagster reads annotations (modules that define assets, IO managers with resource dependencies)
they are quoted instead, and asset functions are annotated without these names. Module-level
schemas use Python types (`str`, `int`, `float`), which polars maps to its own.
"""

import importlib
import types
from typing import TYPE_CHECKING


class LazyModule(types.ModuleType):
    """A module imported when one of its attributes is first read."""

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self.__name__), attribute)


if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    import polars_hash as plh
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from PIL import Image
else:
    np = LazyModule("numpy")
    pl = LazyModule("polars")
    plh = LazyModule("polars_hash")
    pa = LazyModule("pyarrow")
    pc = LazyModule("pyarrow.compute")
    ds = LazyModule("pyarrow.dataset")
    Image = LazyModule("PIL.Image")
