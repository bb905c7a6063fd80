"""One log stream: structlog and stdlib loggers (aiohttp, asyncio, warnings, any library) as
one JSON object per line, through one redaction policy, never losing a line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from understudy.logs import (
    MAX_FIELD_CHARS,
    LineSink,
    StdlibHandler,
    configure_logging,
    log_loop_exception,
    stdlib_formatter,
)
from understudy.server import run, start_site
from understudy.settings import LogFormat, Settings
from understudy.upstream_keys import secret_redactor

CANARY_KEY = "sk-canary-3b9e1f7a2c8d4e6f"
CANARY_PROMPT = "canary prompt: the launch codes are 0000"


class Logs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, each of which must be exactly one JSON object."""
        parsed = [json.loads(line) for line in self.text().splitlines()]
        assert all(isinstance(p, dict) for p in parsed)
        return parsed

    def event(self, name: str) -> dict[str, Any]:
        [found] = [line for line in self.lines() if line["event"] == name]
        return found


@pytest.fixture
def logs() -> Iterator[Logs]:
    captured = Logs()
    configure_logging("info", LogFormat.JSON, stream=captured.stream, cache=False)
    yield captured
    configure_logging("info", LogFormat.JSON, stream=io.StringIO(), cache=False)


class Exchange:
    """Stands for an object whose repr holds a prompt."""

    def __repr__(self) -> str:
        return f"<Exchange messages=[{CANARY_PROMPT!r}]>"


# -- structlog events ---------------------------------------------------------------


def test_common_fields_and_one_line_per_event(logs: Logs) -> None:
    structlog.get_logger("understudy.test").info("hello", n=1)
    line = logs.event("hello")
    assert line["level"] == "info" and line["logger"] == "understudy.test" and line["n"] == 1
    assert line["timestamp"].endswith("Z")


def test_a_key_in_an_exception_message_is_masked_and_the_traceback_is_one_field(
    logs: Logs,
) -> None:
    try:
        raise ValueError(f"upstream refused key {CANARY_KEY}")
    except ValueError:
        structlog.get_logger("understudy.test").exception("failed")
    assert CANARY_KEY not in logs.text()
    line = logs.event("failed")
    assert line["exception"].startswith("ValueError: upstream refused key [redacted:key]")
    assert "test_logs.py" in line["exception"]  # frames are kept
    assert len(logs.text().splitlines()) == 1


def test_a_key_in_a_header_like_string_is_masked(logs: Logs) -> None:
    log = structlog.get_logger("understudy.test")
    log.warning(
        "raw", header=f"Authorization: Bearer {CANARY_KEY}", line=f"x-api-key: {CANARY_KEY}"
    )
    assert CANARY_KEY not in logs.text()
    assert "[redacted:key]" in logs.event("raw")["header"]


def test_nested_secrets_are_masked_by_value_and_by_field_name(logs: Logs) -> None:
    structlog.get_logger("understudy.test").info(
        "nested",
        request={"body": {"messages": [{"content": f"my key is {CANARY_KEY}"}]}},
        upstream={"api_key": "plainpassword", "Authorization": "whatever", "name": "openai"},
    )
    assert CANARY_KEY not in logs.text() and "plainpassword" not in logs.text()
    line = logs.event("nested")
    assert line["upstream"] == {
        "api_key": "[redacted:key]",
        "Authorization": "[redacted:key]",
        "name": "openai",
    }


def test_a_lone_surrogate_does_not_lose_the_line(logs: Logs) -> None:
    structlog.get_logger("understudy.test").info(
        "odd", text="before\ud800after", keyed={"k\udfff": 1}
    )
    line = logs.event("odd")
    assert line["text"] == "before\\ud800after"


def test_unprintable_and_unserializable_values_do_not_lose_the_line(logs: Logs) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    structlog.get_logger("understudy.test").info(
        "odd", broken=Broken(), big=10**40, key_types={1: "a", (2, 3): "b"}, nan=float("nan")
    )
    line = logs.event("odd")
    assert line["broken"].startswith("<unprintable ") and line["broken"].endswith("Broken>")
    assert line["big"] == str(10**40) and line["nan"] is None
    assert line["key_types"] == {"1": "a", "(2, 3)": "b"}


def test_long_values_are_truncated_before_redaction_and_marked(logs: Logs) -> None:
    huge = "x" * (MAX_FIELD_CHARS * 50) + CANARY_KEY
    structlog.get_logger("understudy.test").info("long", text=huge, items=list(range(10_000)))
    line = logs.event("long")
    assert line["text"].endswith(f"…[truncated {len(huge) - MAX_FIELD_CHARS} chars]")
    assert len(logs.text()) < 3 * MAX_FIELD_CHARS
    assert line["items"][-1] == f"[{10_000 - 64} more items]"


def test_console_format_is_redacted_too() -> None:
    stream = io.StringIO()
    configure_logging("info", LogFormat.CONSOLE, stream=stream, cache=False)
    try:
        structlog.get_logger("understudy.test").info("hello", key=CANARY_KEY)
        logging.getLogger("aiohttp.server").warning("header %s", f"Bearer {CANARY_KEY}")
    finally:
        configure_logging("info", LogFormat.JSON, stream=io.StringIO(), cache=False)
    assert "hello" in stream.getvalue() and "header" in stream.getvalue()
    assert CANARY_KEY not in stream.getvalue()


# -- stdlib loggers -------------------------------------------------------------------


def test_any_library_logger_comes_out_as_json_through_the_same_redaction(logs: Logs) -> None:
    logging.getLogger("sqlalchemy.engine").warning(
        "connect %s", f"postgresql://u:{CANARY_KEY}@h/db"
    )
    logging.getLogger("alembic.runtime.migration").warning("Running upgrade")
    assert CANARY_KEY not in logs.text()
    line = logs.event("Running upgrade")
    assert line["level"] == "warning" and line["logger"] == "alembic.runtime.migration"
    assert "timestamp" in line


def test_a_record_that_cannot_be_rendered_still_leaves_a_json_line() -> None:
    # Straight to the product's handler: pytest's own capture handler would raise first.
    stream = io.StringIO()
    handler = StdlibHandler(LineSink(stream, is_json=True), stdlib_formatter(True))
    record = logging.makeLogRecord(
        {"name": "some.library", "levelno": logging.ERROR, "msg": "%d items", "args": ("x",)}
    )
    handler.handle(record)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "log_line_unrenderable"
    assert line["logger"] == "some.library" and line["error"] == "TypeError"


def test_warnings_come_out_as_json(logs: Logs) -> None:
    logging.captureWarnings(False)  # pytest swapped showwarning since configure_logging ran
    logging.captureWarnings(True)
    try:
        warnings.warn(f"deprecated, key {CANARY_KEY}", DeprecationWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
    [line] = [e for e in logs.lines() if e["logger"] == "py.warnings"]
    assert "DeprecationWarning" in line["event"] and CANARY_KEY not in logs.text()


async def test_aiohttp_access_and_server_loggers_come_out_as_json(logs: Logs) -> None:
    async def fail(request: web.Request) -> web.Response:
        raise RuntimeError(f"bad key {CANARY_KEY}")

    app = web.Application()
    app.router.add_get("/fail", fail)
    # aiohttp's own runner, access log on: what any aiohttp app in the process would write.
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/fail") as resp,
    ):
        assert resp.status == 500
    await runner.cleanup()

    assert CANARY_KEY not in logs.text()
    lines = logs.lines()
    [server] = [e for e in lines if e["logger"] == "aiohttp.server"]
    assert server["level"] == "error"
    assert server["exception"].startswith("RuntimeError: bad key [redacted:key]")
    [access] = [e for e in lines if e["logger"] == "aiohttp.access"]
    assert '"GET /fail HTTP/1.1" 500' in access["event"]


async def test_our_server_answers_a_handler_crash_in_openai_shape_and_logs_it_as_json(
    logs: Logs,
) -> None:
    async def fail(request: web.Request) -> web.Response:
        raise RuntimeError(f"bad key {CANARY_KEY}")

    app = web.Application()
    app.router.add_get("/fail", fail)
    site = await start_site(app, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as session, session.get(f"{site.url}/fail") as resp:
        body = await resp.json()
        assert resp.status == 500 and body["error"]["type"] == "server_error"
    await site.stop()
    assert CANARY_KEY not in logs.text() and CANARY_KEY not in json.dumps(body)
    line = logs.event("http_request_rejected")
    assert line["status"] == 500 and line["exception"].startswith("RuntimeError")


# -- asyncio ------------------------------------------------------------------------


def fail_with_prompt_in_reach(future: asyncio.Future[Exchange]) -> None:
    raise KeyError("callback failed")


async def run_failing_done_callback() -> None:
    future: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
    future.add_done_callback(fail_with_prompt_in_reach)
    future.set_result(Exchange())  # the callback's handle repr now holds the prompt
    await asyncio.sleep(0.01)


async def test_loop_exception_handler_logs_one_line_without_reprs(logs: Logs) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(log_loop_exception)
    try:
        await run_failing_done_callback()
    finally:
        loop.set_exception_handler(previous)
    assert "canary" not in logs.text()
    line = logs.event("event_loop_exception")
    assert line["logger"] == "asyncio" and line["level"] == "error"
    assert line["message"] == "Exception in callback fail_with_prompt_in_reach"
    assert line["exception"].startswith("KeyError: 'callback failed'")
    assert "fail_with_prompt_in_reach" in line["exception"]


async def test_asyncios_default_handler_loses_its_reprs_too(logs: Logs) -> None:
    # A loop without our handler (a library's, a test's) logs through the "asyncio" logger.
    await run_failing_done_callback()
    assert "canary" not in logs.text()
    [line] = [e for e in logs.lines() if e["logger"] == "asyncio"]
    assert line["event"] == "Exception in callback fail_with_prompt_in_reach"
    assert line["exception"].startswith("KeyError")


def test_run_installs_the_handler_on_the_loop_it_creates(logs: Logs) -> None:
    async def main() -> int:
        assert asyncio.get_running_loop().get_exception_handler() is log_loop_exception
        await run_failing_done_callback()
        return 7

    assert run(main()) == 7
    assert "canary" not in logs.text()
    assert logs.event("event_loop_exception")["message"].startswith("Exception in callback")


def test_configured_keys_are_masked_by_value_whatever_their_shape() -> None:
    # An operator key with no recognisable prefix: only its value can find it.
    shapeless = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    settings = Settings(primary={"api_key": shapeless})
    captured = Logs()
    configure_logging(
        "info",
        LogFormat.JSON,
        stream=captured.stream,
        cache=False,
        redact=secret_redactor(settings),
    )
    try:
        structlog.get_logger("t").warning("upstream_said", detail=f"bad key {shapeless}")
        logging.getLogger("aiohttp.client").warning("echo %s", shapeless)
    finally:
        configure_logging("info", LogFormat.JSON, stream=io.StringIO(), cache=False)
    assert len(captured.lines()) == 2
    assert shapeless not in captured.text()
    assert captured.text().count("[redacted:key]") == 2


def test_libraries_that_log_their_data_stay_quiet_at_debug() -> None:
    captured = Logs()
    configure_logging("debug", LogFormat.JSON, stream=captured.stream, cache=False)
    try:
        for name in ("aiosqlite", "asyncpg", "sqlalchemy.engine.Engine"):
            logging.getLogger(name).debug("executing %s", CANARY_PROMPT)
            logging.getLogger(name).info("executing %s", CANARY_PROMPT)
        logging.getLogger("aiohttp.client").debug("still here")
    finally:
        configure_logging("info", LogFormat.JSON, stream=io.StringIO(), cache=False)
    assert CANARY_PROMPT not in captured.text()
    assert [line["event"] for line in captured.lines()] == ["still here"]
