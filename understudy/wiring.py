"""Builds the running application from Settings: the only place concrete classes meet."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from core import ExchangeSink, FlagState
from core.memory_sink import DiscardingSink
from proxy.app import create_proxy_app
from proxy.config import Limits, UpstreamConfig
from proxy.upstream_set import UpstreamSet
from rollout.static_flags import StaticFlagSource
from understudy.recording import build_writer
from understudy.settings import LimitAction, Settings


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
            )
            for c in settings.candidates
        ],
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


def static_flag(settings: Settings) -> FlagState:
    r = settings.rollout
    return FlagState(
        key=r.flag_key,
        mode=r.mode,
        candidate=r.candidate,
        percent=r.percent,
        shadow_rate=r.shadow_rate,
        noise_rate=settings.noise_rate,
        version=0,
    )


def build_app(
    settings: Settings,
    *,
    sink: ExchangeSink | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The full server: proxy routes plus everything wired behind them.

    Without an explicit ``sink``, exchanges are recorded in ``settings.database_url``.
    """
    registry = registry or CollectorRegistry()
    recording = None
    if sink is None and not settings.storage.enabled:
        sink = DiscardingSink()
    elif sink is None:
        writer, recording = build_writer(settings, registry)
        sink = writer
    app = create_proxy_app(
        upstreams=upstream_set(settings),
        flags=StaticFlagSource(static_flag(settings)),
        sink=sink,
        registry=registry,
        limits=limits(settings),
        sink_depth=getattr(sink, "queue_depth", None),
        shutdown_grace_s=settings.shutdown_grace_s,
    )
    if recording is not None:
        # First in, last out: the writer starts before the proxy and stops after the
        # proxy's background calls have finished and handed over their exchanges.
        app.cleanup_ctx.insert(0, recording)
    return app
