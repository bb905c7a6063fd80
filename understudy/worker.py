"""A worker process of ``understudy serve --workers N``: one proxy on the shared port.

Started by the parent as ``python -m understudy.worker``; it reads the same
settings as the parent and hands its exchanges to the parent's recorder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prometheus_client import CollectorRegistry

from understudy.commands.common import settings_from_args
from understudy.logs import configure_logging
from understudy.proxy_process import serve_proxy
from understudy.server import run, wait_for_stop_or_parent
from understudy.upstream_keys import secret_redactor
from understudy.worker_metrics import WorkerSeat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m understudy.worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--recorder-socket", type=Path, default=None)
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format, redact=secret_redactor(settings))
    seat = WorkerSeat(args.folder, args.index, args.count)
    registry = CollectorRegistry()
    return run(
        serve_proxy(
            settings, registry, args.recorder_socket, seat=seat, until=wait_for_stop_or_parent
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
