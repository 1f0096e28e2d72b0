"""File contents (`GET /files/{id}/content`) read as a stream, with one retry loop.

The request itself is retried by the session like any other; what the session cannot see is a
connection lost in the middle of the body, after the status line arrived. This is the one
place that retries that, for every kind of file (results CSVs, training data).
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional, TypeVar

from ..errors import UpstreamError
from ..settings import FILES_PATH
from . import stopping
from .client import FineTuningApi
from .retry import RETRY_EXCEPTIONS

CHUNK_BYTES = 256 * 1024
T = TypeVar("T")


class BodyLostError(UpstreamError):
    """The connection dropped mid-body on every attempt."""


def read_content(
    api: FineTuningApi, file_id: str, consume: Callable[[Iterator[bytes]], T]
) -> Optional[T]:
    """`consume(chunks)` of the file's body; None when the file is gone (404).

    `consume` reads the chunks to the end and returns what it made of them; it is called
    afresh on each attempt (whatever it built from a broken body is its own to discard), so
    it must not keep state between calls.

    Raises:
        BodyLostError: when the connection dropped mid-body `max_attempts` times.
    """
    attempt = 0
    while True:
        attempt += 1
        response = api.open_file_content(file_id)
        if response is None:
            return None
        try:
            return consume(response.iter_content(CHUNK_BYTES))
        except RETRY_EXCEPTIONS:
            if attempt >= api.policy.max_attempts:
                raise BodyLostError(
                    f"{api.endpoint(f'{FILES_PATH}/{file_id}/content')} failed after {attempt}"
                    " attempts: connection dropped mid-response"
                ) from None
            api.stats.count_retry()
            stopping.wait(api.policy.delay(attempt))
        finally:
            response.close()
