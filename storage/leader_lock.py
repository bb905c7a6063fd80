"""Leader election: on PostgreSQL a session-level advisory lock on a dedicated connection.

Whoever holds the lock leads. PostgreSQL releases it when the session ends, so a
leader that dies or loses its connection loses the lead, and the next replica to
try takes it. Each ``hold()`` first checks the connection is alive. On SQLite the
processes of one host (``serve --workers N``) take turns by a file lock instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from storage.database import Database

log = structlog.get_logger("understudy.rollout")

CONTROLLER_LOCK = 0x756E_6465_7263_746C  # "underctl": one controller per database
_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a session the server cut mid-exchange
)


class AdvisoryLeader:
    def __init__(self, db: Database, *, key: int = CONTROLLER_LOCK, timeout_s: float = 2.0) -> None:
        self._dsn = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._key = key
        self._timeout_s = timeout_s
        self._conn: Any = None
        self._leading = False

    @property
    def leading(self) -> bool:
        return self._leading

    async def hold(self) -> bool:
        """Whether this process leads now: keep the lock, or try to take it."""
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._conn is None or self._conn.is_closed():
                    self._leading = False
                    self._conn = await asyncpg.connect(
                        self._dsn,
                        timeout=self._timeout_s,
                        server_settings={"application_name": "understudy-controller"},
                    )
                if self._leading:
                    await self._conn.fetchval("SELECT 1")  # the session, and the lock, still live
                else:
                    self._leading = bool(
                        await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key)
                    )
        except _ERRORS as exc:
            if self._leading:
                log.warning("rollout_controller_lost_lead", error=type(exc).__name__)
            await self._drop()
            return False
        return self._leading

    async def _drop(self) -> None:
        conn, self._conn, self._leading = self._conn, None, False
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def release(self) -> None:
        """Give the lead up (closing the session releases the lock)."""
        conn, self._conn, self._leading = self._conn, None, False
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=1.0)
            except _ERRORS:
                conn.terminate()


class FileLeader:
    """SQLite: processes on the host that share the database file take turns by a file lock.

    The lock is an ``flock`` on ``<database>.controller.lock``; the kernel releases it
    when the holder exits, however it exits.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    async def hold(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing drops the lock
