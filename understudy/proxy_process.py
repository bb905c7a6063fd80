"""One proxy process: the app on its port (and the admin port), until a stop signal.

``understudy serve`` runs it in its own process when there is one worker, or in
each worker process when there are several; workers share the port through
SO_REUSEPORT and the kernel spreads connections between them.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from core import ConfigError
from proxy.app import OPS
from storage.errors import StorageError
from understudy.admin_wiring import ADMIN_APP, ADMIN_PREFIX
from understudy.commands.common import EXIT_CONFIG
from understudy.server import RunningSite, start_site, wait_for_stop_signal
from understudy.settings import Settings
from understudy.wiring import RECORDER_LINK, build_app, limits
from understudy.worker_metrics import WorkerSeat

log = structlog.get_logger("understudy")


async def serve_proxy(
    settings: Settings,
    registry: CollectorRegistry,
    recorder_socket: Path | None,
    *,
    seat: WorkerSeat | None = None,
    until: Callable[[], Awaitable[None]] = wait_for_stop_signal,
) -> int:
    """Serve until ``until`` returns (SIGTERM or SIGINT); 0, or a failed start's exit code."""
    app = build_app(settings, registry=registry, recorder_socket=recorder_socket)
    if seat is not None:
        link = app.get(RECORDER_LINK)
        seat.attach(app[OPS].own_metrics, link.recorder_metrics if link else None)
        app[OPS].exposition = seat.exposition
    shared = seat is not None  # several workers listen on the same port
    admin_site: RunningSite | None = None
    try:
        site = await start_site(
            app,
            settings.host,
            settings.port,
            shutdown_timeout=settings.shutdown_grace_s,
            limits=limits(settings),
            reuse_port=shared,
        )
        if ADMIN_APP in app and settings.admin_port is not None:
            try:
                admin_site = await start_site(
                    app[ADMIN_APP],
                    settings.host,
                    settings.admin_port,
                    limits=limits(settings),
                    reuse_port=shared,
                )
            except OSError:
                await site.stop()
                raise
        if seat is not None:
            await seat.start()
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
        worker=seat.index if seat is not None else None,
        admin_api=f"{admin_site.url if admin_site else site.url}{ADMIN_PREFIX}",
    )
    try:
        await until()
    finally:
        log.info("stopping")
        if seat is not None:
            await seat.stop()
        if admin_site is not None:
            await admin_site.stop()
        await site.stop()
    return 0
