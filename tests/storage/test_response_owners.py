"""Response owners and translated turns in SQLite and PostgreSQL: upserted, read back,
forgotten, purged when expired; a key in a stored conversation is masked, and nothing of
a conversation is stored when prompts are not; the storage's redaction applies to turns,
and ``purge --older-than`` deletes those made before its cutoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.responses import RESPONSE_TTL_S, ResponseOwner, TranslatedTurn
from storage.database import Database
from storage.privacy import PrivacyPolicy
from storage.purge import purge_older_than
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


async def test_turns_are_redacted_by_the_storage_policy_and_purged_with_their_age(
    database: Database, tmp_path: Path
) -> None:
    policy = PrivacyPolicy.create(redact=["email"])
    owners = ResponseOwnerRepository(database, redact=policy.redact_text)
    now = datetime.now(UTC)
    ttl = timedelta(seconds=RESPONSE_TTL_S)
    mailed = turn("resp_mail", now + ttl)
    mailed.messages[1]["content"] = "Write to ana@example.com."
    await owners.save_turn(mailed)
    stored = await owners.load_turn("resp_mail")
    assert stored is not None
    assert "ana@example.com" not in str(stored.messages) and KEY not in str(stored.messages)

    # Made 10 days ago and 1 day ago: `purge --older-than 5d` takes the first only.
    await owners.save_turn(turn("resp_10d", now - timedelta(days=10) + ttl))
    await owners.save_turn(turn("resp_1d", now - timedelta(days=1) + ttl))
    result = await purge_older_than(database, tmp_path / "spill", now - timedelta(days=5))
    assert result.exchanges == 0
    assert await owners.load_turn("resp_10d") is None
    assert await owners.load_turn("resp_1d") is not None
