"""What a translating candidate cannot carry stays on the primary, counted and logged; a
follow-up's mirror goes only where its parent lives; bad Responses input gets OpenAI's
error shape."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from core import Role
from tests.fakes import Fault
from tests.proxy.conftest import CLIENT_KEY, Rig, RigFactory
from tests.proxy.test_responses import WEATHER_TOOL, rig_for
from tests.proxy.test_shadow_candidates import FleetFactory, make_fleet, shadows_of

__all__ = ["make_fleet"]

UNCARRIED = [
    ({"tools": [{"type": "web_search"}]}, "builtin_tool"),
    (
        {"tools": [WEATHER_TOOL, {"type": "file_search", "vector_store_ids": ["vs_1"]}]},
        "builtin_tool",
    ),
    ({"background": True}, "background"),
    ({"conversation": "conv_123"}, "conversation"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
        "input_item",
    ),
]


def exchange_lines(rig: Rig) -> list[dict[str, Any]]:
    return [e for e in rig.log_events() if e.get("event") == "exchange"]


@pytest.mark.parametrize("mode", ["split", "shadow"])
@pytest.mark.parametrize(("extra", "reason"), UNCARRIED)
async def test_what_translation_cannot_carry_is_neither_mirrored_nor_split(
    make_rig: RigFactory, mode: str, extra: dict[str, Any], reason: str
) -> None:
    rig = await rig_for(make_rig, "translate", False, mode=mode, percent=100.0)
    body = {"model": "gpt-4o-mini", "input": "What's new in Paris?", **extra}
    client = rig.client()
    raw = await client.responses.with_raw_response.create(**body)
    assert raw.headers["x-understudy-served-by"] == "openai"
    [exchange] = await rig.exchanges(1)
    assert exchange.arm(Role.SHADOW) is None and not exchange.decision.served_is_candidate
    assert rig.candidate.requests == []  # not half of it, nor any of it
    labels = {"candidate": "local", "reason": reason}
    assert rig.metric("understudy_responses_untranslatable_total", **labels) == 1
    [line] = exchange_lines(rig)
    assert line["candidate_held_back"] == f"untranslatable:{reason}"
    await client.close()


async def test_a_native_candidate_gets_built_in_tools_as_they_are(make_rig: RigFactory) -> None:
    rig = await rig_for(make_rig, "native", True)
    client = rig.client()
    await client.responses.create(
        model="gpt-4o-mini", input="News?", tools=[{"type": "web_search"}]
    )
    await rig.exchanges(1)
    [sent] = [r.body for r in rig.candidate.requests if r.path == "/v1/responses"]
    assert sent["tools"] == [{"type": "web_search"}]
    assert (
        rig.metric(
            "understudy_responses_untranslatable_total", candidate="local", reason="builtin_tool"
        )
        == 0
    )
    await client.close()


@pytest.mark.parametrize("mode", ["native", "translate"])
async def test_a_follow_up_is_not_mirrored_where_its_parent_is_missing(
    make_rig: RigFactory, mode: str
) -> None:
    rig = await rig_for(make_rig, mode, mode == "native")
    client = rig.client()
    rig.candidate.fault = Fault.HTTP_500  # the parent's shadow fails: no twin
    first = await client.responses.create(model="gpt-4o-mini", input="Name a bread.")
    await rig.exchanges(1)
    rig.candidate.fault = None
    asked = len(rig.candidate.requests)
    second = await client.responses.create(
        model="gpt-4o-mini", input="Where from?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    _, follow_up = await rig.exchanges(2)
    assert follow_up.arm(Role.SHADOW) is None and follow_up.served_by == "openai"
    assert len(rig.candidate.requests) == asked  # nothing sent that would fail there
    skipped = {"upstream": "local", "reason": "parent_not_held"}
    assert rig.metric("understudy_shadows_skipped_total", **skipped) == 1
    assert exchange_lines(rig)[-1]["candidate_held_back"] == "parent_not_held"
    # A third turn continuing the second is mirrored neither: the candidate lacks it too.
    await client.responses.create(
        model="gpt-4o-mini", input="And today?", previous_response_id=second.id
    )
    await rig.exchanges(3)
    assert rig.metric("understudy_shadows_skipped_total", **skipped) == 2
    await client.close()


async def test_an_unknown_parent_stays_with_the_primary(make_rig: RigFactory) -> None:
    rig = await rig_for(make_rig, "native", True, mode="cutover", reverse_shadow_rate=0.0)
    client = rig.client()
    with pytest.raises(openai.BadRequestError) as refused:  # the primary has never seen it
        await client.responses.create(
            model="gpt-4o-mini", input="Hi", previous_response_id="resp_made_elsewhere"
        )
    assert refused.value.code == "previous_response_not_found"
    [exchange] = await rig.exchanges(1)
    assert exchange.served_by == "openai" and rig.candidate.requests == []
    assert exchange_lines(rig)[-1]["candidate_held_back"] == "parent_unknown"
    await client.close()


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "hi"}, "model", "missing_required_parameter"),
        ({"model": "gpt-4o-mini", "input": 5}, "input", "invalid_type"),
        (
            {"model": "gpt-4o-mini", "input": "hi", "instructions": ["x"]},
            "instructions",
            "invalid_type",
        ),
        (
            {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": "9"},
            "max_output_tokens",
            "invalid_type",
        ),
        (
            {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 0},
            "max_output_tokens",
            "invalid_value",
        ),
        (
            {"model": "gpt-4o-mini", "input": "hi", "previous_response_id": 7},
            "previous_response_id",
            "invalid_type",
        ),
        ({"model": "gpt-4o-mini", "input": "hi", "text": "json"}, "text", "invalid_type"),
        (
            {"model": "gpt-4o-mini", "input": "hi", "background": "yes"},
            "background",
            "invalid_type",
        ),
    ],
)
async def test_bad_input_gets_openai_error_shape(
    make_rig: RigFactory, body: dict[str, Any], param: str, code: str
) -> None:
    rig = await rig_for(make_rig, "native", True)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{rig.base_url}/responses",
            json=body,
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        ) as r,
    ):
        assert r.status == 400
        error = (await r.json())["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert rig.primary.requests == [] and rig.candidate.requests == []


async def test_max_output_tokens_is_clamped_like_max_tokens(make_rig: RigFactory) -> None:
    rig = await rig_for(make_rig, "translate", False, mode="cutover", reverse_shadow_rate=0.0)
    client = rig.client()
    await client.responses.create(model="gpt-4o-mini", input="Hi", max_output_tokens=10**6)
    [sent] = [r.body for r in rig.candidate.requests if r.path == "/v1/chat/completions"]
    assert sent["max_tokens"] == 32768
    await client.close()


async def test_cancel_of_a_translated_response_is_refused_like_openai(
    make_rig: RigFactory,
) -> None:
    rig = await rig_for(make_rig, "translate", False, mode="cutover", reverse_shadow_rate=0.0)
    client = rig.client()
    answer = await client.responses.create(model="gpt-4o-mini", input="Hi")
    fetched = await client.responses.retrieve(answer.id)
    assert fetched.id == answer.id and fetched.output_text == answer.output_text
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.cancel(answer.id)
    assert refused.value.code == "not_background"
    await client.responses.delete(answer.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(answer.id)
    await client.close()


async def test_shadow_candidates_get_a_follow_up_only_where_its_parent_lives(
    make_fleet: FleetFactory,
) -> None:
    fleet = await make_fleet(
        {"llama": 1.0, "qwen": 1.0}, candidate={"qwen": {"responses": "translate"}}
    )
    fleet.candidates["qwen"].responses.enabled = False  # Chat Completions only
    client = fleet.client()
    first = await client.responses.create(model="gpt-4o-mini", input="Name a bread.")
    [opening] = await fleet.exchanges(1)
    assert shadows_of(opening) == Counter({"gemma": 1, "llama": 1, "qwen": 1})
    [gemma_first] = fleet.candidates["gemma"].responses.stored

    await client.responses.create(
        model="gpt-4o-mini", input="Where from?", previous_response_id=first.id
    )
    _, follow_up = await fleet.exchanges(2)
    # Only the rollout's candidate has a twin of the parent: the others are not asked.
    assert shadows_of(follow_up) == Counter({"gemma": 1})
    sent = [r.body for r in fleet.candidates["gemma"].requests if r.path == "/v1/responses"]
    assert sent[-1]["previous_response_id"] == gemma_first
    for name in ("llama", "qwen"):
        skipped = {"upstream": name, "reason": "parent_not_held"}
        assert fleet.metric("understudy_shadows_skipped_total", **skipped) == 1

    # A built-in tool: the translating shadow candidate is left out, the native ones asked.
    await client.responses.create(
        model="gpt-4o-mini", input="News?", tools=[{"type": "web_search"}]
    )
    *_, searching = await fleet.exchanges(3)
    assert shadows_of(searching) == Counter({"gemma": 1, "llama": 1})
    labels = {"candidate": "qwen", "reason": "builtin_tool"}
    assert fleet.metric("understudy_responses_untranslatable_total", **labels) == 1
    await client.close()


@pytest.mark.parametrize("mode", ["native", "translate"])
async def test_a_follow_up_its_candidate_fails_continues_on_the_primarys_side(
    make_rig: RigFactory, mode: str
) -> None:
    rig = await rig_for(make_rig, mode, mode == "native", mode="cutover", reverse_shadow_rate=1.0)
    client = rig.client()
    first = await client.responses.create(model="gpt-4o-mini", input="Name a bread.")
    await rig.exchanges(1)  # the primary's reverse shadow made its own side of the turn
    [primary_first] = rig.primary.responses.stored
    rig.candidate.fault = Fault.HTTP_500
    raw = await client.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Where from?", previous_response_id=first.id
    )
    assert raw.headers["x-understudy-served-by"] == "openai" and raw.parse().output_text
    sent = [r.body for r in rig.primary.requests if r.path == "/v1/responses"]
    assert sent[-1]["previous_response_id"] == primary_first
    _, follow_up = await rig.exchanges(2)
    assert follow_up.fallback and follow_up.served_by == "openai"
    await client.close()


async def test_a_translated_stream_broken_at_its_first_chunk_falls_back(
    make_rig: RigFactory,
) -> None:
    rig = await rig_for(make_rig, "translate", False, mode="cutover", reverse_shadow_rate=0.0)
    rig.candidate.fault = Fault.GARBAGE_JSON  # status 200, then a line that is not JSON
    client = rig.client()
    raw = await client.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Name a bread.", stream=True
    )
    # Nothing of the candidate's went out before its first chunk: the primary answers.
    assert raw.headers["x-understudy-served-by"] == "openai"
    events = [event async for event in raw.parse()]
    assert events[-1].type == "response.completed"
    [exchange] = await rig.exchanges(1)
    assert exchange.fallback and exchange.served_by == "openai"
    failed = exchange.arm(Role.FAILED_OVER)
    assert failed is not None and failed.error_kind is not None
    await client.close()


async def test_a_follow_up_its_translating_holder_cannot_carry_is_refused(
    make_rig: RigFactory,
) -> None:
    rig = await rig_for(make_rig, "translate", False, mode="cutover", reverse_shadow_rate=0.0)
    client = rig.client()
    first = await client.responses.create(model="gpt-4o-mini", input="Name a bread.")
    await rig.exchanges(1)
    asked = len(rig.candidate.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(
            model="gpt-4o-mini",
            input="Any news about it?",
            previous_response_id=first.id,
            tools=[{"type": "web_search"}],
        )
    assert refused.value.code == "unsupported_by_conversation_holder"
    assert refused.value.param == "previous_response_id"
    # Neither arm is asked: the primary does not hold the conversation either.
    assert len(rig.candidate.requests) == asked and rig.primary.requests == []
    labels = {"candidate": "local", "reason": "builtin_tool"}
    assert rig.metric("understudy_responses_untranslatable_total", **labels) == 1
    code = "unsupported_by_conversation_holder"
    assert rig.metric("understudy_rejected_requests_total", route="responses", code=code) == 1
    await client.close()


async def test_a_follow_up_whose_holder_is_killed_continues_on_the_primarys_side(
    make_rig: RigFactory, tmp_path: Path
) -> None:
    kill = tmp_path / "kill"
    rig = await make_rig(
        candidate={"responses": "native"},
        rollout={
            "mode": "cutover",
            "candidate": "local",
            "reverse_shadow_rate": 1.0,
            "poll_interval_s": 0.05,
        },
        kill_file=str(kill),
    )
    client = rig.client()
    first = await client.responses.create(model="gpt-4o-mini", input="Name a bread.")
    await rig.exchanges(1)  # the primary's reverse shadow made its own side of the turn
    [primary_first] = rig.primary.responses.stored
    kill.touch()
    await until_killed(rig)
    asked = len(rig.candidate.requests)
    raw = await client.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Where from?", previous_response_id=first.id
    )
    assert raw.headers["x-understudy-served-by"] == "openai" and raw.parse().output_text
    sent = [r.body for r in rig.primary.requests if r.path == "/v1/responses"]
    assert sent[-1]["previous_response_id"] == primary_first
    assert len(rig.candidate.requests) == asked
    _, follow_up = await rig.exchanges(2)
    assert follow_up.served_by == "openai" and not follow_up.fallback
    assert exchange_lines(rig)[-1]["candidate_held_back"] == "parent_holder_off"
    await client.close()


async def until_killed(rig: Rig, limit_s: float = 5.0) -> None:
    """Until the proxy has seen the kill file."""
    for _ in range(int(limit_s / 0.02)):
        if rig.metric("understudy_rollout_kill_file_present") == 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the kill file was not seen")
