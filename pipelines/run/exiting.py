"""The end of a process that ran a command: the interpreter's last walk of the heap skipped."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Moves every live object to the garbage collector's permanent generation.

    Called when the process has nothing left to do but exit. At shutdown the interpreter
    collects once more, walking every object of the run (dlt's schemas, configuration and
    modules): about 0.5 s after a load on a 2-core machine (bench/NOTES.md), to free memory
    the operating system takes back anyway. Frozen objects are not walked: atexit handlers,
    the flush of buffered output and what was closed explicitly are as before, but a cycle
    already unreachable at the freeze is never collected (its finalizers do not run). Not for
    a process that goes on (an orchestrator's worker, a caller of `main()`): its garbage
    would be kept.
    """
    gc.freeze()
