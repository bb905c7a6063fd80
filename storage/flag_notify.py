"""PostgreSQL LISTEN for rollout changes: a wake-up call, never the state itself.

The listener only says "something changed"; the reader then fetches the rows. A lost
connection loses nothing but speed, because readers also poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from storage.database import PG_CONNECT_TIMEOUT_S, Database
from storage.flags import FLAG_CHANNEL

log = structlog.get_logger("understudy.rollout")


class FlagListener:
    """One dedicated asyncpg connection listening on the rollout channel."""

    def __init__(self, db: Database, on_change: Callable[[], None]) -> None:
        self._dsn = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._on_change = on_change
        self._conn: Any = None

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self, timeout_s: float = PG_CONNECT_TIMEOUT_S) -> bool:
        """Connect and LISTEN; False when the server cannot be reached within ``timeout_s``."""
        await self.close()
        try:
            async with asyncio.timeout(timeout_s):
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=timeout_s,
                    server_settings={"application_name": "understudy-flags"},
                )
                try:
                    await conn.add_listener(FLAG_CHANNEL, self._notified)
                except BaseException:
                    conn.terminate()
                    raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.debug("rollout_listen_failed", error=type(exc).__name__)
            return False
        self._conn = conn
        return True

    def _notified(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self._on_change()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=1.0)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn.terminate()
