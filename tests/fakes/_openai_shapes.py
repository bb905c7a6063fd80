"""Pure builders for OpenAI's response shapes: messages, deltas, chunks, usage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._content import count_tokens, message_text

# Fixed rather than the clock, so the same request always yields the same bytes.
CREATED = 1_735_689_600


@dataclass(frozen=True)
class Answer:
    """One choice: text pieces, or one tool call whose arguments come in fragments;
    reasoning pieces, under `reasoning_field`, come before either (as vLLM sends them)."""

    pieces: list[str]
    finish_reason: str
    tool_call: tuple[str, str, list[str]] | None = None  # (id, name, argument fragments)
    reasoning: tuple[str, ...] = ()
    reasoning_field: str = "reasoning_content"

    @property
    def tokens(self) -> int:
        visible = len(self.pieces) + (len(self.tool_call[2]) + 3 if self.tool_call else 0)
        return visible + len(self.reasoning)


def sse(payload: dict[str, Any]) -> bytes:
    line = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {line}\n\n".encode()


def message(answer: Answer) -> dict[str, Any]:
    if answer.tool_call is None:
        content: str | None = "".join(answer.pieces)
        extra: dict[str, Any] = {}
    else:
        call_id, name, fragments = answer.tool_call
        content = None
        function = {"name": name, "arguments": "".join(fragments)}
        extra = {"tool_calls": [{"id": call_id, "type": "function", "function": function}]}
    if answer.reasoning:
        extra[answer.reasoning_field] = "".join(answer.reasoning)
    return {"role": "assistant", "content": content, **extra, "refusal": None, "annotations": []}


def opening_delta(answer: Answer) -> dict[str, Any]:
    if answer.tool_call is None:
        return {"role": "assistant", "content": "", "refusal": None}
    call_id, name, _ = answer.tool_call
    call = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}


def delta_count(answer: Answer) -> int:
    visible = len(answer.tool_call[2]) if answer.tool_call else len(answer.pieces)
    return len(answer.reasoning) + visible


def delta(answer: Answer, step: int) -> dict[str, Any] | None:
    if step >= delta_count(answer):
        return None
    if step < len(answer.reasoning):
        return {answer.reasoning_field: answer.reasoning[step]}
    step -= len(answer.reasoning)
    if answer.tool_call is None:
        return {"content": answer.pieces[step]}
    fragment = answer.tool_call[2][step]
    return {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}


def completion_steps(
    head: dict[str, Any],
    texts: list[tuple[list[str], str]],
    usage: dict[str, Any],
    include_usage: bool,
) -> list[list[bytes]]:
    def chunk(index: int, text: str, finish: str | None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        payload: dict[str, Any] = {**head, "choices": [choice]}
        if include_usage:
            payload["usage"] = None
        return sse(payload)

    steps: list[list[bytes]] = [
        [chunk(i, pieces[step], None) for i, (pieces, _) in enumerate(texts) if step < len(pieces)]
        for step in range(max(len(pieces) for pieces, _ in texts))
    ]
    closing = [chunk(i, "", finish) for i, (_, finish) in enumerate(texts)]
    if include_usage:
        closing.append(sse({**head, "choices": [], "usage": usage}))
    closing.append(b"data: [DONE]\n\n")
    return [*steps, closing] if steps else [[], closing]


def chat_prompt_tokens(messages: list[dict[str, Any]], tools: Any) -> int:
    # Roughly OpenAI's accounting: a few tokens of framing per message.
    total = 3 + sum(4 + count_tokens(message_text(m.get("content"))) for m in messages)
    return total + (count_tokens(json.dumps(tools)) if tools else 0)


def chat_usage(prompt_tokens: int, answers: list[Answer]) -> dict[str, Any]:
    completion_tokens = sum(answer.tokens for answer in answers)  # reasoning included
    # OpenAI caches prompts in 128-token steps once they reach 1024 tokens.
    cached = prompt_tokens // 128 * 128 if prompt_tokens >= 1024 else 0
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(len(answer.reasoning) for answer in answers),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def as_batch(value: Any) -> list[Any]:
    """A prompt/input is one string or token list, or a list of them."""
    if isinstance(value, list) and value and isinstance(value[0], (str, list)):
        return value
    return [value]


def prompt_size(prompt: Any) -> int:
    return len(prompt) if isinstance(prompt, list) else count_tokens(str(prompt))


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "system"}
