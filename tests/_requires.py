"""A component the tests start themselves (Chromium, Redis, PostgreSQL) that is not installed."""

import os
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    """Fail under CI (`make test` installs it: its absence is a broken set-up); else skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
