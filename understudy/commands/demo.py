"""``understudy demo``: the proxy in front of two simulated upstreams, with traffic."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys

import structlog

from migrations import ensure_schema
from rollout.changes import NewValues, RolloutAction
from storage.database import Database, is_sqlite
from understudy.commands.common import Subparsers, settings_from_args
from understudy.logs import configure_logging
from understudy.server import RunningSite, run, start_site, wait_for_stop_signal
from understudy.settings import LogFormat, Settings
from understudy.simulated import CANDIDATE_PERSONA, OPENAI_PERSONA, simulated_upstream
from understudy.wiring import build_app, rollout_store, secret_redactor

QUESTIONS = (
    "How does a hash map handle collisions?",
    "Explain TCP slow start in two sentences.",
    "What is the difference between a process and a thread?",
    "Why do databases use write-ahead logging?",
    "Summarise how HTTPS protects a password.",
    "What does a load balancer do?",
)


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the proxy against built-in simulated OpenAI and self-hosted upstreams"
    )
    parser.add_argument("--port", type=int, default=8080, help="proxy port (default 8080)")
    parser.add_argument("--rate", type=float, default=2.0, help="generated requests per second")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument("--mode", choices=("shadow", "split"), default="shadow")
    parser.add_argument("--verbose", action="store_true", help="print one log line per exchange")
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    return run(demo(args))


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def demo(args: argparse.Namespace) -> int:
    openai_site = await start_site(simulated_upstream(OPENAI_PERSONA), "127.0.0.1", 0)
    local_site = await start_site(simulated_upstream(CANDIDATE_PERSONA), "127.0.0.1", 0)
    candidates = [
        {
            "name": "local-llama",
            "base_url": f"{local_site.url}/v1",
            "kind": "openai",
            "model_map": {"gpt-4o-mini": "llama-3.1-8b-instruct"},
            "timeout_s": 30,
        }
    ]
    settings = settings_from_args(
        args,
        port=args.port,
        primary={"base_url": f"{openai_site.url}/v1", "api_key": "sk-demo-not-a-real-key"},
        candidates=candidates,
        rollout={"mode": args.mode, "candidate": "local-llama", "percent": 25, "shadow_rate": 1.0},
        noise_rate=0.2,
        log_level="info" if args.verbose else "warning",
        log_format=LogFormat.CONSOLE,
    )
    configure_logging(settings.log_level, settings.log_format, redact=secret_redactor(settings))
    await _start_rollout(settings)
    proxy = await start_site(build_app(settings), settings.host, settings.port)
    _print_guide(proxy, settings.rollout.mode.value)
    counts: dict[str, int] = {}
    traffic = asyncio.get_running_loop().create_task(
        _generate(f"{proxy.url}/v1", args.rate, counts), name="demo-traffic"
    )
    try:
        if args.duration is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wait_for_stop_signal(), args.duration)
        else:
            await wait_for_stop_signal()
    finally:
        traffic.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await traffic
        await _stop(proxy, openai_site, local_site)
    _out(f"demo finished: answers by {json.dumps(counts, sort_keys=True)}")
    _out(f"recorded pairs are in {settings.database_url}; see them with:")
    _out("  understudy exchanges list")
    return 0


async def _start_rollout(settings: Settings) -> None:
    """Put the demo's rollout in the flag store: the settings only seed an empty store, and
    the demo's database may hold an earlier run's rollout."""
    await ensure_schema(settings.database_url, auto_upgrade=is_sqlite(settings.database_url))
    db = Database(settings.database_url)
    try:
        wanted = settings.rollout
        await rollout_store(settings, db).change(
            RolloutAction.SET,
            actor="demo",
            reason=f"understudy demo --mode {wanted.mode.value}",
            values=NewValues(
                mode=wanted.mode,
                candidate=wanted.candidate,
                percent=wanted.percent,
                shadow_rate=wanted.shadow_rate,
                noise_rate=settings.noise_rate,
            ),
        )
    finally:
        await db.dispose()


def _print_guide(proxy: RunningSite, mode: str) -> None:
    base = f"{proxy.url}/v1"
    _out(f"Understudy demo: proxy on {base} in {mode} mode")
    _out("  primary:   a simulated OpenAI (built in)")
    _out("  candidate: 'local-llama', a simulated self-hosted model (built in)")
    _out()
    _out("Try it:")
    _out(f"  curl -s {base}/chat/completions -H 'Content-Type: application/json' \\")
    _out('    -d \'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}\'')
    _out(f"  curl -s {proxy.url}/metrics | grep understudy_requests")
    _out("  understudy exchanges list          # the recorded answer pairs (another terminal)")
    _out(
        f"  python -c \"from openai import OpenAI; print(OpenAI(base_url='{base}', api_key='x')"
        ".chat.completions.create(model='gpt-4o-mini', messages=[{'role':'user','content':'hi'}])"
        '.choices[0].message.content)"'
    )
    _out()
    _out("Generating traffic; press Ctrl-C to stop.")


async def _generate(base_url: str, rate: float, counts: dict[str, int]) -> None:
    from openai import APIError, AsyncOpenAI, AsyncStream  # here: slow to import

    log = structlog.get_logger("understudy.demo")
    client = AsyncOpenAI(base_url=base_url, api_key="sk-demo-client", max_retries=0)
    rng = random.Random(7)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        try:
            stream = i % 2 == 1  # half streamed, so time to first token means something
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": rng.choice(QUESTIONS)}],
                user=f"demo-user-{i % 40}",
                stream=stream,
            )
            answer = raw.parse()
            if isinstance(answer, AsyncStream):
                async for _chunk in answer:
                    pass
            served = raw.headers.get("x-understudy-served-by", "?")
            counts[served] = counts.get(served, 0) + 1
        except APIError as exc:
            counts["errors"] = counts.get("errors", 0) + 1
            log.warning("demo_request_failed", error=type(exc).__name__)

    try:
        i = 0
        while True:
            task = asyncio.get_running_loop().create_task(one(i), name=f"demo-request-{i}")
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            i += 1
            if i % max(1, int(rate * 5)) == 0:
                _out(f"  {i} requests sent; answers by {json.dumps(counts, sort_keys=True)}")
            await asyncio.sleep(rng.expovariate(rate))
    finally:
        # Let requests already sent finish, so they are recorded as answered, not aborted.
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=5)
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await client.close()


async def _stop(*sites: RunningSite) -> None:
    for site in sites:
        await site.stop()
