"""The source's options as one typed, checked object, and the checks of its list options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from .errors import ConfigurationError
from .settings import (
    AUTH_SCHEMES,
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WORKERS,
    MAX_PAGE_SIZE,
    MAX_WORKERS,
    RESOURCES,
)


@dataclass(frozen=True)
class ApiOptions:
    """How to reach the API and how hard to try: built once, checked once, passed as one.

    Args:
        api_key: The key or token (never shown by `repr`).
        base_url: API root, e.g. `https://api.openai.com/v1`.
        auth_scheme: `bearer` (`Authorization: Bearer <api_key>`) or `api-key` (Azure's
            `api-key: <api_key>` header).
        api_version: Sent as the `api-version` query parameter of every request (Azure's
            dated API versions); None sends none.
        organization: Sent as `OpenAI-Organization` when set.
        project: Sent as `OpenAI-Project` when set.
        page_size: `limit` of every list request, 1..100.
        max_attempts: Attempts per request, retries included.
        request_timeout: Seconds to wait for each response.
        backoff_base: Seconds before the first retry; doubles per retry, minus jitter.
        backoff_max: Cap of the wait between retries.
        workers: Most requests in flight at once.
        max_requests_per_second: Cap of request starts per second; None for no cap.

    Raises:
        ConfigurationError: naming the first option out of range.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    auth_scheme: str = "bearer"
    api_version: Optional[str] = None
    organization: Optional[str] = None
    project: Optional[str] = None
    page_size: int = DEFAULT_PAGE_SIZE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    workers: int = DEFAULT_WORKERS
    max_requests_per_second: Optional[float] = None

    def __post_init__(self) -> None:
        if self.auth_scheme not in AUTH_SCHEMES:
            raise ConfigurationError(
                f"auth_scheme must be one of {', '.join(AUTH_SCHEMES)}, got {self.auth_scheme!r}"
            )
        if isinstance(self.page_size, bool) or not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ConfigurationError(
                f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {self.page_size!r}"
                " (sources.openai_fine_tuning.page_size)"
            )
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        if self.request_timeout <= 0:
            raise ConfigurationError(
                f"request_timeout must be positive, got {self.request_timeout!r}"
            )
        if isinstance(self.workers, bool) or not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigurationError(
                f"workers must be between 1 and {MAX_WORKERS}, got {self.workers!r}"
                " (sources.openai_fine_tuning.workers)"
            )
        if self.max_requests_per_second is not None and self.max_requests_per_second <= 0:
            raise ConfigurationError(
                f"max_requests_per_second must be positive, got {self.max_requests_per_second!r}"
            )
        if not 0 <= self.backoff_base <= self.backoff_max:
            raise ConfigurationError(
                f"backoff_base and backoff_max must satisfy 0 <= backoff_base <= backoff_max,"
                f" got {self.backoff_base!r} and {self.backoff_max!r}"
            )


@dataclass
class SourceSettings:
    """What the source resolved from its arguments, dlt config and the environment, for the
    caller: `workers` (to size dlt's extract pool to) and the API identity (base URL after
    Azure's resolution, organization, project: which account the state belongs to), the
    job list's reader ahead (`listing_ahead`) and the slots of job steps (`job_slots`)."""

    workers: int = DEFAULT_WORKERS
    api_identity: Dict[str, Any] = field(default_factory=dict)
    # the job list read ahead (`listing.ListingAhead`): the caller starts it once the run may
    # make requests, with the state as the run found it
    listing_ahead: Any = None
    job_slots: Any = None  # `job_slots.JobSlots`: how many jobs' readers worked at once


def clean_job_ids(job_ids: Union[None, str, Sequence[str]]) -> List[str]:
    """The configured job ids, stripped; one id given as a string counts as a list of one."""
    if isinstance(job_ids, str):
        job_ids = [job_ids]
    if job_ids and not all(isinstance(j, str) and j.strip() for j in job_ids):
        raise ConfigurationError(f"job_ids must be a list of job id strings, got {job_ids!r}")
    return [j.strip() for j in job_ids or ()]


def clean_resources(resources: Union[None, str, Sequence[str]]) -> List[str]:
    """The resources to load, in the source's order; all when none are given.

    Accepts a list or one comma-separated string (`"jobs,events"`, as on the command line).
    """
    if resources is None:
        return list(RESOURCES)
    names = resources.split(",") if isinstance(resources, str) else list(resources)
    if not all(isinstance(name, str) for name in names):
        raise ConfigurationError(
            f"resources must be a list of resource names, got {resources!r}"
            " (sources.openai_fine_tuning.resources)"
        )
    wanted = {name.strip() for name in names if name.strip()}
    unknown = sorted(wanted - set(RESOURCES))
    if unknown or not wanted:
        derived = {"step_metrics": "events", "training_examples": "training_data"}
        loaded_with = [
            f"{name} is loaded with {derived[name]}" for name in unknown if name in derived
        ]
        hint = (
            f" ({'; '.join(loaded_with)})"
            if loaded_with
            else " (sources.openai_fine_tuning.resources or --resources)"
        )
        what = f"Unknown resource {', '.join(map(repr, unknown))}" if unknown else "No resource"
        raise ConfigurationError(f"{what}: choose from {', '.join(RESOURCES)}{hint}")
    return [name for name in RESOURCES if name in wanted]
