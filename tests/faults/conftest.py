"""Fault-injection fixtures: PostgreSQL (the storage tests' own fixtures) and quotable figures."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tests.storage.conftest import pg_server, pg_url

__all__ = ["figure", "pg_server", "pg_url"]


@pytest.fixture
def figure(
    capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> Callable[[str], None]:
    """Write one measured figure straight to the test log, passing or not, so it can be quoted."""

    def write(text: str) -> None:
        with capsys.disabled():
            sys.stdout.write(f"\n[figure] {request.node.name}: {text}\n")
            sys.stdout.flush()

    return write
