"""The Python floor: a bare aiohttp pass-through that also mirrors every request.

It does no validation, recording or routing, so it shows what any aiohttp proxy
pays. Run: python -m bench.mirror_floor PORT UPSTREAM_URL MIRROR_URL
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
MIRROR_TASKS: set[asyncio.Task[Any]] = set()


async def _mirror(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            await r.read()
    except aiohttp.ClientError:
        pass


def make_app(upstream: str, mirror: str) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session = request.app[SESSION]
        task = asyncio.get_running_loop().create_task(_mirror(session, mirror, body))
        MIRROR_TASKS.add(task)
        task.add_done_callback(MIRROR_TASKS.discard)
        headers = {"Content-Type": "application/json"}
        async with session.post(upstream, data=body, headers=headers) as up:
            if up.headers.get("Content-Type", "").startswith("text/event-stream"):
                response = web.StreamResponse(
                    status=up.status, headers={"Content-Type": "text/event-stream"}
                )
                await response.prepare(request)
                async for chunk in up.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
            return web.Response(
                status=up.status, body=await up.read(), content_type="application/json"
            )

    async def session_ctx(app: web.Application) -> Any:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", handler)
    return app


def main() -> None:
    port, upstream, mirror = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    app = make_app(f"{upstream}/chat/completions", f"{mirror}/chat/completions")
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        backlog=2048,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
