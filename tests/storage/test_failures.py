"""An outage told apart from a bad record, for the errors the drivers really raise."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    AsyncAdapt_asyncpg_dbapi,
)

from storage.failures import is_transient

ASYNCPG = AsyncAdapt_asyncpg_dbapi(asyncpg)  # type: ignore[no-untyped-call]


def as_sqlalchemy_raises_it(driver_error: Exception) -> sa_exc.DBAPIError:
    """The asyncpg error translated by SQLAlchemy's adapter, then wrapped, as a query sees it."""
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(ASYNCPG, driver_error)
    except Exception as translated:
        wrapped = sa_exc.DBAPIError.instance("INSERT ...", {}, translated, ASYNCPG.Error)
        assert isinstance(wrapped, sa_exc.DBAPIError)
        return wrapped
    raise AssertionError("the adapter did not raise")


@pytest.mark.parametrize(
    "driver_error",
    [
        # What a session the server cut mid-exchange raises.
        asyncpg.exceptions.InternalClientError("unexpected connection state"),
        # Both come out of SQLAlchemy as a plain DBAPIError, known by their SQLSTATE.
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
    ],
)
def test_a_lost_postgres_session_is_an_outage(driver_error: Exception) -> None:
    assert is_transient(as_sqlalchemy_raises_it(driver_error))


def test_a_refused_record_is_not_an_outage() -> None:
    duplicate = as_sqlalchemy_raises_it(asyncpg.exceptions.UniqueViolationError("duplicate"))
    assert isinstance(duplicate, sa_exc.IntegrityError)
    assert not is_transient(duplicate)
    too_big = sqlite3.DataError("string or blob too big")
    assert not is_transient(sa_exc.DBAPIError("INSERT ...", {}, too_big))


def test_a_busy_sqlite_database_is_an_outage() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert is_transient(sa_exc.OperationalError("INSERT ...", {}, locked))
