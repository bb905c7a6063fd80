"""Everything ``understudy serve`` runs on one host.

One recorder process (redaction, batching, database writes, spill and replay),
started first and stopped last, so it settles whatever the proxies handed over
while they drained. Then either the proxy in this process, or with ``--workers N``
N worker processes sharing the port, each restarted if it dies; this process then
only supervises them and serves their restart counts to the workers' ``/metrics``.
The rollout controller runs in whichever process holds the database's leader lock.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Counter, generate_latest

from understudy.children import ChildFailed, ChildProcess
from understudy.commands.common import EXIT_CONFIG
from understudy.proxy_process import serve_proxy
from understudy.server import wait_for_stop_signal
from understudy.settings import Settings
from understudy.worker_metrics import serve_metrics, supervisor_socket, worker_socket

log = structlog.get_logger("understudy")


def records_in_a_process(settings: Settings, workers: int) -> bool:
    if not settings.storage.enabled:
        return False
    return workers > 1 or settings.storage.recorder == "process"


def _python(module: str, config: Path | None, *args: str) -> list[str]:
    argv = [sys.executable, "-m", module, *args]
    return [*argv, "--config", str(config)] if config is not None else argv


def _exit_code(exc: Exception) -> int:
    failed_with = exc.exit_code if isinstance(exc, ChildFailed) else None
    return EXIT_CONFIG if failed_with == EXIT_CONFIG else 1


async def serve_host(settings: Settings, config: Path | None, workers: int) -> int:
    # A private folder (0700): the sockets in it carry prompts and answers.
    folder = Path(tempfile.mkdtemp(prefix="understudy-"))
    registry = CollectorRegistry()
    recorder = None
    if records_in_a_process(settings, workers):
        socket = folder / "recorder.sock"
        recorder = ChildProcess(
            "recorder",
            _python("understudy.recorder", config, "--socket", str(socket)),
            socket,
            Counter(
                "understudy_recorder_restarts",
                "Times the recorder process died and was started again.",
                registry=registry,
            ),
            stop_grace_s=settings.shutdown_grace_s,
            own_session=True,
        )
    try:
        if recorder is not None:
            try:
                await recorder.start()
            except (ChildFailed, OSError) as exc:
                log.error("cannot_start", error=str(exc))
                return _exit_code(exc)
        recorder_socket = recorder.socket_path if recorder is not None else None
        if workers == 1:
            return await serve_proxy(settings, registry, recorder_socket)
        return await _run_workers(settings, config, workers, folder, registry, recorder_socket)
    finally:
        if recorder is not None:
            await recorder.stop()  # last: it settles what the proxies handed over
        shutil.rmtree(folder, ignore_errors=True)


async def _run_workers(
    settings: Settings,
    config: Path | None,
    count: int,
    folder: Path,
    registry: CollectorRegistry,
    recorder_socket: Path | None,
) -> int:
    restarts = Counter(
        "understudy_worker_restarts",
        "Times a worker process died and was started again.",
        registry=registry,
    )

    async def own() -> bytes:
        return generate_latest(registry)

    metrics = await serve_metrics(supervisor_socket(folder), own)
    children = []
    for index in range(count):
        args = ["--index", str(index), "--count", str(count), "--folder", str(folder)]
        if recorder_socket is not None:
            args += ["--recorder-socket", str(recorder_socket)]
        children.append(
            ChildProcess(
                f"worker-{index}",
                _python("understudy.worker", config, *args),
                worker_socket(folder, index),
                restarts,
                stop_grace_s=settings.shutdown_grace_s,
                own_session=True,
            )
        )
    try:
        started = await asyncio.gather(*(c.start() for c in children), return_exceptions=True)
        failed = [r for r in started if isinstance(r, Exception)]
        if failed:
            log.error("cannot_start", error=str(failed[0]))
            return _exit_code(failed[0])
        log.info("workers_listening", workers=count, pids=[c.pid for c in children])
        await wait_for_stop_signal()
        log.info("stopping", workers=count)
        return 0
    finally:
        # Each worker drains its requests and hands its last exchanges to the recorder.
        await asyncio.gather(*(c.stop() for c in children))
        await metrics.cleanup()
