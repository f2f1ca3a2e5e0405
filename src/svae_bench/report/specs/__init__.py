"""The table specs shipped with svae-bench; every module here registers its tables when imported.

Importing this package imports each of its modules (a new table is a new module, no list to
edit). Third-party code registers its own specs with
:func:`svae_bench.report.spec.register_table` and :func:`svae_bench.report.collect.register_record_kind`.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
