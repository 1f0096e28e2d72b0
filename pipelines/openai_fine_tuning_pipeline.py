"""Loads the fine-tuning history of an OpenAI organization into `./openai_ft.duckdb`, the
verified-sources way: build, run, print.

    OPENAI_API_KEY=sk-... python pipelines/openai_fine_tuning_pipeline.py

Configuration comes from `.dlt/` and the environment (`SOURCES__OPENAI_FINE_TUNING__*`,
`DESTINATION__*`), as for the source. `openai-ft load` runs the same `load()` with flags, a
progress line, signal handling and exit codes.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script from a clone: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.run import load  # noqa: E402
from pipelines.run.exiting import freeze_heap  # noqa: E402


def main() -> None:
    """One incremental load into the default target; prints its summary."""
    summary = load()
    for line in summary.warnings():
        print(f"warning: {line}", file=sys.stderr)
    print("\n".join(summary.lines()))


if __name__ == "__main__":
    main()
    freeze_heap()  # the script ends here
