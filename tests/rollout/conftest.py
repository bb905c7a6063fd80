"""Rollout tests run against SQLite and the session's real PostgreSQL (storage's fixtures)."""

from __future__ import annotations

import pytest

from rollout.state import RolloutRules
from rollout.store import RolloutStore
from storage.database import Database
from storage.flags import FlagRecord
from tests.faults.conftest import figure
from tests.storage.conftest import database, db_url, pg_database, pg_server, pg_url

__all__ = ["database", "db_url", "figure", "pg_database", "pg_server", "pg_url"]

CANDIDATES = ("local", "other")
SEED = FlagRecord(
    route=None, mode="shadow", candidate="local", percent=0.0, shadow_rate=1.0, noise_rate=0.1
)
RULES = RolloutRules(flag_key="default", candidates=CANDIDATES)


@pytest.fixture
def store(database: Database) -> RolloutStore:
    return RolloutStore(database, RULES, SEED)
