"""``understudy serve``: run the proxy, its recorder, and optionally several workers."""

from __future__ import annotations

import argparse
import os
import sys

from understudy.commands.common import (
    EXIT_CONFIG,
    Subparsers,
    add_config_option,
    settings_from_args,
)
from understudy.host import serve_host
from understudy.logs import configure_logging
from understudy.server import run
from understudy.upstream_keys import secret_redactor


def worker_count(text: str) -> int:
    """``--workers``: a number of processes, or ``auto`` for one per core."""
    if text == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of workers or 'auto'") from None
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError("expected between 1 and 256 workers")
    return count


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run the proxy")
    add_config_option(parser)
    parser.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        help="proxy processes sharing the port (default 1; 'auto': one per core)",
    )
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format, redact=secret_redactor(settings))
    if args.workers > 1 and settings.port == 0:  # each worker would get a port of its own
        sys.stderr.write("understudy: --workers needs a fixed port (UNDERSTUDY_PORT), not 0\n")
        return EXIT_CONFIG
    return run(serve_host(settings, getattr(args, "config", None), args.workers))
