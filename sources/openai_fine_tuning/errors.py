"""Errors a user of the source sees. Each message is one line and never contains a secret.

`exit_code` is what the `openai-ft` command exits with (see the README's exit codes).
"""

from typing import Optional


class FineTuningSourceError(Exception):
    """Base of every error this source raises on purpose.

    Args:
        message: One line for the user.
        status: The HTTP status behind it, when there was one.
        detail: What the API said (its error message), when it said something.
    """

    exit_code = 1

    def __init__(
        self, message: str = "", status: Optional[int] = None, detail: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ConfigurationError(FineTuningSourceError):
    """Missing or invalid configuration: key, base URL, page size, job ids."""

    exit_code = 2


class AuthenticationError(FineTuningSourceError):
    """The API rejected the key (401) or denied access to the organization or project (403)."""

    exit_code = 3


class UpstreamError(FineTuningSourceError):
    """The API (or something in front of it) failed or answered what the contract does not allow."""

    exit_code = 4


class BodyLostError(UpstreamError):
    """A streamed body (a file's content) broke off mid-way on every attempt."""


class JobNotFoundError(ConfigurationError):
    """A configured job id does not exist for this key (404)."""


class PaginationLoopError(UpstreamError):
    """`has_more: true` with a repeated cursor or an empty page: paging would never end."""
