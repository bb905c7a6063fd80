"""Response owners and translated turns in SQLite and PostgreSQL: upserted, read back,
forgotten, purged when expired; a key in a stored conversation is masked, and nothing of
a conversation is stored when prompts are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.responses import ResponseOwner, TranslatedTurn
from storage.database import Database
from storage.response_owners import ResponseOwnerRepository

KEY = "sk-proj-canary0123456789abcdef"


def turn(rid: str, expires_at: datetime) -> TranslatedTurn:
    messages = [
        {"role": "user", "content": f"my key is {KEY}, keep it"},
        {"role": "assistant", "content": "Noted."},
    ]
    answer = {"id": rid, "object": "response", "output": [{"type": "message"}]}
    return TranslatedTurn(rid, "local", messages, answer, expires_at)


async def test_owner_rows_are_upserted_read_and_forgotten(database: Database) -> None:
    owners = ResponseOwnerRepository(database)
    later = datetime.now(UTC) + timedelta(days=30)
    await owners.save_owner(ResponseOwner("resp_1", "openai", "local", None, later))
    # Seen again once the candidate's twin is known: the same row, now with the twin.
    await owners.save_owner(ResponseOwner("resp_1", "openai", "local", "resp_c1", later))
    found = await owners.load_owner("resp_1")
    assert found == ResponseOwner("resp_1", "openai", "local", "resp_c1", later)
    assert await owners.load_owner("resp_unknown") is None
    await owners.forget("resp_1")
    assert await owners.load_owner("resp_1") is None


async def test_turns_mask_keys_and_expired_rows_are_purged(database: Database) -> None:
    owners = ResponseOwnerRepository(database)
    now = datetime.now(UTC)
    await owners.save_turn(turn("resp_live", now + timedelta(days=1)))
    await owners.save_turn(turn("resp_old", now - timedelta(seconds=1)))
    await owners.save_owner(ResponseOwner("resp_old", "local", "local", None, now))
    stored = await owners.load_turn("resp_live")
    assert stored is not None and stored.upstream == "local"
    assert KEY not in str(stored.messages)
    assert stored.messages[0]["content"].startswith("my key is [redacted")
    assert stored.messages[1] == {"role": "assistant", "content": "Noted."}
    assert stored.response["id"] == "resp_live"
    assert await owners.purge_expired(now) == 2
    assert await owners.load_turn("resp_old") is None
    assert await owners.load_turn("resp_live") is not None


async def test_no_conversation_is_stored_when_prompts_are_not(database: Database) -> None:
    owners = ResponseOwnerRepository(database, keep_turns=False)
    await owners.save_turn(turn("resp_1", datetime.now(UTC) + timedelta(days=1)))
    assert await owners.load_turn("resp_1") is None
    assert await ResponseOwnerRepository(database).load_turn("resp_1") is None
