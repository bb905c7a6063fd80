"""LLM-as-judge: pairwise preference between the candidate's and the primary's answers.

Each pair is judged twice with the answers swapped. A verdict counts only when
both orders agree; otherwise it is a tie, which cancels the judge's position
bias. Any OpenAI-compatible endpoint works, through the official SDK.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from openai import APIError, AsyncOpenAI
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from core.outcome import PairOutcome
from evaluation.agreement import cohen_kappa, confusion_table
from evaluation.cost import PER_MILLION, ModelPrice

PROMPT_VERSION = "pairwise-v1"

SYSTEM_PROMPT = (
    "You are an impartial judge. You compare two answers to the same request and "
    "decide which one serves the user better: correct, complete, helpful, and following "
    "the request's instructions. Ignore answer length and style unless they matter to "
    "the request. Do not let the order of the answers influence you.\n"
    "Reply with exactly one word: A if answer A is better, B if answer B is better, "
    "or TIE if they are equally good."
)

USER_TEMPLATE = (
    "<request>\n{request}\n</request>\n\n"
    "<answer_a>\n{answer_a}\n</answer_a>\n\n"
    "<answer_b>\n{answer_b}\n</answer_b>\n\n"
    "Which answer is better? Reply A, B or TIE."
)

_CHOICE = re.compile(r"^\W*(A|B|TIE)\b", re.IGNORECASE)
_CHARS_PER_TOKEN_ESTIMATE = 3.0  # deliberately low, so cost estimates err high


@dataclass(frozen=True, slots=True)
class JudgePair:
    pair_id: str
    request: str  # the user's request as text
    candidate: str
    primary: str


@dataclass(frozen=True, slots=True)
class JudgeResult:
    pair_id: str
    outcome: PairOutcome | None  # None: the judge failed or answered something unreadable
    candidate_first: str | None  # raw choice when the candidate was answer A
    candidate_second: str | None  # raw choice when the candidate was answer B
    consistent: bool  # both orders named the same winner (or both said tie)
    judge_model: str
    prompt_version: str
    cost_usd: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JudgeBudget:
    max_requests: int = 1000
    max_usd: float = 5.0


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key: str = field(repr=False)
    price: ModelPrice | None = None  # None: dollars are not tracked, only requests
    budget: JudgeBudget = field(default_factory=JudgeBudget)
    max_output_tokens: int = 4
    concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 2


@dataclass(frozen=True, slots=True)
class JudgeRun:
    results: tuple[JudgeResult, ...]
    skipped: int  # pairs left unjudged because the budget ran out
    requests: int
    spent_usd: float
    judge_model: str
    prompt_version: str

    def outcomes(self) -> NDArray[np.int8]:
        """``PairOutcome.code`` of usable results, in input order (errors left out)."""
        return np.array(
            [r.outcome.code for r in self.results if r.outcome is not None], dtype=np.int8
        )


def build_messages(request: str, answer_a: str, answer_b: str) -> list[ChatCompletionMessageParam]:
    user = USER_TEMPLATE.format(request=request, answer_a=answer_a, answer_b=answer_b)
    return [
        ChatCompletionSystemMessageParam(role="system", content=SYSTEM_PROMPT),
        ChatCompletionUserMessageParam(role="user", content=user),
    ]


def _prompt_chars(messages: list[ChatCompletionMessageParam]) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages)


def parse_choice(text: str | None) -> str | None:
    match = _CHOICE.match(text or "")
    return match.group(1).upper() if match else None


def combine_orders(candidate_first: str, candidate_second: str) -> tuple[PairOutcome, bool]:
    """Candidate is A in the first order and B in the second; disagreeing orders are a tie."""
    first = _AS_A[candidate_first]
    second = _AS_B[candidate_second]
    if first is not second:
        return PairOutcome.TIE, False
    return first, True


# What each letter means for the candidate, when it was shown as answer A or as answer B.
_AS_A = {"A": PairOutcome.CANDIDATE, "B": PairOutcome.PRIMARY, "TIE": PairOutcome.TIE}
_AS_B = {"A": PairOutcome.PRIMARY, "B": PairOutcome.CANDIDATE, "TIE": PairOutcome.TIE}


class _Budget:
    """Reserve before calling, settle after: concurrent calls never overshoot the caps."""

    def __init__(self, budget: JudgeBudget) -> None:
        self._budget = budget
        self.requests = 0
        self.committed_usd = 0.0
        self.reserved_usd = 0.0

    def try_reserve(self, requests: int, usd: float) -> bool:
        within_requests = self.requests + requests <= self._budget.max_requests
        within_usd = self.committed_usd + self.reserved_usd + usd <= self._budget.max_usd
        if not (within_requests and within_usd):
            return False
        self.requests += requests
        self.reserved_usd += usd
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved_usd -= reserved
        self.committed_usd += actual


class PairwiseJudge:
    def __init__(self, config: JudgeConfig, client: AsyncOpenAI | None = None) -> None:
        self._config = config
        self._client = client or AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _estimate_usd(self, messages: list[ChatCompletionMessageParam]) -> float:
        price = self._config.price
        if price is None:
            return 0.0
        prompt = _prompt_chars(messages) / _CHARS_PER_TOKEN_ESTIMATE + 16
        return (prompt * price.input + self._config.max_output_tokens * price.output) / PER_MILLION

    def _actual_usd(self, prompt_tokens: int, completion_tokens: int, fallback: float) -> float:
        price = self._config.price
        if price is None:
            return 0.0
        if prompt_tokens == 0 and completion_tokens == 0:
            return fallback
        return (prompt_tokens * price.input + completion_tokens * price.output) / PER_MILLION

    async def _ask(
        self, messages: list[ChatCompletionMessageParam], estimate: float
    ) -> tuple[str | None, float]:
        """One judge call: (parsed choice, dollars). API failures propagate as APIError."""
        response = await self._client.chat.completions.create(
            model=self._config.model,
            messages=messages,
            temperature=0.0,
            max_tokens=self._config.max_output_tokens,
        )
        usage = response.usage
        cost = self._actual_usd(
            usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0, estimate
        )
        text = response.choices[0].message.content if response.choices else None
        return parse_choice(text), cost

    async def _judge_pair(
        self,
        pair: JudgePair,
        estimates: tuple[float, float],
        gate: asyncio.Semaphore,
        budget: _Budget,
    ) -> JudgeResult:
        first = build_messages(pair.request, pair.candidate, pair.primary)
        second = build_messages(pair.request, pair.primary, pair.candidate)
        spent = 0.0
        error: str | None = None
        choices: list[str | None] = [None, None]
        async with gate:
            answers = await asyncio.gather(
                self._ask(first, estimates[0]),
                self._ask(second, estimates[1]),
                return_exceptions=True,
            )
        for i, answer in enumerate(answers):
            if isinstance(answer, APIError):
                error = f"judge call failed: {type(answer).__name__}: {answer.message}"
            elif isinstance(answer, BaseException):
                raise answer
            else:
                choices[i], cost = answer
                spent += cost
                if choices[i] is None and error is None:
                    error = "judge reply was not A, B or TIE"
        budget.settle(sum(estimates), spent)
        if error is not None or choices[0] is None or choices[1] is None:
            outcome: PairOutcome | None = None
            consistent = False
        else:
            outcome, consistent = combine_orders(choices[0], choices[1])
        return JudgeResult(
            pair_id=pair.pair_id,
            outcome=outcome,
            candidate_first=choices[0],
            candidate_second=choices[1],
            consistent=consistent,
            judge_model=self._config.model,
            prompt_version=PROMPT_VERSION,
            cost_usd=spent,
            error=error,
        )

    async def judge(self, pairs: Sequence[JudgePair]) -> JudgeRun:
        """Judge pairs in order until the budget would be exceeded; the rest are skipped."""
        budget = _Budget(self._config.budget)
        gate = asyncio.Semaphore(self._config.concurrency)
        tasks: list[asyncio.Task[JudgeResult]] = []
        skipped = 0
        async with asyncio.TaskGroup() as group:
            for index, pair in enumerate(pairs):
                estimates = (
                    self._estimate_usd(build_messages(pair.request, pair.candidate, pair.primary)),
                    self._estimate_usd(build_messages(pair.request, pair.primary, pair.candidate)),
                )
                if not budget.try_reserve(2, sum(estimates)):
                    skipped = len(pairs) - index
                    break
                tasks.append(
                    group.create_task(
                        self._judge_pair(pair, estimates, gate, budget),
                        name=f"judge-pair-{pair.pair_id}",
                    )
                )
        return JudgeRun(
            results=tuple(t.result() for t in tasks),
            skipped=skipped,
            requests=budget.requests,
            spent_usd=budget.committed_usd,
            judge_model=self._config.model,
            prompt_version=PROMPT_VERSION,
        )


def judge_human_kappa(
    judged: Sequence[JudgeResult], human: Mapping[str, PairOutcome | None]
) -> tuple[float, int]:
    """Cohen's kappa between judge and human outcomes on pairs both labelled: (kappa, n)."""
    categories = [o.value for o in PairOutcome]
    shared = [
        (r.outcome.value, label.value)
        for r in judged
        if r.outcome is not None and (label := human.get(r.pair_id)) is not None
    ]
    if not shared:
        return math.nan, 0
    table = confusion_table([a for a, _ in shared], [b for _, b in shared], categories)
    return cohen_kappa(table), len(shared)
