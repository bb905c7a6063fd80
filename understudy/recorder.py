"""The recorder process: redaction, batching, database writes, spill and replay, off the proxy.

``understudy serve`` starts it as ``python -m understudy.recorder --socket PATH``
with the same settings. Proxies hand it exchanges over the socket
(storage/handoff.py). Its standard input is a lifeline: when the parent closes it,
or dies, the recorder stops taking exchanges, drains its queue into the database
within the shutdown grace, spills the rest, and exits. SIGINT and SIGTERM mean the
same; the parent starts it in a session of its own, so a Ctrl-C in a terminal
reaches only the parent, which stops the proxy first.
"""

from __future__ import annotations

import argparse
import gc
import os
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, generate_latest

from migrations import ensure_schema
from storage.database import Database, is_sqlite
from storage.recorder_service import RecorderService
from understudy.commands.common import settings_from_args
from understudy.logs import configure_logging
from understudy.recording import writer_for
from understudy.server import run, wait_for_stop_or_parent
from understudy.settings import Settings
from understudy.upstream_keys import secret_redactor

log = structlog.get_logger("understudy.recorder")

EXIT_CANNOT_START = 3


async def record(settings: Settings, socket_path: Path) -> int:
    try:
        await ensure_schema(settings.database_url, auto_upgrade=is_sqlite(settings.database_url))
    except Exception as exc:
        log.error("recorder_cannot_start", error=str(exc))
        return EXIT_CANNOT_START
    registry = CollectorRegistry()
    service = RecorderService(lambda: generate_latest(registry))
    database = Database(settings.database_url)
    writer = writer_for(settings, database, registry, on_settled=service.settled)
    await writer.start()
    try:
        await service.serve(writer, socket_path)
        # What start-up allocated lives until exit: out of the collector's generations,
        # it is not traversed again by every full collection the exchanges' garbage sets off.
        gc.freeze()
        log.info("recorder_listening", pid=os.getpid())
        await wait_for_stop_or_parent()
        log.info("recorder_stopping")
        await service.close()
    finally:
        try:
            await writer.stop(settings.shutdown_grace_s)
        finally:
            await database.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m understudy.recorder")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format, redact=secret_redactor(settings))
    return run(record(settings, args.socket))


if __name__ == "__main__":
    raise SystemExit(main())
