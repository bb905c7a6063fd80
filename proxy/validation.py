"""Parse and check a client's JSON body before anything is sent upstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import Route
from proxy.config import Limits
from proxy.errors import RequestError

# Request fields that would let a client pick an upstream host or key; upstreams come from config.
IGNORED_FIELDS = ("api_base", "base_url", "api_key", "api_type", "api_version", "organization")


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_list(v: Any) -> bool:
    return isinstance(v, list)


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _is_str_or_list(v: Any) -> bool:
    return isinstance(v, str | list)


def _is_str_or_object(v: Any) -> bool:
    return isinstance(v, str | dict)


_TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (_is_str, "a string"),
    "stream": (_is_bool, "a boolean"),
    "n": (_is_int, "an integer"),
    "max_tokens": (_is_int, "an integer"),
    "max_completion_tokens": (_is_int, "an integer"),
    "temperature": (_is_number, "a number"),
    "top_p": (_is_number, "a number"),
    "presence_penalty": (_is_number, "a number"),
    "frequency_penalty": (_is_number, "a number"),
    "seed": (_is_int, "an integer"),
    "user": (_is_str, "a string"),
    "stop": (_is_str_or_list, "a string or an array"),
    "stream_options": (_is_object, "an object"),
    "tools": (_is_list, "an array"),
    "tool_choice": (_is_str_or_object, "a string or an object"),
    "response_format": (_is_object, "an object"),
    "messages": (_is_list, "an array"),
    "prompt": (_is_str_or_list, "a string or an array"),
    "input": (_is_str_or_list, "a string or an array"),
    "encoding_format": (_is_str, "a string"),
    "dimensions": (_is_int, "an integer"),
}

_REQUIRED = {
    Route.CHAT: ("model", "messages"),
    Route.COMPLETIONS: ("model", "prompt"),
    Route.EMBEDDINGS: ("model", "input"),
}


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    route: Route
    body: dict[str, Any]
    raw: bytes | None  # the client's bytes, when ``body`` is exactly what they encode
    model: str
    stream: bool


def parse_request(route: Route, raw: bytes, limits: Limits) -> ParsedRequest:
    """The checked body, or RequestError with a status and an OpenAI-shaped message."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise RequestError(
            400,
            "We could not parse the JSON body of your request. Send valid JSON.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.", code="invalid_type")

    for name in _REQUIRED[route]:
        if body.get(name) is None:
            raise RequestError(
                400,
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
    for name, value in body.items():
        check = _TYPE_CHECKS.get(name)
        if check is not None and value is not None and not check[0](value):
            raise RequestError(
                400,
                f"Invalid type for '{name}': expected {check[1]}.",
                param=name,
                code="invalid_type",
            )
    if not body["model"]:
        raise RequestError(400, "'model' must not be empty.", param="model", code="invalid_value")
    if route is Route.CHAT:
        _check_messages(body["messages"])

    changed = False
    for name in IGNORED_FIELDS:
        if name in body:
            del body[name]
            changed = True
    changed |= _apply_limit(body, "n", limits.max_n, limits.clamp)
    for name in ("max_tokens", "max_completion_tokens"):
        changed |= _apply_limit(body, name, limits.max_tokens, limits.clamp)

    return ParsedRequest(
        route=route,
        body=body,
        raw=None if changed else raw,
        model=body["model"],
        stream=bool(body.get("stream")) and route is not Route.EMBEDDINGS,
    )


def _check_messages(messages: list[Any]) -> None:
    if not messages:
        raise RequestError(
            400,
            "'messages' must contain at least one message.",
            param="messages",
            code="invalid_value",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(
                400,
                f"messages[{i}] must be an object with a string 'role'.",
                param=f"messages[{i}]",
                code="invalid_type",
            )


def _apply_limit(body: dict[str, Any], name: str, limit: int, clamp: bool) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if value < 1:
        raise RequestError(400, f"'{name}' must be at least 1.", param=name, code="invalid_value")
    if value <= limit:
        return False
    if not clamp:
        raise RequestError(
            400,
            f"'{name}' is {value}; this proxy allows at most {limit}.",
            param=name,
            code="limit_exceeded",
        )
    body[name] = limit
    return True
