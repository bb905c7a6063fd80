"""``POST /v1/responses``: the chat route's handling, plus conversation affinity.

Validation, serving, shadows and recording are the exchange handler's; this adds where a
follow-up must go, the ids each arm's response gets, and which requests a translating
candidate cannot carry.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import structlog
from aiohttp import web

from core import Role, Route
from core.responses import ResponseOwner
from proxy.errors import RequestError
from proxy.exchange import EXCHANGE_ID, ExchangeHandler, Routed
from proxy.record import Arm, ExchangeRecord
from proxy.responses.affinity import PARENT_NOT_HELD, Draws, Situation, pin
from proxy.responses.ids import StreamScan, id_in_body, id_in_capture
from proxy.responses.memory import ResponseMemory, ResponseMetrics
from proxy.responses.modes import ResponsesMode, responses_mode, untranslatable
from proxy.responses.translate import TranslatingUpstream
from proxy.routing import decide
from proxy.upstream_set import UpstreamSet
from proxy.upstreams.port import Upstream
from proxy.validation import ParsedRequest

log = structlog.get_logger("understudy.exchange")


@dataclass(slots=True)
class _Turn:
    """One exchange's response ids as they become known."""

    parent: ResponseOwner | None  # the follow-up's parent, as its mirrors may continue it
    follow_up: bool = False
    served_id: str | None = None
    served_by: str | None = None
    candidate: str | None = None
    twin_id: str | None = None


class ResponsesHandler(ExchangeHandler):
    """The exchange handler for ``Route.RESPONSES``."""

    def __init__(
        self,
        chat: ExchangeHandler,
        upstreams: UpstreamSet,
        memory: ResponseMemory,
        response_metrics: ResponseMetrics,
    ) -> None:
        # All but the upstreams is the chat handler's own, shared: a candidate has one cap
        # and one breaker whichever API reaches it. ``upstreams`` reach translating
        # candidates through their translation.
        self.__dict__.update(vars(chat))
        self._upstreams = upstreams
        self._memory = memory
        self._response_metrics = response_metrics
        self._turns: dict[uuid.UUID, _Turn] = {}

    async def handle(self, request: web.Request, route: Route) -> web.StreamResponse:
        try:
            return await super().handle(request, route)
        finally:
            if (exchange_id := request.get(EXCHANGE_ID)) is not None:
                self._turns.pop(exchange_id, None)

    # -- routing -------------------------------------------------------------------------

    async def _route(self, exchange_id: uuid.UUID, parsed: ParsedRequest, subject: str) -> Routed:
        flag = self._flags.current(parsed.route)
        primary = self._upstreams.primary.name
        draws = Draws(random.random(), random.random())
        decision = decide(
            flag, subject, primary=primary, shadow_draw=draws.shadow, noise_draw=draws.noise
        )
        previous = parsed.body.get("previous_response_id")
        parent = await self._memory.owner(previous) if isinstance(previous, str) else None
        in_play = {flag.candidate, parent.owner if parent else None} & set(
            self._upstreams.candidates
        )
        situation = Situation(
            primary=primary,
            candidates=frozenset(self._upstreams.candidates),
            follow_up=isinstance(previous, str),
            parent=parent,
            untranslatable={
                name: self._untranslatable(name, parsed.body) for name in in_play if name
            },
        )
        pinned = pin(flag, decision, draws, situation)
        if pinned.untranslatable is not None:
            counted = parent.owner if pinned.refused and parent else flag.candidate
            self._response_metrics.untranslatable.labels(counted, pinned.untranslatable).inc()
        for upstream, reason in pinned.skipped:
            self._metrics.shadows_skipped.labels(upstream, reason).inc()
        if pinned.refused:
            raise RequestError(
                400,
                "This request continues a conversation held by a server that cannot take "
                f"part of it ({pinned.untranslatable}); start a new conversation without it.",
                param="previous_response_id",
                code="unsupported_by_conversation_holder",
            )
        if parent is not None:
            self._response_metrics.pinned.labels(
                pinned.decision.served, "yes" if pinned.moved else "no"
            ).inc()
        if pinned.primary_parent is not None:  # the primary continues its own twin turn
            body = {**parsed.body, "previous_response_id": pinned.primary_parent}
            parsed = replace(parsed, body=body, raw=None)
        self._turns[exchange_id] = _Turn(
            parent if pinned.primary_parent is None else None, follow_up=situation.follow_up
        )
        return Routed(parsed, subject, pinned.decision, pinned.held_back)

    def _fall_back(self, record: ExchangeRecord, candidate: str, reason: str) -> None:
        """A follow-up its candidate fails goes to the primary with the primary's own side of
        the conversation, when a reverse shadow made one; else as it is, to be refused there
        as OpenAI refuses a response it does not hold."""
        super()._fall_back(record, candidate, reason)
        turn = self._turns.get(record.id)
        parent = turn.parent if turn is not None else None
        if parent is not None and parent.owner == candidate and parent.twin_id is not None:
            body = {**record.parsed.body, "previous_response_id": parent.twin_id}
            record.parsed = replace(record.parsed, body=body, raw=None)

    def _untranslatable(self, name: str, body: Mapping[str, Any]) -> str | None:
        config = self._upstreams.candidates[name].config
        return untranslatable(body) if responses_mode(config) is ResponsesMode.TRANSLATE else None

    def _shadow_body(self, parsed: ParsedRequest, model: str) -> dict[str, Any]:
        # The Responses API streams usage in its final event: nothing to ask for.
        return {**parsed.body, "model": model}

    def _start_shadow(self, record: ExchangeRecord, name: str) -> asyncio.Task[None] | None:
        """Each shadow, the rollout's and the shadow candidates', only where it can be made
        whole: a request its translation carries, a follow-up whose parent it holds."""
        reason = self._untranslatable(name, record.parsed.body)
        turn = self._turns.get(record.id)
        if reason is not None:
            self._response_metrics.untranslatable.labels(name, reason).inc()
        elif turn is not None and turn.follow_up and not self._holds_parent(turn.parent, name):
            self._metrics.shadows_skipped.labels(name, PARENT_NOT_HELD).inc()
        else:
            return super()._start_shadow(record, name)
        record.shadow_skipped = True
        return None

    def _holds_parent(self, parent: ResponseOwner | None, candidate: str) -> bool:
        """Whether ``candidate`` made the twin of the primary's ``parent``."""
        return (
            parent is not None
            and parent.owner == self._upstreams.primary.name
            and parent.candidate == candidate
            and parent.twin_id is not None
        )

    # -- ids -----------------------------------------------------------------------------

    def _spawn(
        self,
        record: ExchangeRecord,
        upstream: Upstream,
        role: Role,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        *,
        probe: bool = False,
    ) -> asyncio.Task[None]:
        turn = self._turns.get(record.id)
        parent = turn.parent if turn is not None else None
        if parent is not None and upstream.name != parent.owner and parent.twin_id is not None:
            # This arm continues its own conversation: the parent's twin on its side (routing
            # made sure it is the arm holding it).
            body = {**body, "previous_response_id": parent.twin_id}
        task = super()._spawn(record, upstream, role, body, headers, probe=probe)
        # The twin is the rollout's other arm: its shadow, or the primary's reverse shadow.
        twin = role is Role.REVERSE_SHADOW or (
            role is Role.SHADOW and upstream.name == record.decision.shadow
        )
        if turn is not None and twin:
            task.add_done_callback(partial(self._twin_done, record, turn, record.arms[-1]))
        return task

    def _twin_done(
        self, record: ExchangeRecord, turn: _Turn, arm: Arm, _task: asyncio.Task[None]
    ) -> None:
        turn.twin_id = id_in_capture(arm.capture, record.parsed.stream)
        if turn.twin_id is not None and turn.served_id is not None:
            self._remember(turn)

    def _served_chunks(
        self, record: ExchangeRecord, arm: Arm, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        turn = self._turns.get(record.id)
        if turn is None or arm.capture.status is None or arm.capture.status >= 400:
            return chunks
        return self._watched(record, arm, turn, chunks)

    async def _watched(
        self, record: ExchangeRecord, arm: Arm, turn: _Turn, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """The chunks unchanged; the owner is remembered as soon as the id shows, and the
        last chunk waits until that is stored, so a follow-up on any replica finds it."""
        stream = record.parsed.stream
        scan = StreamScan() if stream else None
        whole: list[bytes] = []
        async for chunk in chunks:
            if scan is not None:
                if (rid := scan.feed(chunk)) is not None:
                    self._served_id(record, arm, turn, rid)
            else:
                whole.append(chunk)
            yield chunk
        if not stream and (rid := id_in_body(b"".join(whole))) is not None:
            self._served_id(record, arm, turn, rid)
        if turn.served_id is not None:
            await self._memory.settled(turn.served_id)

    def _served_id(self, record: ExchangeRecord, arm: Arm, turn: _Turn, rid: str) -> None:
        turn.served_id, turn.served_by = rid, arm.upstream
        served_candidate = arm.upstream != self._upstreams.primary.name
        turn.candidate = arm.upstream if served_candidate else record.decision.shadow
        self._remember(turn)

    def _remember(self, turn: _Turn) -> None:
        assert turn.served_id is not None and turn.served_by is not None
        self._memory.remember_owner(
            ResponseOwner(
                turn.served_id,
                turn.served_by,
                turn.candidate,
                turn.twin_id,
                self._memory.expires_at(),
            )
        )


def responses_upstreams(upstreams: UpstreamSet, memory: ResponseMemory) -> UpstreamSet:
    """The same upstreams, with each translate-mode candidate behind its translation."""
    return UpstreamSet(
        primary=upstreams.primary,
        noise=upstreams.noise,
        candidates={
            name: TranslatingUpstream(candidate, memory)
            if responses_mode(candidate.config) is ResponsesMode.TRANSLATE
            else candidate
            for name, candidate in upstreams.candidates.items()
        },
    )
