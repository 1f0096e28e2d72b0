"""Imports a run will need late, started early in a background thread.

dlt's load step describes the destination's credentials (`Load.get_step_info` →
`ConnectionStringCredentials.to_url`), which imports SQLAlchemy's URL whenever SQLAlchemy is
installed (Dagster, Airflow and many warehouses bring it): ≈0.4-1 s of imports on the path of
every run, also a no-change one. Imported in a thread while the run waits for the API, it is
off that path. Without SQLAlchemy dlt uses its own shim and nothing is imported here.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import Optional, Sequence

# what dlt imports late in every run, when installed
LATE_IMPORTS = ("sqlalchemy.engine",)


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - dlt imports it again later and reports what fails
            pass


def import_in_background(modules: Sequence[str] = LATE_IMPORTS) -> Optional[threading.Thread]:
    """Starts importing the installed ones of `modules` in a daemon thread (None when none is
    installed or all are imported already)."""
    import sys

    wanted = [
        name
        for name in modules
        if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is not None
    ]
    if not wanted:
        return None
    thread = threading.Thread(target=_import_all, args=(wanted,), name="warmup", daemon=True)
    thread.start()
    return thread
