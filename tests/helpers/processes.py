"""Another process holding a DuckDB file, as a DuckDB shell or a notebook does."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def held_by_another_process(path: Path, read_only: bool = False) -> Iterator[int]:
    """Another process holds the DuckDB file, as a DuckDB shell or a notebook does, until the
    block ends; yields its PID. DuckDB lets one process write a file: a reader elsewhere
    conflicts with a writer too."""
    code = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro');"
        " print('ready', flush=True); time.sleep(120)"
    )
    mode = "ro" if read_only else "rw"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def locked_line(path: Path, pid: int) -> str:
    """What `load`, `sql` and `report` print, as one line, for a file another process holds."""
    return (
        f"openai-ft: error: The DuckDB file '{path}' is locked by another process (PID {pid}):"
        " close that connection (a DuckDB shell, a notebook) and retry"
    )
