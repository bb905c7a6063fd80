"""Builds the running application from Settings: the only place concrete classes meet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from core import ExchangeSink
from core.memory_sink import DiscardingSink
from proxy.app import OPS, create_proxy_app
from proxy.config import BreakerConfig, Limits, ShadowCandidate, UpstreamConfig, WatchConfig
from proxy.tasks import BackgroundTasks
from proxy.upstream_set import UpstreamSet
from proxy.upstreams.base import server_root
from rollout.live import DatabaseFollower, LiveFlags, log_snapshot, watch_kill_file
from rollout.metrics import RolloutMetrics
from rollout.state import RolloutRules, RolloutSnapshot
from rollout.store import RolloutStore
from rollout.trips import RecentTrips
from storage.database import Database
from storage.flags import FlagRecord
from storage.recorder_link import RecorderLink
from storage.response_owners import ResponseOwnerRepository
from understudy.admin_wiring import attach_admin
from understudy.controller_wiring import ReportWorker, StageReports, build_controller
from understudy.recording import Lifecycle, build_link, build_writer
from understudy.settings import CandidateSettings, LimitAction, Settings
from understudy.upstream_keys import secret_redactor


def upstream_set(settings: Settings) -> UpstreamSet:
    primary = settings.primary
    return UpstreamSet.build(
        UpstreamConfig(
            name=primary.name,
            base_url=primary.base_url,
            kind="openai",
            api_key=primary.api_key.get_secret_value() if primary.api_key else None,
            timeout_s=primary.timeout_s,
            connect_timeout_s=primary.connect_timeout_s,
            stream_idle_timeout_s=primary.stream_idle_timeout_s,
            max_concurrency=primary.max_connections,
            idle_connection_timeout_s=primary.idle_connection_timeout_s,
        ),
        [
            UpstreamConfig(
                name=c.name,
                base_url=c.base_url,
                kind=c.kind.value,
                api_key=c.api_key.get_secret_value() if c.api_key else None,
                model_map=dict(c.model_map),
                timeout_s=c.timeout_s,
                connect_timeout_s=min(c.timeout_s, 5.0),
                stream_idle_timeout_s=c.stream_idle_timeout_s,
                max_concurrency=c.max_concurrency,
                idle_connection_timeout_s=c.idle_connection_timeout_s,
                watch=watch_config(c),
                responses=c.responses.value if c.responses else None,
                keep_alive=c.keep_alive,
                think=c.think,
            )
            for c in settings.candidates
        ],
    )


def watch_config(candidate: CandidateSettings) -> WatchConfig:
    metrics_url = None
    if candidate.scrape_metrics:
        metrics_url = candidate.metrics_url or f"{server_root(candidate.base_url)}/metrics"
    return WatchConfig(
        probe_interval_s=candidate.probe_interval_s,
        probe_timeout_s=candidate.probe_timeout_s,
        metrics_url=metrics_url,
        scrape_interval_s=candidate.scrape_interval_s,
        shed_shadows_above_queue=candidate.shed_shadows_above_queue,
    )


def limits(settings: Settings) -> Limits:
    lim = settings.limits
    return Limits(
        max_body_bytes=lim.max_body_bytes,
        max_n=lim.max_n,
        max_tokens=lim.max_tokens,
        clamp=lim.on_exceed is LimitAction.CLAMP,
        max_recorded_chars=lim.max_recorded_chars,
        max_header_bytes=lim.max_header_bytes,
        max_headers=lim.max_headers,
        header_timeout_s=lim.header_timeout_s,
        body_timeout_s=lim.body_timeout_s,
        max_json_depth=lim.max_json_depth,
        max_concurrent_requests=lim.max_concurrent_requests,
        shed_shadows_at=lim.shed_shadows_at,
    )


def breaker_config(settings: Settings) -> BreakerConfig:
    return BreakerConfig(**settings.breaker.model_dump())


def seed_flag(settings: Settings) -> FlagRecord:
    """The rollout the settings describe: the flag store's first row, or the only state."""
    r = settings.rollout
    return FlagRecord(
        route=None,
        mode=r.mode.value,
        candidate=r.candidate,
        percent=r.percent,
        shadow_rate=r.shadow_rate,
        noise_rate=settings.noise_rate,
        reverse_shadow_rate=r.reverse_shadow_rate,
    )


def rollout_rules(settings: Settings) -> RolloutRules:
    return RolloutRules(
        flag_key=settings.rollout.flag_key,
        candidates=tuple(c.name for c in settings.candidates),
        allow_embeddings_split=settings.rollout.allow_embeddings_split,
    )


def rollout_store(settings: Settings, db: Database) -> RolloutStore:
    return RolloutStore(db, rollout_rules(settings), seed_flag(settings))


def build_rollout(
    settings: Settings,
    registry: CollectorRegistry,
    *,
    from_database: bool,
    reports: StageReports,
    trips: RecentTrips | None = None,
) -> tuple[LiveFlags, Lifecycle]:
    """The FlagSource requests read, and the lifecycle that keeps it current.

    ``from_database``: the flag store in ``settings.database_url`` is the rollout and is
    followed, and its controller builds stage reports through ``reports`` and rolls back
    on ``trips``; otherwise the settings are. The kill file is watched either way.
    """
    rules = rollout_rules(settings)
    poll_s = settings.rollout.poll_interval_s
    configured = RolloutSnapshot.build({None: seed_flag(settings)}, rules)
    flags = LiveFlags(configured, RolloutMetrics(registry))

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        tasks = BackgroundTasks()
        db: Database | None = None
        if from_database:
            db = Database(settings.database_url)
            store = rollout_store(settings, db)
            follower = DatabaseFollower(db, store, rules, flags, poll_s=poll_s)
            control = settings.rollout.controller
            try:
                controller = build_controller(settings, db, store, registry, reports, trips=trips)
                await follower.load()
            except BaseException:
                await db.dispose()
                raise
            tasks.spawn(follower.run(), name="rollout-flags")
            if control.enabled:
                tasks.spawn(controller.run(control.interval_s), name="rollout-controller")
        else:
            log_snapshot("rollout_loaded", configured)
        if settings.kill_file is not None:
            tasks.spawn(
                watch_kill_file(settings.kill_file, flags, poll_s), name="rollout-kill-file"
            )
        yield
        await tasks.drain(0)  # both loops run until cancelled
        reports.close()
        if db is not None:
            await db.dispose()

    return flags, lifecycle


RECORDER_LINK = web.AppKey("recorder_link", RecorderLink)


async def _with_recorder(own: Callable[[], Awaitable[bytes]], link: RecorderLink) -> bytes:
    return await own() + await link.recorder_metrics()


def build_app(
    settings: Settings,
    *,
    sink: ExchangeSink | None = None,
    registry: CollectorRegistry | None = None,
    recorder_socket: Path | None = None,
) -> web.Application:
    """The full server: proxy routes plus everything wired behind them.

    Without an explicit ``sink``, exchanges are recorded in ``settings.database_url``:
    by the recorder process listening on ``recorder_socket``, or else in this process.
    """
    registry = registry or CollectorRegistry()
    recording = None
    link = None
    if sink is None and not settings.storage.enabled:
        sink = DiscardingSink()
    elif sink is None and recorder_socket is not None:
        link, recording = build_link(settings, registry, recorder_socket)
        sink = link
    elif sink is None:
        writer, recording = build_writer(settings, registry)
        sink = writer
    # The flag store lives in the database the proxy records to; without one, the settings.
    from_database = recording is not None
    reports = StageReports(settings, ReportWorker())  # the controller's and the admin API's
    # Trips become rollbacks through the controller; without one they stay metrics.
    guarded = from_database and settings.rollout.controller.enabled
    trips = RecentTrips() if guarded else None
    flags, following = build_rollout(
        settings, registry, from_database=from_database, reports=reports, trips=trips
    )
    # Which arm holds each Responses API response, shared by replicas through the database.
    responses_db = Database(settings.database_url) if from_database else None
    app = create_proxy_app(
        upstreams=upstream_set(settings),
        flags=flags,
        sink=sink,
        registry=registry,
        limits=limits(settings),
        redact=secret_redactor(settings),
        sink_depth=getattr(sink, "queue_depth", None),
        shutdown_grace_s=settings.shutdown_grace_s,
        breaker=breaker_config(settings),
        trips=trips,
        shadow_candidates=tuple(
            ShadowCandidate(c.name, c.rate) for c in settings.rollout.shadow_candidates
        ),
        response_store=(
            ResponseOwnerRepository(
                responses_db,
                # Turns hold prompts and answers: kept only where both are stored, and
                # redacted as stored exchanges are.
                keep_turns=settings.storage.store_prompts and settings.storage.store_responses,
                redact=settings.storage.privacy_policy().redact_text,
            )
            if responses_db
            else None
        ),
    )
    if responses_db is not None:
        app.on_cleanup.append(partial(_dispose, responses_db))  # after the proxy's last write
    if link is not None:
        app[RECORDER_LINK] = link
        app[OPS].exposition = partial(_with_recorder, app[OPS].own_metrics, link)
    stored = partial(rollout_store, settings) if from_database else None
    attach_admin(app, settings, flags, stored, reports)
    # Before the proxy's own start-up: the flags are read before the first request.
    app.cleanup_ctx.insert(0, following)
    if recording is not None:
        # First in, last out: the writer starts before the proxy and stops after the
        # proxy's background calls have finished and handed over their exchanges. It
        # also checks the schema, so it starts before the flags are read.
        app.cleanup_ctx.insert(0, recording)
    return app


async def _dispose(db: Database, _app: web.Application) -> None:
    await db.dispose()
