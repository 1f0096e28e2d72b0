"""A live progress line on stderr while a load runs (terminals, or `--progress`)."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any, Optional

from sources.openai_fine_tuning.stats import RunStats

PER_JOB = ("checkpoints", "events", "files", "results", "training_data")
SHOWN_TABLES = ("checkpoints", "events", "step_metrics", "results", "training_examples")


def progress_line(stats: RunStats, started: float, now: Optional[float] = None) -> str:
    """`jobs 734/1000 · events 80,123 · ... · requests 2,410 (3 retried) · 41 s`."""
    now = time.monotonic() if now is None else now
    done = [stats.jobs_done[name] for name in PER_JOB if stats.jobs_done.get(name)]
    read = min(done) if done else 0
    parts = [f"jobs {read:,}/{stats.jobs_seen:,}"]
    parts += [f"{t} {stats.rows[t]:,}" for t in SHOWN_TABLES if stats.rows.get(t)]
    retried = f" ({stats.retries:,} retried)" if stats.retries else ""
    parts.append(f"requests {stats.requests:,}{retried}")
    if stats.paused_until > now:
        parts.append(f"rate-limited: waiting {stats.paused_until - now:.1f} s")
    parts.append(f"{now - started:.0f} s")
    return " · ".join(parts)


class ProgressLine:
    """Rewrites one stderr line twice a second until stopped, then clears it.

    Args:
        stats: What the run counts.
        stream: Where to write (stderr).
        interval: Seconds between updates.
    """

    def __init__(
        self, stats: RunStats, stream: Optional[IO[str]] = None, interval: float = 0.5
    ) -> None:
        self._stats = stats
        self._stream = stream if stream is not None else sys.stderr  # as it is now, not at import
        self._interval = interval
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="openai-ft-progress", daemon=True)
        self._width = 0

    def __enter__(self) -> ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._write("")

    def _write(self, text: str) -> None:
        padded = text.ljust(self._width)
        self._width = len(text)
        try:
            self._stream.write("\r" + padded + ("" if text else "\r"))
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._write(progress_line(self._stats, self._started))
