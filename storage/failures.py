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


def _sqlstate(exc: BaseException) -> str | None:
    seen: list[BaseException | None] = [exc, getattr(exc, "orig", None)]
    seen.append(getattr(seen[-1], "driver_exception", None))
    seen.append(getattr(seen[-1], "__cause__", None))
    for candidate in seen:
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def is_transient(exc: BaseException) -> bool:
    """True when the failure is about reaching the database, not about the data."""
    state = _sqlstate(exc)
    if state is not None and state.startswith(_TRANSIENT_SQLSTATE_CLASSES):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # SQLite reports "database is locked" and "unable to open" as OperationalError.
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, OSError | TimeoutError):
        return True
    # asyncpg raises its own connection errors unwrapped at connect time.
    return type(exc).__module__.startswith("asyncpg") and "Connection" in type(exc).__name__
