"""One load: source + target + pipeline, the run lock, recovery, the summary. No argparse, no
printing. Imports `sources/` and `pipelines/analysis` (the views a load refreshes).

Its names are imported on first use (PEP 562): `pipelines.run.signals` and the like load
without dlt, so the command starts at once for `--help` and `--version`.
"""

from __future__ import annotations

from typing import Any

_WHERE = {
    "TABLES": "pipelines.run.summary",
    "LoadSummary": "pipelines.run.summary",
    "existing_pipeline": "pipelines.run.destinations",
    "make_pipeline": "pipelines.run.destinations",
    "load": "pipelines.run.loader",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
