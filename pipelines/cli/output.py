"""stdout whose reader may stop reading (`openai-ft load | head -2`): the command carries on."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator, TextIO


class ReaderMayLeave:
    """Writes to `stream` until its reader goes away (EPIPE); after that, writes are dropped.

    The command then finishes its work (a load, the demo's report) and exits with its own
    code: only its output was cut, as when a Unix tool's reader stops. The stream's file
    descriptor is pointed at /dev/null then, so the interpreter's last flush finds no pipe.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.left = False

    def write(self, text: str) -> int:
        if not self.left:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_left()
        return len(text)

    def flush(self) -> None:
        if not self.left:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def _reader_left(self) -> None:
        self.left = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def stdout_reader_may_leave() -> Iterator[ReaderMayLeave]:
    """`sys.stdout` as a `ReaderMayLeave` inside, flushed at the end (a buffered stdout
    writes there, not at each print)."""
    original = sys.stdout
    sys.stdout = wrapped = ReaderMayLeave(original)
    try:
        yield wrapped
    finally:
        wrapped.flush()
        sys.stdout = original
