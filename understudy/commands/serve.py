"""``understudy serve``: run the proxy."""

from __future__ import annotations

import argparse
import gc
import sys

import structlog

from core import ConfigError
from storage.errors import StorageError
from understudy.admin_wiring import ADMIN_APP, ADMIN_PREFIX
from understudy.commands.common import (
    EXIT_CONFIG,
    Subparsers,
    add_config_option,
    settings_from_args,
)
from understudy.logs import configure_logging
from understudy.server import RunningSite, run, start_site, wait_for_stop_signal
from understudy.settings import Settings
from understudy.wiring import build_app, limits, secret_redactor


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run the proxy")
    add_config_option(parser)
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format, redact=secret_redactor(settings))
    return run(serve(settings))


async def serve(settings: Settings) -> int:
    log = structlog.get_logger("understudy")
    app = build_app(settings)
    admin_site: RunningSite | None = None
    try:
        site = await start_site(
            app,
            settings.host,
            settings.port,
            shutdown_timeout=settings.shutdown_grace_s,
            limits=limits(settings),
        )
        if ADMIN_APP in app and settings.admin_port is not None:
            try:
                admin_site = await start_site(
                    app[ADMIN_APP], settings.host, settings.admin_port, limits=limits(settings)
                )
            except OSError:
                await site.stop()
                raise
    except ConfigError as exc:  # found at start-up: a mapped model the candidate lacks
        sys.stderr.write(f"understudy: configuration error: {exc}\n")
        return EXIT_CONFIG
    except (StorageError, OSError) as exc:  # schema behind, database or port unusable
        # One JSON line like every other, and redacted: the error may quote a database URL.
        log.error("cannot_start", error=str(exc))
        return 1
    # Everything allocated at start-up lives until exit: keeping it out of the
    # collector's generations shortens the pauses the proxy would otherwise see.
    gc.freeze()
    log.info(
        "listening",
        url=f"{site.url}/v1",
        primary=settings.primary.base_url,
        candidates=[c.name for c in settings.candidates],
        mode=settings.rollout.mode.value,
        admin_api=f"{admin_site.url if admin_site else site.url}{ADMIN_PREFIX}",
    )
    try:
        await wait_for_stop_signal()
    finally:
        log.info("stopping")
        if admin_site is not None:
            await admin_site.stop()
        await site.stop()
    return 0
