"""Checks of the source's numeric and list options: one clear error naming the option."""

from typing import List, Optional, Sequence, Union

from .errors import ConfigurationError
from .settings import MAX_PAGE_SIZE, MAX_WORKERS


def check_client_options(
    page_size: int,
    max_attempts: int,
    request_timeout: float,
    backoff_base: float,
    backoff_max: float,
    workers: int,
    max_requests_per_second: Optional[float],
) -> None:
    """Raises `ConfigurationError` naming the first option out of range."""
    if isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ConfigurationError(
            f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size!r}"
            " (sources.openai_fine_tuning.page_size)"
        )
    if max_attempts < 1:
        raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts!r}")
    if request_timeout <= 0:
        raise ConfigurationError(f"request_timeout must be positive, got {request_timeout!r}")
    if isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigurationError(
            f"workers must be between 1 and {MAX_WORKERS}, got {workers!r}"
            " (sources.openai_fine_tuning.workers)"
        )
    if max_requests_per_second is not None and max_requests_per_second <= 0:
        raise ConfigurationError(
            f"max_requests_per_second must be positive, got {max_requests_per_second!r}"
        )
    if not 0 <= backoff_base <= backoff_max:
        raise ConfigurationError(
            f"backoff_base and backoff_max must satisfy 0 <= backoff_base <= backoff_max,"
            f" got {backoff_base!r} and {backoff_max!r}"
        )


def clean_job_ids(job_ids: Union[None, str, Sequence[str]]) -> List[str]:
    """The configured job ids, stripped; one id given as a string counts as a list of one."""
    if isinstance(job_ids, str):
        job_ids = [job_ids]
    if job_ids and not all(isinstance(j, str) and j.strip() for j in job_ids):
        raise ConfigurationError(f"job_ids must be a list of job id strings, got {job_ids!r}")
    return [j.strip() for j in job_ids or ()]
