"""Blind pairwise review: one pair at a time as A and B, decided by key or button.

Nothing on the page or in its JSON names an arm: the pair is addressed by a random
per-reviewer token, answers appear in the order stored with the review, and choices
travel as "a" or "b" and are turned into arms only here, on the server.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from core.outcome import ReviewOutcome
from core.turns import responses_turns
from dashboards.access import reviewer_id, reviewers, see_other
from dashboards.candidate import reviewed_candidates
from dashboards.config import UI
from dashboards.markdown import safe_markdown
from dashboards.queue import REVIEWED_ROUTES, next_item
from dashboards.render import render
from storage.reviews import (
    CANDIDATE_FIRST,
    PendingItem,
    count_waiting,
    decide,
    decided_count,
    pending_order,
    undo_last,
)

routes = web.RouteTableDef()

MAX_NOTE_CHARS = 2000
WAITING_CAP = 1000  # the counter stops counting here, so it stays cheap on any database
# What the page may send; "a" and "b" become arms with the stored order.
CHOICES = {
    "tie": ReviewOutcome.TIE,
    "both_bad": ReviewOutcome.BOTH_BAD,
    "skip": ReviewOutcome.SKIPPED,
}
_order_rng = random.SystemRandom()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def conversation(request_body: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The turns shown above the answers: role and text only, nothing about the model."""
    if request_body is None:
        return [{"role": "note", "text": "The request was not kept."}]
    if (turns := responses_turns(request_body)) is not None:
        return [{"role": role, "text": text} for role, text in turns]
    messages = request_body.get("messages")
    if isinstance(messages, list):
        return [
            {"role": str(m.get("role", "")), "text": _text(m.get("content"))}
            for m in messages
            if isinstance(m, Mapping)
        ]
    prompt = request_body.get("prompt")
    text = prompt if isinstance(prompt, str) else "\n".join(map(str, prompt or []))
    return [{"role": "user", "text": text}]


def answers(item: PendingItem) -> tuple[str, str]:
    """(A, B) in the order stored with the review."""
    if item.shown_order == CANDIDATE_FIRST:
        return item.candidate_text, item.primary_text
    return item.primary_text, item.candidate_text


@dataclass(frozen=True, slots=True)
class Progress:
    reviewed: int  # decided by this reviewer, skips not counted
    waiting: int  # pairs not shown to them yet, counted up to WAITING_CAP a route

    def describe(self) -> str:
        more = "more than " if self.waiting >= WAITING_CAP else ""
        return f"{self.reviewed:,} reviewed · {more}{self.waiting:,} waiting"


async def _current(request: web.Request) -> tuple[PendingItem | None, Progress]:
    ui = request.app[UI]
    reviewer = reviewer_id(request)
    candidates = await reviewed_candidates(request)
    per_pair = ui.config.reviewers_per_pair
    item = await next_item(ui.db, reviewer, candidates, per_pair, _order_rng)
    waiting = 0
    for candidate in candidates:
        waiting += await count_waiting(
            ui.db, reviewer, candidate, REVIEWED_ROUTES, per_pair=per_pair, cap=WAITING_CAP
        )
    return item, Progress(await decided_count(ui.db, reviewer), waiting)


@routes.get("/review")
@reviewers
async def review_page(request: web.Request) -> web.StreamResponse:
    item, progress = await _current(request)
    context: dict[str, Any] = {"item": None, "progress": progress.describe()}
    if item is not None:
        a, b = answers(item)
        context |= {
            "item": item.token,
            "turns": conversation(item.request),
            "answer_a": a,
            "answer_b": b,
        }
    return render("review.html", request, context)


@routes.get("/api/review/current")
@reviewers
async def current_json(request: web.Request) -> web.StreamResponse:
    item, progress = await _current(request)
    body: dict[str, Any] = {
        "reviewed": progress.reviewed,
        "waiting": progress.waiting,
        "item": None,
    }
    if item is not None:
        a, b = answers(item)
        body["item"] = {
            "token": item.token,
            "conversation": conversation(item.request),
            "answers": {"A": str(safe_markdown(a)), "B": str(safe_markdown(b))},
        }
    return web.json_response(body)


def _outcome(choice: str, item_order: str | None) -> ReviewOutcome | None:
    if choice in CHOICES:
        return CHOICES[choice]
    if choice not in ("a", "b") or item_order is None:
        return None
    a_is_candidate = item_order == CANDIDATE_FIRST
    candidate_chosen = (choice == "a") == a_is_candidate
    return ReviewOutcome.CANDIDATE if candidate_chosen else ReviewOutcome.PRIMARY


@routes.post("/review/decide")
@reviewers
async def decide_pair(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    ui = request.app[UI]
    reviewer = reviewer_id(request)
    token = str(form.get("item", ""))
    note = str(form.get("note", "")).strip()[:MAX_NOTE_CHARS] or None
    order = await pending_order(ui.db, reviewer, token)
    outcome = _outcome(str(form.get("choice", "")), order)
    if outcome is not None:
        await decide(ui.db, reviewer, token, outcome, note, datetime.now(UTC))
    # A stale or repeated form changes nothing: the page shows the current pair again.
    return see_other("/ui/review")


@routes.post("/review/undo")
@reviewers
async def undo(request: web.Request) -> web.StreamResponse:
    reviewer = reviewer_id(request)
    await undo_last(request.app[UI].db, reviewer, datetime.now(UTC))
    return see_other("/ui/review")
