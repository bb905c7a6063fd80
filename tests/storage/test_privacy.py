"""Privacy: secrets never stored, personal data redacted on request, prompts/responses optional."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from core import ToolCall
from storage.database import Database
from storage.privacy import PrivacyPolicy
from storage.redaction import luhn_ok, redact_card, redact_email, redact_phone, redact_secrets
from storage.repository import get_exchange
from storage.writer import ExchangeWriter
from tests.storage.factories import full_exchange, served_arm, shadow_arm
from tests.storage.helpers import dump_all_text, spill_text

CANARY_KEY = "sk-canary-7f3a9c2e5b1d4f6a8c0e"
CANARY_PROJECT_KEY = "sk-proj-canaryAbCdEf0123456789"
CANARY_BEARER = "canarytoken.abc123.XYZ789"


def canary_exchange():  # type: ignore[no-untyped-def]
    return full_exchange(
        request={
            "model": "gpt-4o-mini",
            "api_key": CANARY_KEY,
            "headers": {"Authorization": f"Bearer {CANARY_BEARER}"},
            "messages": [
                {"role": "system", "content": f"Use the key {CANARY_KEY} for the tool."},
                {"role": "user", "content": f"curl -H 'Authorization: Bearer {CANARY_BEARER}'"},
                {"role": "user", "content": f'config = {{"api_key": "{CANARY_PROJECT_KEY}"}}'},
            ],
            "temperature": 0.3,
        },
        observations=(
            served_arm(
                text=f"Your key {CANARY_KEY} is valid; send Bearer {CANARY_BEARER}",
                tool_calls=(
                    ToolCall(name="call_api", arguments=f'{{"token": "Bearer {CANARY_BEARER}"}}'),
                ),
            ),
            shadow_arm(text=f"OPENAI_API_KEY={CANARY_PROJECT_KEY}"),
        ),
    )


def assert_no_canary(text: str) -> None:
    for secret in (CANARY_KEY, CANARY_PROJECT_KEY, CANARY_BEARER, "canary"):
        assert secret not in text


async def test_canary_secrets_reach_neither_database_nor_logs(
    database: Database, spill_dir: Path
) -> None:
    writer = ExchangeWriter(
        database, spill_dir=spill_dir, privacy=PrivacyPolicy(), registry=CollectorRegistry()
    )
    with capture_logs() as logs:
        await writer.start()
        writer.put(canary_exchange())
        await writer.wait_idle()
        await writer.stop()
    assert_no_canary(await dump_all_text(database))
    assert_no_canary(repr(logs))


async def test_canary_secrets_never_reach_spill_files(tmp_path: Path, spill_dir: Path) -> None:
    down = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    writer = ExchangeWriter(
        down, spill_dir=spill_dir, privacy=PrivacyPolicy(), registry=CollectorRegistry()
    )
    await writer.start()
    writer.put(canary_exchange())
    await writer.stop()
    writer.put(canary_exchange())  # after stop: the synchronous spill path
    await down.dispose()
    text = spill_text(spill_dir)
    assert "redacted:key" in text
    assert_no_canary(text)


@pytest.mark.parametrize(
    "secret",
    [
        "sk-abcdefghijklmnop",
        "sk-proj-AbC_dEf-0123456789",
        "Bearer abc.def.ghi-jkl",
        "bearer 0123456789abcdef",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "xoxb-1234567890-abcdefghij",
        "hf_abcdefghijklmnopqrstuvwxyz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_api_key_like_strings_are_always_redacted(secret: str) -> None:
    text = f"before {secret} after"
    assert secret not in redact_secrets(text)
    assert secret not in PrivacyPolicy(redact=()).redact_text(text)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('api_key = "s3cr3t-value-here"', "api_key = "),
        ("password: hunter2hunter2", "password: "),
        ('{"authorization": "Token abcdef123456"}', '{"authorization": "'),
    ],
)
def test_secret_assignments_keep_the_name_and_lose_the_value(text: str, kept: str) -> None:
    redacted = redact_secrets(text)
    assert redacted.startswith(kept)
    assert "[redacted:key]" in redacted
    assert redact_secrets(redacted) == redacted  # idempotent: replays do not change it


def test_ordinary_text_is_left_alone() -> None:
    text = "The task-list has 12 items; max_tokens=64 and skeleton-key ideas."
    assert redact_secrets(text) == text


def test_email() -> None:
    assert redact_email("write to jane.doe+x@example.co.uk now") == "write to [redacted:email] now"


@pytest.mark.parametrize(
    "phone", ["+33 6 12 34 56 78", "(555) 123-4567", "+1-202-555-0143", "020 7946 0958"]
)
def test_phone(phone: str) -> None:
    assert redact_phone(f"call {phone} today") == "call [redacted:phone] today"


def test_phone_leaves_short_numbers() -> None:
    assert redact_phone("room 1234, year 2024") == "room 1234, year 2024"


def test_card_numbers_are_luhn_checked() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert redact_card("pay 4111 1111 1111 1111 ok") == "pay [redacted:card] ok"
    assert redact_card("pay 4111-1111-1111-1111 ok") == "pay [redacted:card] ok"
    assert redact_card("order 4111111111111112 ok") == "order 4111111111111112 ok"


def test_named_patterns_are_applied_only_when_chosen() -> None:
    text = "mail a@b.io, card 4111111111111111, phone +33 6 12 34 56 78"
    assert PrivacyPolicy().redact_text(text) == text
    assert PrivacyPolicy(redact=("email", "card", "phone")).redact_text(text) == (
        "mail [redacted:email], card [redacted:card], phone [redacted:phone]"
    )


def test_unknown_pattern_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown redaction pattern"):
        PrivacyPolicy(redact=("ssn",))


def test_a_hook_runs_after_the_built_in_patterns() -> None:
    policy = PrivacyPolicy.create(hooks=[lambda s: s.replace("ACME", "[redacted:org]")])
    assert policy.redact_text("ACME key sk-abcdefghijkl") == "[redacted:org] key [redacted:key]"


def test_secret_fields_are_masked_whatever_their_value() -> None:
    policy = PrivacyPolicy()
    exchange = full_exchange(
        request={"api_key": "short", "Api-Key": 12345, "nested": [{"password": "x"}], "n": 1}
    )
    assert policy.apply(exchange).request == {
        "api_key": "[redacted:key]",
        "Api-Key": "[redacted:key]",
        "nested": [{"password": "[redacted:key]"}],
        "n": 1,
    }


def test_prompts_and_responses_can_be_left_out() -> None:
    exchange = full_exchange()
    stored = PrivacyPolicy(store_prompts=False, store_responses=False).apply(exchange)
    assert stored.request == {
        "model": "gpt-4o-mini",
        "temperature": 0.7,
        "max_tokens": 64,
        "stream": True,
        "nested": {"list": [1, 2.5, None, True, "x"]},
    }
    served = stored.observations[0]
    assert served.text is None
    assert [(c.name, c.arguments) for c in served.tool_calls] == [("get_weather", ""), ("noop", "")]
    assert served.usage == exchange.observations[0].usage
    assert served.latency_ms == exchange.observations[0].latency_ms


async def test_text_postgres_cannot_hold_is_made_storable(database: Database) -> None:
    exchange = full_exchange(
        request={"messages": [{"role": "user", "content": "nul \x00 and \ud800 half"}]},
        observations=(served_arm(text="nul \x00 here"),),
    )
    stored = PrivacyPolicy().apply(exchange)
    async with database.engine.begin() as conn:
        from storage.inserts import insert_exchanges

        await insert_exchanges(conn, [stored])
    got = await get_exchange(database, exchange.id)
    assert got is not None
    assert got.observations[0].text == "nul \ufffd here"
    assert got.request["messages"][0]["content"] == "nul \ufffd and ? half"
