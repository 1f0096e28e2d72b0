"""A dlt source of OpenAI fine-tuning history: jobs, checkpoints, events and per-step metrics,
files, results CSVs and training data, loaded incrementally per job and per resource; and the
organization's models with their shutdown dates.

Example:
    >>> import dlt
    >>> from sources.openai_fine_tuning import openai_fine_tuning
    >>> pipeline = dlt.pipeline("openai_fine_tuning", destination="duckdb",
    ...                         dataset_name="openai_fine_tuning")
    >>> pipeline.run(openai_fine_tuning())

The source lives in `source.py` and is imported on first use (PEP 562): importing a module of
the package (its settings, errors, the stop signal) does not import dlt, so `openai-ft --help`
and `--version` start in a fraction of the time.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "openai_fine_tuning",
    "build",
    "SourceSettings",
    "ledger_counts",
    "ApiOptions",
    "FineTuningApi",
    "RunStats",
    "StateOwner",
    "redact_url",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sources.openai_fine_tuning import source

        return getattr(source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
