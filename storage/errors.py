"""Errors raised by the storage layer."""

from __future__ import annotations

from core import UnderstudyError


class StorageError(UnderstudyError):
    """Base class for storage failures Understudy reports to the operator."""


class SchemaOutOfDate(StorageError):
    """The database schema is not the one this code was written for."""

    def __init__(self, current: str | None, required: str, *, known: bool = True) -> None:
        self.current = current
        self.required = required
        shown = current or "none (empty database)"
        if known:
            message = (
                f"database is at revision {shown}, code needs {required}: "
                "run `understudy db upgrade`"
            )
        else:
            message = (
                f"database is at revision {shown}, which this version of Understudy does not "
                f"know (code needs {required}): upgrade Understudy, or downgrade the database "
                "with the newer version first"
            )
        super().__init__(message)
