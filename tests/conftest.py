"""The fixtures are plugins in `tests/fixtures/`; helpers are the package `tests/helpers/`."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.fixtures.environment",
    "tests.fixtures.sandbox",
    "tests.fixtures.targets",
]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` starts one worker more than there are cores: tests spend part of their time
    waiting on subprocesses, sockets and locks, and the extra worker fills it."""
    return (os.cpu_count() or 1) + 1
