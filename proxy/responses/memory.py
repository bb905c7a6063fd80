"""Which arm holds each response, in memory with a TTL and written through to a shared store.

A look-up asks memory, then the store (another replica may have made the response). A
write lands in memory at once and goes to the store as a tracked task, so the hot path
never waits on the database; ``settled`` waits for it where a follow-up may come next.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter

from core.responses import RESPONSE_TTL_S, ResponseOwner, ResponseOwnerStore, TranslatedTurn
from proxy.tasks import BackgroundTasks

log = structlog.get_logger("understudy.responses")

# OpenAI keeps a stored response 30 days; a follow-up after that fails there too.
DEFAULT_TTL_S = RESPONSE_TTL_S
# The newest entries kept in memory; older ones are read back from the store.
DEFAULT_MEMORY_ENTRIES = 50_000
# The longest a reply waits for its owner's write to reach the store.
SETTLE_TIMEOUT_S = 2.0

T = TypeVar("T", ResponseOwner, TranslatedTurn)


@dataclass(slots=True)
class _Entries(Generic[T]):
    """Newest last; each kept until it expires or the newest ``limit`` push it out."""

    limit: int
    items: OrderedDict[str, T]

    def put(self, key: str, value: T) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.limit:
            self.items.popitem(last=False)

    def get(self, key: str, now: datetime) -> T | None:
        value = self.items.get(key)
        if value is not None and value.expires_at <= now:
            del self.items[key]
            return None
        return value


class ResponseMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.untranslatable = Counter(
            "understudy_responses_untranslatable",
            "Responses requests a translate-mode candidate cannot carry (built-in tools, "
            "background, ...): neither mirrored nor split, by reason.",
            ["candidate", "reason"],
            registry=registry,
        )
        self.pinned = Counter(
            "understudy_responses_pinned",
            "Follow-ups (previous_response_id) sent to the arm holding their parent, by "
            "that arm and whether the percentage alone would have sent them elsewhere.",
            ["upstream", "moved"],
            registry=registry,
        )
        self.store_failed = Counter(
            "understudy_responses_store_failed",
            "Writes of response owners or translated turns the shared store refused; the "
            "entry stays in this replica's memory only.",
            ["what"],
            registry=registry,
        )


class ResponseMemory:
    def __init__(
        self,
        store: ResponseOwnerStore | None,
        tasks: BackgroundTasks,
        metrics: ResponseMetrics,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        memory_entries: int = DEFAULT_MEMORY_ENTRIES,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._metrics = metrics
        self.ttl = timedelta(seconds=ttl_s)
        self._owners: _Entries[ResponseOwner] = _Entries(memory_entries, OrderedDict())
        self._turns: _Entries[TranslatedTurn] = _Entries(memory_entries, OrderedDict())
        self._writes: dict[str, asyncio.Task[None]] = {}

    def expires_at(self) -> datetime:
        return datetime.now(UTC) + self.ttl

    # -- owners ------------------------------------------------------------------------

    def remember_owner(self, owner: ResponseOwner) -> None:
        self._owners.put(owner.response_id, owner)
        if self._store is not None:
            self._write(f"owner:{owner.response_id}", self._store.save_owner(owner), "owner")

    async def owner(self, response_id: str, *, fresh: bool = False) -> ResponseOwner | None:
        """Who holds ``response_id``. ``fresh`` asks the store first: another replica may
        have deleted it (memory is a cache of the store, never told of deletions)."""
        now = datetime.now(UTC)
        if not fresh and (found := self._owners.get(response_id, now)) is not None:
            return found
        if self._store is None:
            return self._owners.get(response_id, now)
        stored = await self._store.load_owner(response_id)
        if stored is None or stored.expires_at <= now:
            self._owners.items.pop(response_id, None)
            return None
        self._owners.put(response_id, stored)
        return stored

    async def forget(self, response_id: str) -> None:
        """The response was deleted where it lives: its owner and turn go too."""
        self._owners.items.pop(response_id, None)
        self._turns.items.pop(response_id, None)
        if self._store is not None:
            await self._store.forget(response_id)

    # -- translated turns ----------------------------------------------------------------

    def remember_turn(self, turn: TranslatedTurn) -> None:
        self._turns.put(turn.response_id, turn)
        if self._store is not None:
            self._write(f"turn:{turn.response_id}", self._store.save_turn(turn), "turn")

    async def turn(self, response_id: str, *, fresh: bool = False) -> TranslatedTurn | None:
        now = datetime.now(UTC)
        if not fresh and (found := self._turns.get(response_id, now)) is not None:
            return found
        if self._store is None:
            return self._turns.get(response_id, now)
        stored = await self._store.load_turn(response_id)
        if stored is None or stored.expires_at <= now:
            self._turns.items.pop(response_id, None)
            return None
        self._turns.put(response_id, stored)
        return stored

    # -- writes --------------------------------------------------------------------------

    async def settled(self, response_id: str) -> None:
        """Wait (a bounded time) until what was remembered about ``response_id`` is stored."""
        pending = [
            task
            for key in (f"owner:{response_id}", f"turn:{response_id}")
            if (task := self._writes.get(key)) is not None
        ]
        if pending:
            await asyncio.wait(pending, timeout=SETTLE_TIMEOUT_S)

    def _write(self, key: str, write: Awaitable[None], what: str) -> None:
        previous = self._writes.get(key)
        task = self._tasks.spawn(self._written(previous, write, what), name=f"responses:{key}")
        self._writes[key] = task
        task.add_done_callback(lambda done: self._drop_write(key, done))

    async def _written(
        self, previous: asyncio.Task[None] | None, write: Awaitable[None], what: str
    ) -> None:
        if previous is not None:  # writes of one id land in the order they were made
            await asyncio.wait([previous])
        try:
            await write
        except Exception as exc:  # the store is down: memory still serves this replica
            self._metrics.store_failed.labels(what).inc()
            log.warning("responses_store_failed", what=what, error=type(exc).__name__)

    def _drop_write(self, key: str, done: asyncio.Task[None]) -> None:
        if self._writes.get(key) is done:
            del self._writes[key]
