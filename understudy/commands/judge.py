"""``understudy judge``: an LLM judge's pairwise verdicts on stored shadow pairs.

Pairs already judged by the same judge model and prompt version are skipped,
so the command can run again and again (from cron, say) and only new pairs
cost anything. Results go to the judgments table, where ``understudy report``
counts them in its quality metric.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from core import Route
from core.outcome import PairOutcome
from core.turns import responses_turns
from storage.database import Database
from storage.judge_queries import PairToJudge, count_unjudged, unjudged_pairs
from storage.judgments import Judgment, add_judgments
from storage.pair_outcomes import compared_candidates
from storage.report_samples import candidates_in
from storage.window import ExchangeWindow
from understudy.commands.common import (
    EXIT_CONFIG,
    Subparsers,
    add_config_option,
    settings_from_args,
    when,
)
from understudy.commands.db import fail, open_current, run_storage
from understudy.commands.report import non_negative, whole
from understudy.settings import Settings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from evaluation.judge import JudgeBudget, JudgeConfig, JudgePair, JudgeRun

# The openai SDK and evaluation are imported when a judging run starts: they are
# slow to import, and every other command starts without them.

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BATCH_PAIRS = 50  # judged, then stored, at a time: an interrupted run keeps what it paid for


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "judge", help="judge stored shadow pairs with an LLM (any OpenAI-compatible endpoint)"
    )
    parser.add_argument("--model", required=True, help="the judge model, e.g. gpt-4o")
    parser.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help=f"the judge's API (default {DEFAULT_BASE_URL})"
    )
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="NAME",
        help="environment variable holding the judge's API key (default OPENAI_API_KEY)",
    )
    parser.add_argument("--since", type=when, help="ISO 8601 time, or an age like 24h or 7d")
    parser.add_argument("--until", type=when, help="ISO 8601 time, or an age like 1h")
    parser.add_argument("--route", choices=[r.value for r in Route])
    parser.add_argument(
        "--candidate",
        metavar="NAME",
        help="the candidate whose pairs to judge (default: the rollout's and the shadow candidates)",
    )
    parser.add_argument(
        "--all-candidates",
        action="store_true",
        help="judge the pairs of every candidate recorded in the window",
    )
    parser.add_argument("--limit", type=whole, help="judge at most N pairs (default: all)")
    parser.add_argument(
        "--replay", type=whole, metavar="RUN", help="judge a replay run's pairs instead"
    )
    parser.add_argument(
        "--max-requests", type=whole, default=1000, help="judge API calls allowed (default 1000)"
    )
    parser.add_argument(
        "--max-usd", type=non_negative, default=5.0, help="dollars allowed (default 5)"
    )
    parser.add_argument(
        "--concurrency", type=whole, default=4, help="pairs judged at once (default 4)"
    )
    add_config_option(parser)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    key = os.environ.get(args.api_key_env, "")
    if not key:
        fail(f"environment variable {args.api_key_env} is not set: it must hold the judge's key")
        return EXIT_CONFIG
    settings = settings_from_args(args)
    return run_storage(_judge(args, settings, key))


# ---- what the judge reads ---------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(str(p) for p in parts if p)
    return "" if content is None else str(content)


def request_text(request: Mapping[str, Any] | None) -> str:
    """The user's request as the judge sees it: the conversation, or the prompt."""
    if not request:
        return "(the request was not stored)"
    if (turns := responses_turns(request)) is not None:
        return "\n".join(f"{role}: {text}" for role, text in turns) or "(empty conversation)"
    messages = request.get("messages")
    if isinstance(messages, list):
        lines = [
            f"{m.get('role', 'user')}: {_content_text(m.get('content'))}"
            for m in messages
            if isinstance(m, dict)
        ]
        return "\n".join(lines) or "(empty conversation)"
    prompt = request.get("prompt")
    if isinstance(prompt, list):
        return "\n".join(str(p) for p in prompt)
    if prompt is not None:
        return str(prompt)
    return "(the request's text was not stored)"


def _judge_pair(pair: PairToJudge) -> JudgePair:
    from evaluation.judge import JudgePair

    return JudgePair(
        pair_id=str(pair.exchange_id),
        request=request_text(pair.request),
        candidate=pair.candidate_text,
        primary=pair.primary_text,
    )


# ---- running ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    wins: int = 0
    losses: int = 0
    ties: int = 0
    errors: int = 0
    skipped: int = 0
    requests: int = 0
    spent_usd: float = 0.0
    first_error: str | None = None

    @property
    def judged(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def attempted(self) -> int:
        return self.judged + self.errors


def _judgments(run: JudgeRun, candidate: str) -> list[Judgment]:
    out = []
    for r in run.results:
        if r.outcome is None:
            continue  # an error: nothing stored, so the next run offers the pair again
        out.append(
            Judgment(
                exchange_id=UUID(r.pair_id),
                candidate=candidate,
                judge_model=r.judge_model,
                prompt_version=r.prompt_version,
                outcome=r.outcome,
                detail={
                    "candidate_first": r.candidate_first,
                    "candidate_second": r.candidate_second,
                    "consistent": r.consistent,
                    "cost_usd": r.cost_usd,
                },
            )
        )
    return out


def _count(tally: _Tally, run: JudgeRun) -> None:
    tally.requests += run.requests
    tally.spent_usd += run.spent_usd
    for r in run.results:
        if r.outcome is PairOutcome.CANDIDATE:
            tally.wins += 1
        elif r.outcome is PairOutcome.PRIMARY:
            tally.losses += 1
        elif r.outcome is PairOutcome.TIE:
            tally.ties += 1
        else:
            tally.errors += 1
            tally.first_error = tally.first_error or r.error


async def _candidates(db: Database, args: argparse.Namespace, settings: Settings) -> list[str]:
    """The candidates to judge, in order: the rollout's, then the shadow candidates.

    Raises ``Unchosen`` naming the recorded candidates when the rollout's is not known.
    """
    if args.candidate:
        return [str(args.candidate)]
    route = Route(args.route) if args.route else None
    window = ExchangeWindow(since=args.since, until=args.until, route=route)
    if args.all_candidates:
        return await compared_candidates(db, window)
    chosen = await _candidate(db, args, settings)
    if isinstance(chosen, list):
        raise Unchosen(", ".join(chosen) or "none recorded")
    listed = [c.name for c in settings.rollout.shadow_candidates]
    return [chosen, *(name for name in listed if name != chosen)]


class Unchosen(Exception):
    """Several candidates were recorded and none is the rollout's: the message names them."""


async def _candidate(db: Database, args: argparse.Namespace, settings: Settings) -> str | list[str]:
    """The rollout's candidate, or the names recorded when there is not exactly one."""
    if settings.rollout.candidate:
        return settings.rollout.candidate
    if len(settings.candidates) == 1:
        return settings.candidates[0].name
    route = Route(args.route) if args.route else None
    seen = await candidates_in(db, ExchangeWindow(since=args.since, until=args.until, route=route))
    return seen[0] if len(seen) == 1 else seen


async def _judge(args: argparse.Namespace, settings: Settings, key: str) -> int:
    from openai import AsyncOpenAI

    from evaluation.cost import load_price_table
    from evaluation.judge import JudgeBudget, JudgeConfig

    price = load_price_table().price_for(args.model)
    config = JudgeConfig(
        base_url=args.base_url,
        model=args.model,
        api_key=key,
        price=price,
        budget=JudgeBudget(args.max_requests, args.max_usd),
        concurrency=args.concurrency,
    )
    async with await open_current(settings.database_url) as db:
        sources: dict[str, PairSource] = {}
        if args.replay is not None:
            from storage.replay import NoReplay
            from understudy.replay_judging import ReplayPairs

            try:
                sources[f"replay run {args.replay}"] = await ReplayPairs.of_run(db, args.replay)
            except NoReplay as exc:
                return fail(str(exc))
        else:
            try:
                names = await _candidates(db, args, settings)
            except Unchosen as exc:
                return fail(f"choose the candidate to judge with --candidate ({exc})")
            for name in names:
                window = ExchangeWindow(
                    candidate=name,
                    since=args.since,
                    until=args.until,
                    route=Route(args.route) if args.route else None,
                )
                sources[name] = ShadowPairs(db, window)
        client = AsyncOpenAI(
            base_url=config.base_url,
            api_key=key,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
        )
        tallies: dict[str, _Tally] = {}
        try:
            limit = args.limit
            for name, source in sources.items():
                # One budget and one limit for the whole run, spent candidate by candidate.
                tally = await _judge_all(source, config, client, limit)
                tallies[name] = tally
                config = replace(config, budget=_left(config.budget, tally))
                limit = None if limit is None else max(0, limit - tally.attempted)
        finally:
            await client.close()
    for name, tally in tallies.items():
        _write_summary(tally, name, config, key)
    failed = any(t.errors for t in tallies.values()) and not any(t.judged for t in tallies.values())
    return 1 if failed else 0


def _left(budget: JudgeBudget, spent: _Tally) -> JudgeBudget:
    from evaluation.judge import JudgeBudget

    return JudgeBudget(
        max(0, budget.max_requests - spent.requests), max(0.0, budget.max_usd - spent.spent_usd)
    )


class PairSource(Protocol):
    """Where the pairs to judge come from, oldest first, and where verdicts go."""

    async def batch(
        self, judge_model: str, prompt_version: str, limit: int
    ) -> tuple[list[PairToJudge], bool]:
        """The next pairs not judged yet, and whether more may follow."""
        ...

    async def store(self, run: JudgeRun) -> None: ...

    async def count_unjudged(self, judge_model: str, prompt_version: str) -> int: ...


class ShadowPairs:
    """The recorded shadow pairs of one candidate in a window; verdicts to judgments."""

    def __init__(self, db: Database, window: ExchangeWindow) -> None:
        self._db = db
        self._window = window
        self._after: tuple[datetime, UUID] | None = None

    async def batch(
        self, judge_model: str, prompt_version: str, limit: int
    ) -> tuple[list[PairToJudge], bool]:
        found = await unjudged_pairs(
            self._db,
            self._window,
            judge_model=judge_model,
            prompt_version=prompt_version,
            after=self._after,
            limit=limit,
        )
        self._after = found.resume_after
        return found.pairs, found.resume_after is not None

    async def store(self, run: JudgeRun) -> None:
        await add_judgments(self._db, _judgments(run, self._window.named_candidate))

    async def count_unjudged(self, judge_model: str, prompt_version: str) -> int:
        return await count_unjudged(
            self._db, self._window, judge_model=judge_model, prompt_version=prompt_version
        )


async def _judge_all(
    source: PairSource,
    config: JudgeConfig,
    client: AsyncOpenAI,
    limit: int | None,
) -> _Tally:
    """Judge batch after batch, storing each, until no pair or no budget is left."""
    from evaluation.judge import PROMPT_VERSION, JudgeBudget, PairwiseJudge

    tally = _Tally()
    out_of_budget = False
    while limit is None or tally.attempted < limit:
        wanted = BATCH_PAIRS if limit is None else min(BATCH_PAIRS, limit - tally.attempted)
        pairs, more = await source.batch(config.model, PROMPT_VERSION, wanted)
        if not pairs:
            break
        remaining = JudgeBudget(
            config.budget.max_requests - tally.requests,
            max(0.0, config.budget.max_usd - tally.spent_usd),
        )
        judge = PairwiseJudge(replace(config, budget=remaining), client)
        run = await judge.judge([_judge_pair(p) for p in pairs])
        _count(tally, run)
        await source.store(run)
        if run.skipped:
            out_of_budget = True
            break
        if not more:
            break
    if out_of_budget:
        # Whatever is still unjudged, bar this run's errors, waits for more budget.
        left = await source.count_unjudged(config.model, PROMPT_VERSION)
        left -= tally.errors
        tally.skipped = left if limit is None else min(left, limit - tally.attempted)
    return tally


def _write_summary(tally: _Tally, candidate: str, config: JudgeConfig, key: str) -> None:
    from evaluation.judge import PROMPT_VERSION

    cost = f"${tally.spent_usd:.4f}" if config.price is not None else "cost not tracked"
    sys.stdout.write(
        f"judged {tally.judged:,} pairs of {candidate} with {config.model} ({PROMPT_VERSION}): "
        f"{tally.wins:,} candidate better, {tally.losses:,} primary better, {tally.ties:,} ties; "
        f"{tally.skipped:,} skipped for budget; {tally.errors:,} errors; "
        f"{tally.requests:,} judge requests, {cost}\n"
    )
    notes: Sequence[str] = []
    if config.price is None:
        notes = [f"no list price for {config.model!r}: --max-usd cannot be enforced"]
    if tally.first_error:
        # The key is ours to keep out of output, whatever an upstream echoes back.
        notes = [*notes, "first error: " + tally.first_error.replace(key, "[redacted:key]")]
    for note in notes:
        sys.stderr.write(f"understudy: {note}\n")
