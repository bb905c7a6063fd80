"""Telling "the database is unavailable" apart from "the database refused this record".

The first is retried and spilled; the second is isolated to the bad record,
which is set aside so it cannot block the queue forever.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

# SQLSTATE classes that mean "try again later": connection exception,
# insufficient resources, operator intervention (shutdown, starting up),
# transaction rollback (serialization failure, deadlock).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, the driver's error SQLAlchemy wrapped, and what that one wraps."""
    seen: list[BaseException | None] = [exc, getattr(exc, "orig", None)]
    seen.append(getattr(seen[-1], "driver_exception", None))
    seen.append(getattr(seen[-1], "__cause__", None))
    return [e for e in seen if e is not None]


def _sqlstate(exc: BaseException) -> str | None:
    for candidate in _chain(exc):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def _is_asyncpg_connection_failure(exc: BaseException) -> bool:
    # asyncpg's connection errors, raised unwrapped at connect time, and its
    # InternalClientError, which is what a session the server cut mid-exchange
    # raises: SQLAlchemy wraps that one as a plain DBAPIError, never about the data.
    name, module = type(exc).__name__, type(exc).__module__
    return module.startswith("asyncpg") and ("Connection" in name or name == "InternalClientError")


def is_transient(exc: BaseException) -> bool:
    """True when the failure is about reaching the database, not about the data."""
    state = _sqlstate(exc)
    if state is not None and state.startswith(_TRANSIENT_SQLSTATE_CLASSES):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and (
        # SQLite reports "database is locked" and "unable to open" as OperationalError.
        exc.connection_invalidated
        or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    ):
        return True
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, OSError | TimeoutError):
        return True
    return any(_is_asyncpg_connection_failure(e) for e in _chain(exc))
