"""Which arm holds a response of the Responses API, so a follow-up can reach it.

A response made by one server exists on that server only: a request naming it in
``previous_response_id`` must go where it lives. Shared across replicas through a store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# How long a response stays reachable by id: OpenAI keeps a stored response for 30 days.
RESPONSE_TTL_S = 30 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ResponseOwner:
    """The arm that made ``response_id`` and answered the client with it.

    ``twin_id`` is the same turn's response on the exchange's other arm (the candidate's
    shadow when the primary served, the primary's reverse shadow when the candidate
    served), so a mirror of a follow-up can continue that arm's own conversation.
    """

    response_id: str
    owner: str  # upstream name
    candidate: str | None  # the exchange's candidate, whichever arm served
    twin_id: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TranslatedTurn:
    """A conversation as a Chat Completions server saw it, up to and including the answer
    ``response_id`` names: such a server keeps none, so a follow-up is rebuilt from this."""

    response_id: str
    upstream: str
    messages: Sequence[Mapping[str, Any]]
    response: Mapping[str, Any]  # the Response object as the client got it, for GET
    expires_at: datetime


class ResponseOwnerStore(Protocol):
    """Where owners and translated turns outlive one replica's memory."""

    async def save_owner(self, owner: ResponseOwner) -> None: ...

    async def load_owner(self, response_id: str) -> ResponseOwner | None: ...

    async def forget(self, response_id: str) -> None:
        """Drop the owner and the translated turn of ``response_id``, if any."""
        ...

    async def save_turn(self, turn: TranslatedTurn) -> None: ...

    async def load_turn(self, response_id: str) -> TranslatedTurn | None: ...
