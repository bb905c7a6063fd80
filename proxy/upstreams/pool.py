"""The connection pool to an upstream: the most recently used idle connection goes first.

aiohttp hands out its oldest idle connection first. Under steady traffic every
connection a burst ever opened is then used in turn, none stays idle long enough
to be closed, and the pool keeps the most connections any burst needed. Handing
out the newest first leaves the surplus idle, and the idle timeout closes it.
"""

from __future__ import annotations

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey


class RecentFirstConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` whose idle connections are reused newest first."""

    def _release(
        self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False
    ) -> None:
        super()._release(key, protocol, should_close=should_close)
        idle = self._conns.get(key)
        # aiohttp appends the released connection and takes from the left: move it there.
        if idle and idle[-1][0] is protocol:
            idle.rotate(1)
