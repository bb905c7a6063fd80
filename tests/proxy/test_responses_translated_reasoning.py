"""A reasoning model reached for ``POST /v1/responses`` through translation to Chat
Completions keeps its thinking: the chat answer's ``reasoning_content`` (or ``reasoning``;
Ollama's ``thinking``) becomes a ``reasoning`` output item, or reasoning events when
streamed, as a native Responses server sends them; the official SDK parses them, the
recorder reads them apart from the answer, and a follow-up carries the answer only."""

from __future__ import annotations

from typing import Any

import pytest

from core import Role
from tests.fakes._content import split_tokens
from tests.proxy.conftest import Rig, RigFactory
from tests.proxy.test_responses import candidate_calls, rig_for

MODEL = "llama3.1:8b"  # what the rig maps gpt-4o-mini to
TOKEN_DELAY_S = 0.03
QUESTION = "What is 17 times 23?"
MESSAGES: list[Any] = [{"role": "user", "content": QUESTION}]


async def served_by_a_chat_only_thinker(make_rig: RigFactory, field: str) -> Rig:
    rig = await rig_for(make_rig, "translate", False, mode="cutover", reverse_shadow_rate=0.0)
    rig.candidate.reasoning_field = field
    return rig


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_a_whole_answer_gets_a_reasoning_item_before_its_message(
    make_rig: RigFactory, field: str
) -> None:
    rig = await served_by_a_chat_only_thinker(make_rig, field)
    client = rig.client()
    answer = await client.responses.create(model="gpt-4o-mini", input=QUESTION)
    thought = rig.candidate.reasoning_text(MODEL, MESSAGES)
    reply = rig.candidate.reply_text(MODEL, MESSAGES)
    thinking, message = answer.output
    assert thinking.type == "reasoning" and thinking.id.startswith("rs_")
    assert thinking.summary == [] and thinking.status == "completed"
    assert thinking.content is not None
    assert [(c.type, c.text) for c in thinking.content] == [("reasoning_text", thought)]
    assert message.type == "message" and answer.output_text == reply  # the answer unchanged
    assert answer.usage is not None
    assert answer.usage.output_tokens_details.reasoning_tokens == len(split_tokens(thought))
    [exchange] = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert exchange.decision.served_is_candidate and served is not None and served.ok
    assert served.text == reply and served.reasoning_text == thought
    assert served.ttft_any_ms == served.ttft_ms  # not streamed: both are the first byte
    await client.close()


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_a_stream_thinks_first_and_is_timed_to_both_first_tokens(
    make_rig: RigFactory, field: str
) -> None:
    rig = await served_by_a_chat_only_thinker(make_rig, field)
    rig.candidate.token_delay_s = TOKEN_DELAY_S
    client = rig.client()
    stream = await client.responses.create(model="gpt-4o-mini", input=QUESTION, stream=True)
    events = [event async for event in stream]
    thought = rig.candidate.reasoning_text(MODEL, MESSAGES)
    reply = rig.candidate.reply_text(MODEL, MESSAGES)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    # The reasoning item opens, streams and closes before the message item is added.
    item_events = [(e.type, e.output_index, e.item.type) for e in events if "item" in e.type]  # type: ignore[union-attr]
    assert item_events == [
        ("response.output_item.added", 0, "reasoning"),
        ("response.output_item.done", 0, "reasoning"),
        ("response.output_item.added", 1, "message"),
        ("response.output_item.done", 1, "message"),
    ]
    deltas = [e for e in events if e.type == "response.reasoning_text.delta"]
    assert "".join(d.delta for d in deltas) == thought
    assert len(deltas) == len(split_tokens(thought))
    assert {(d.output_index, d.content_index) for d in deltas} == {(0, 0)}
    [done] = [e for e in events if e.type == "response.reasoning_text.done"]
    assert done.text == thought and done.item_id == deltas[0].item_id
    assert kinds.index("response.output_item.done") < kinds.index("response.output_text.delta")
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == reply
    final = events[-1].response  # type: ignore[union-attr]
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == reply
    assert final.output[0].content[0].text == thought  # type: ignore[union-attr,index]

    [exchange] = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.ok
    assert served.text == reply and served.reasoning_text == thought
    assert served.ttft_ms is not None and served.ttft_any_ms is not None
    # The fake thinks one token per delay before its first answer token.
    thinking_s = len(split_tokens(thought)) * TOKEN_DELAY_S
    gap_s = (served.ttft_ms - served.ttft_any_ms) / 1000
    figures = f"ttft_any {served.ttft_any_ms:.1f} ms, ttft {served.ttft_ms:.1f} ms"
    assert served.ttft_any_ms < served.ttft_ms, figures
    assert thinking_s * 0.9 <= gap_s <= thinking_s + 0.5, figures
    await client.close()


async def test_the_sdks_stream_helper_accumulates_the_reasoning_item(
    make_rig: RigFactory,
) -> None:
    rig = await served_by_a_chat_only_thinker(make_rig, "reasoning_content")
    client = rig.client()
    thoughts: list[str] = []
    async with client.responses.stream(model="gpt-4o-mini", input=QUESTION) as stream:
        async for event in stream:
            if event.type == "response.reasoning_text.delta":
                thoughts.append(event.delta)
        final = await stream.get_final_response()
    thought = rig.candidate.reasoning_text(MODEL, MESSAGES)
    assert "".join(thoughts) == thought
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == rig.candidate.reply_text(MODEL, MESSAGES)
    await rig.exchanges(1)
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_follow_up_carries_the_answer_not_the_thinking(
    make_rig: RigFactory, stream: bool
) -> None:
    rig = await served_by_a_chat_only_thinker(make_rig, "reasoning_content")
    client = rig.client()
    if stream:
        events = [
            e
            async for e in await client.responses.create(
                model="gpt-4o-mini", input=QUESTION, stream=True
            )
        ]
        first = events[-1].response  # type: ignore[union-attr]
    else:
        first = await client.responses.create(model="gpt-4o-mini", input=QUESTION)
    reply = rig.candidate.reply_text(MODEL, MESSAGES)
    assert first.output[0].type == "reasoning" and first.output_text == reply
    # Continued by id (the remembered turn), then by sending the output items back as input,
    # as a client that keeps the conversation itself does: its reasoning item is left out.
    by_id = await client.responses.create(
        model="gpt-4o-mini", input="And times 2?", previous_response_id=first.id
    )
    echoed: list[Any] = [item.model_dump(exclude_none=True) for item in first.output]
    by_items = await client.responses.create(
        model="gpt-4o-mini",
        input=[*MESSAGES, *echoed, {"role": "user", "content": "And times 2?"}],
    )
    assert by_id.output_text and by_items.output_text
    _, sent_by_id, sent_by_items = candidate_calls(rig, "translate")
    expected = [*MESSAGES, {"role": "assistant", "content": reply}]
    assert sent_by_id["messages"] == [*expected, {"role": "user", "content": "And times 2?"}]
    assert sent_by_items["messages"] == sent_by_id["messages"]
    await rig.exchanges(3)
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_shadow_arms_thinking_is_recorded_apart(make_rig: RigFactory, stream: bool) -> None:
    rig = await rig_for(make_rig, "translate", False)
    rig.candidate.reasoning_field = "reasoning_content"
    rig.candidate.token_delay_s = TOKEN_DELAY_S
    client = rig.client()
    answer = await client.responses.create(model="gpt-4o-mini", input=QUESTION, stream=stream)
    if stream:
        events = [event async for event in answer]  # type: ignore[union-attr]
        # The primary answered, without reasoning: the client sees none.
        assert "response.reasoning_text.delta" not in [e.type for e in events]
    [exchange] = await rig.exchanges(1)
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.ok, shadow
    thought = rig.candidate.reasoning_text(MODEL, MESSAGES)
    assert shadow.text == rig.candidate.reply_text(MODEL, MESSAGES)
    assert shadow.reasoning_text == thought and "Thinking" not in shadow.text
    assert shadow.usage.reasoning_tokens == len(split_tokens(thought))
    assert shadow.ttft_ms is not None and shadow.ttft_any_ms is not None
    if stream:
        assert shadow.ttft_any_ms < shadow.ttft_ms
    else:
        assert shadow.ttft_any_ms == shadow.ttft_ms
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.reasoning_text is None
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_an_ollama_candidates_thinking_reaches_the_responses_client(
    make_rig: RigFactory, stream: bool
) -> None:
    rig = await make_rig(candidate_kind="ollama", rollout={"mode": "cutover", "candidate": "local"})
    rig.ollama.thinks = True
    rig.ollama.token_delay_s = TOKEN_DELAY_S
    client = rig.client()
    if stream:
        events = [
            e
            async for e in await client.responses.create(
                model="gpt-4o-mini", input=QUESTION, stream=True
            )
        ]
        answer = events[-1].response  # type: ignore[union-attr]
        streamed = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    else:
        answer = await client.responses.create(model="gpt-4o-mini", input=QUESTION)
    [sent] = [r.body for r in rig.ollama.requests if r.path == "/api/chat"]
    thought = rig.ollama.reasoning_text(MODEL, sent["messages"])
    assert [item.type for item in answer.output] == ["reasoning", "message"]
    assert answer.output[0].content[0].text == thought  # type: ignore[union-attr,index]
    assert answer.output_text and "Thinking" not in answer.output_text
    if stream:
        assert streamed == thought
    [exchange] = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.ok
    assert served.text == answer.output_text and served.reasoning_text == thought
    assert served.ttft_ms is not None and served.ttft_any_ms is not None
    if stream:
        assert served.ttft_any_ms < served.ttft_ms
    await client.close()
