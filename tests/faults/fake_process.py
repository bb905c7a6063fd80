"""A fake upstream in a process of its own.

A fake served from a thread of the test process shares its GIL with the load
generator: every switch can hold a request up to 5 ms, which is noise larger than
the latency differences these tests measure. Run as

    python -m tests.faults.fake_process '{"first_byte_delay_s": 0.02, "error_ratio": 0.5}'

it prints ``{"port": N}`` once listening and serves until SIGTERM. Control routes
(sent with ``x-fake-fault: none`` so a switched-on fault never applies to them):
``POST /_fake/fault`` with ``{"fault": "hang"}`` or ``{"fault": null}``, and
``GET /_fake/questions``: the last message of every chat request received, in order.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.fakes import FAULT_HEADER, FakeOpenAI, start_server
from tests.faults.flaky import CHAT_PATH, FlakyOpenAI
from tests.faults.serve import REPO

CONTROL_TIMEOUT_S = 10.0


def build_fake(config: dict[str, Any]) -> FakeOpenAI:
    options = dict(config)
    error_ratio = options.pop("error_ratio", None)
    if error_ratio is not None:
        return FlakyOpenAI(error_ratio=float(error_ratio), **options)
    return FakeOpenAI(**options)


def control_app(fake: FakeOpenAI) -> web.Application:
    app = fake.app

    async def set_fault(request: web.Request) -> web.Response:
        fake.fault = (await request.json())["fault"]
        return web.json_response({"fault": fake.fault})

    async def questions(_request: web.Request) -> web.Response:
        asked = [
            r.body["messages"][-1]["content"]
            for r in fake.requests_to(CHAT_PATH)
            if isinstance(r.body, dict) and r.body.get("messages")
        ]
        return web.json_response({"questions": asked, "calls": len(fake.requests_to(CHAT_PATH))})

    app.router.add_post("/_fake/fault", set_fault)
    app.router.add_get("/_fake/questions", questions)
    return app


async def serve(config: dict[str, Any]) -> None:
    server = await start_server(control_app(build_fake(config)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    port = server.url.rsplit(":", 1)[1]
    sys.stdout.write(json.dumps({"port": int(port)}) + "\n")
    sys.stdout.flush()
    await stop.wait()
    await server.close()


class FakeProcess:
    """Starts ``python -m tests.faults.fake_process`` and talks to its control routes."""

    def __init__(self, **config: Any) -> None:
        self._config = config
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.fake_process", json.dumps(self._config)],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.kill()
            raise AssertionError("fake upstream process exited before listening")
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={FAULT_HEADER: "none", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def set_fault(self, fault: str | None) -> None:
        self._call("/_fake/fault", {"fault": fault})

    def questions(self) -> list[str]:
        """The last message of every chat request the fake received, in order."""
        return list(self._call("/_fake/questions")["questions"])


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.argv[1])))
