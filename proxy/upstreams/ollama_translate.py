"""Pure translation between OpenAI request/response shapes and Ollama's native API.

``to_native`` never raises on a body ``proxy.validation`` accepted. The functions that read
an Ollama answer take any JSON object and raise only ``UpstreamError`` (INVALID_RESPONSE)
when a field has the wrong type.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from core import ErrorKind, Route, UpstreamError

# OpenAI sampling parameters and their Ollama `options` names.
_OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
}

# Chat Completions' reasoning_effort as Ollama's think levels (as Ollama's own OpenAI
# endpoint maps them; efforts past "high" ask for its highest common level).
_THINK_FROM_EFFORT: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}

# Where a translated answer carries Ollama's ``thinking``: vLLM's name for reasoning,
# which the recorder reads like any OpenAI-shaped server's.
REASONING_FIELD = "reasoning_content"

NATIVE_PATHS = {
    Route.CHAT: "/api/chat",
    Route.COMPLETIONS: "/api/generate",
    Route.EMBEDDINGS: "/api/embed",
}


def native_root(base_url: str) -> str:
    """Ollama's native API sits at the server root; accept a configured ``.../v1`` too."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


def _options(body: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for openai_name, ollama_name in _OPTION_NAMES.items():
        if body.get(openai_name) is not None:
            value = body[openai_name]
            options[ollama_name] = (
                [value] if openai_name == "stop" and isinstance(value, str) else value
            )
    return options


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    out: dict[str, Any] = {"role": message.get("role", "user")}
    images: list[str] = []
    if isinstance(content, list):  # content parts: keep text, pass data-URL images as base64
        texts = []
        for part in content:
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                image = part.get("image_url")
                url = str(image.get("url", "")) if isinstance(image, Mapping) else ""
                if url.startswith("data:") and "," in url:
                    images.append(url.split(",", 1)[1])
        out["content"] = "\n".join(texts)
    else:
        out["content"] = "" if content is None else str(content)
    if images:
        out["images"] = images
    calls = message.get("tool_calls")
    if calls and isinstance(calls, list):
        out["tool_calls"] = [
            {
                "function": {
                    "name": c["function"].get("name", ""),
                    "arguments": _json_or_raw(c["function"].get("arguments", "{}")),
                }
            }
            for c in calls
            if isinstance(c, Mapping) and isinstance(c.get("function"), Mapping)
        ]
    if message.get("role") == "tool" and message.get("name"):
        out["tool_name"] = message["name"]
    return out


def _json_or_raw(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _format(body: Mapping[str, Any]) -> Any:
    fmt = body.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_object":
        return "json"
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema")
        return schema.get("schema") if isinstance(schema, Mapping) else None
    return None


def _think(body: Mapping[str, Any], default: bool | str | None) -> Any:
    """Ollama's ``think``: the request's own ``think`` field, else its ``reasoning_effort``,
    else the candidate's setting; None leaves the model's default."""
    if body.get("think") is not None:
        return body["think"]
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort in _THINK_FROM_EFFORT:
        return _THINK_FROM_EFFORT[effort]
    return default


def to_native(
    route: Route,
    body: Mapping[str, Any],
    stream: bool,
    *,
    keep_alive: str | int | None = None,
    think: bool | str | None = None,
) -> dict[str, Any]:
    """The Ollama request for an OpenAI-shaped body (model already mapped).

    ``keep_alive`` and ``think`` are the candidate's settings; a request that names
    either field itself wins over them.
    """
    native: dict[str, Any] = {"model": body["model"]}
    if (alive := body.get("keep_alive", keep_alive)) is not None:
        native["keep_alive"] = alive
    if route is Route.EMBEDDINGS:
        return {**native, "input": body["input"]}
    native["stream"] = stream
    if route is Route.CHAT:
        native["messages"] = [_message(m) for m in body["messages"] if isinstance(m, Mapping)]
        if body.get("tools"):
            native["tools"] = body["tools"]
        if (thinking := _think(body, think)) is not None:
            native["think"] = thinking
    else:
        prompt = body.get("prompt", "")
        native["prompt"] = prompt if isinstance(prompt, str) else "".join(map(str, prompt))
        native["raw"] = True
    if options := _options(body):
        native["options"] = options
    if (fmt := _format(body)) is not None:
        native["format"] = fmt
    return native


def new_id(route: Route) -> str:
    prefix = "chatcmpl" if route is Route.CHAT else "cmpl"
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _finish_reason(done_reason: str | None, has_tools: bool) -> str:
    if has_tools:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


# Reading an answer: absent or null is the default, any other wrong type is an invalid answer.
def _invalid(field: str) -> UpstreamError:
    return UpstreamError(ErrorKind.INVALID_RESPONSE, f"ollama answer: '{field}' has the wrong type")


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise _invalid(field)


def _array(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise _invalid(field)


def _string(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise _invalid(field)


def _count(value: Any, field: str) -> int:
    if value is None:
        return 0
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return int(value)
    raise _invalid(field)


def has_tool_calls(native: Mapping[str, Any]) -> bool:
    """Whether one answer line carries tool calls (UpstreamError when it is malformed)."""
    return tool_call_count(native) > 0


def tool_call_count(native: Mapping[str, Any]) -> int:
    """How many tool calls one answer line carries (UpstreamError when it is malformed)."""
    return len(_array(_object(native.get("message"), "message").get("tool_calls"), "tool_calls"))


def _tool_calls(message: Mapping[str, Any], first_index: int = 0) -> list[dict[str, Any]]:
    """Chat Completions tool calls: arguments as JSON text, and an id (Ollama's own when it
    sends one). A stream numbers its calls across lines from ``first_index``."""
    calls = []
    for i, call in enumerate(_array(message.get("tool_calls"), "tool_calls"), first_index):
        given = _object(call, "tool_calls[]")
        function = _object(given.get("function"), "function")
        arguments = function.get("arguments", {})
        if not isinstance(arguments, str):
            try:
                arguments = json.dumps(arguments)
            except (ValueError, RecursionError) as exc:  # nested deeper than dumps recurses
                raise _invalid("arguments") from exc
        calls.append(
            {
                "index": i,
                "id": _string(given.get("id"), "id") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": _string(function.get("name"), "name"),
                    "arguments": arguments,
                },
            }
        )
    return calls


def _usage(native: Mapping[str, Any]) -> dict[str, int]:
    prompt = _count(native.get("prompt_eval_count"), "prompt_eval_count")
    completion = _count(native.get("eval_count"), "eval_count")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_from_native(
    route: Route, native: Mapping[str, Any], model: str, rid: str
) -> dict[str, Any]:
    """A whole (non-streaming) OpenAI response from one Ollama JSON answer."""
    created = int(time.time())
    if route is Route.EMBEDDINGS:
        vectors = _array(native.get("embeddings"), "embeddings")
        prompt = _count(native.get("prompt_eval_count"), "prompt_eval_count")
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
    if route is Route.COMPLETIONS:
        choice: dict[str, Any] = {
            "index": 0,
            "text": _string(native.get("response"), "response"),
            "logprobs": None,
            "finish_reason": _finish_reason(native.get("done_reason"), False),
        }
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": _usage(native),
        }
    message = _object(native.get("message"), "message")
    calls = [{k: v for k, v in c.items() if k != "index"} for c in _tool_calls(message)]
    content = _string(message.get("content"), "content")
    out_message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if thinking := _string(message.get("thinking"), "thinking"):
        out_message[REASONING_FIELD] = thinking
    if calls:
        out_message["tool_calls"] = calls
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "logprobs": None,
                "finish_reason": _finish_reason(native.get("done_reason"), bool(calls)),
            }
        ],
        "usage": _usage(native),
    }


def chunks_from_native(
    route: Route,
    native: Mapping[str, Any],
    model: str,
    rid: str,
    *,
    first: bool,
    include_usage: bool,
    saw_tools: bool,
    tools_before: int = 0,
) -> list[dict[str, Any]]:
    """OpenAI stream chunks for one NDJSON line of an Ollama stream; ``tools_before``
    tool calls were sent by earlier lines."""
    created = int(time.time())
    done = bool(native.get("done"))
    out: list[dict[str, Any]] = []
    if route is Route.COMPLETIONS:
        text = _string(native.get("response"), "response")
        finish = _finish_reason(native.get("done_reason"), False) if done else None
        if text or finish:
            out.append(
                {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
                    ],
                }
            )
    else:
        message = _object(native.get("message"), "message")
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
        if thinking := _string(message.get("thinking"), "thinking"):
            delta[REASONING_FIELD] = thinking
        if content := _string(message.get("content"), "content"):
            delta["content"] = content
        calls = _tool_calls(message, tools_before)
        if calls:
            delta["tool_calls"] = calls
        if delta:
            out.append(_chat_chunk(rid, created, model, delta, None))
        if done:
            # Ollama sends tool calls in a non-final line; the final line only says done.
            finish = _finish_reason(native.get("done_reason"), saw_tools or bool(calls))
            out.append(_chat_chunk(rid, created, model, {}, finish))
    if done and include_usage:
        obj = "chat.completion.chunk" if route is Route.CHAT else "text_completion"
        out.append(
            {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [],
                "usage": _usage(native),
            }
        )
    return out


def _chat_chunk(
    rid: str, created: int, model: str, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


# OpenAI's error type and code for Ollama's error statuses (its documented 400, 404, 429,
# 500 and 502); the status itself is kept.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, native_text: str) -> dict[str, Any]:
    """OpenAI's error shape for an Ollama error answer (``{"error": "..."}``)."""
    message = native_text[:500]
    try:
        parsed = json.loads(native_text)
        if isinstance(parsed, Mapping) and isinstance(parsed.get("error"), str):
            message = parsed["error"]
    except (ValueError, RecursionError):
        pass  # not JSON (an unknown path's "404 page not found"): the text is the message
    default = ("invalid_request_error", None) if status < 500 else ("server_error", None)
    kind, code = _ERROR_KINDS.get(status, default)
    if status == 404 and "model" not in message:
        code = None  # not a missing model: a path the server does not have
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
