"""Parse and check a client's request (its headers and JSON body) before anything goes upstream.

Input is strict: the body must be UTF-8 JSON with finite numbers, bounded nesting and no
lone surrogates, and every client header the proxy reads or forwards must be valid text.
Anything else is a 400, so no undecodable byte reaches our own code or an upstream.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from multidict import MultiMapping

from core import Route
from proxy.config import Limits
from proxy.errors import RequestError

# Request fields that pick an upstream host or key, or are SDK-side request options
# (never API fields): upstreams, their keys and the wire request come from config only.
IGNORED_FIELDS = (
    "api_base",
    "base_url",
    "api_key",
    "api_type",
    "api_version",
    "organization",
    "extra_headers",
    "extra_query",
    "extra_body",
    "url",
    "headers",
)

# Header values are text: no surrogates (aiohttp's stand-ins for non-UTF-8 bytes), no controls.
_NOT_HEADER_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")

_CONTAINERS = frozenset({dict, list})


class _NonFiniteNumber(ValueError):
    """NaN, Infinity or a number too large for a double: not JSON, and OpenAI refuses them."""


def _refuse_constant(name: str) -> float:
    raise _NonFiniteNumber(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NonFiniteNumber(text)
    return value


# Only used to say precisely what is wrong with a body the fast parser refused.
_DIAGNOSING_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


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

# Fields only the Responses API has: checked on its route alone, so a chat body carrying
# one of these names is passed on as before.
_RESPONSES_TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "instructions": (_is_str, "a string"),
    "max_output_tokens": (_is_int, "an integer"),
    "previous_response_id": (_is_str, "a string"),
    "text": (_is_object, "an object"),
    "background": (_is_bool, "a boolean"),
    "store": (_is_bool, "a boolean"),
    "parallel_tool_calls": (_is_bool, "a boolean"),
    "metadata": (_is_object, "an object"),
}
_TYPE_CHECKS_BY_ROUTE = {
    route: {**_TYPE_CHECKS, **(_RESPONSES_TYPE_CHECKS if route is Route.RESPONSES else {})}
    for route in Route
}
# The fields bounding an answer's length on each route, held to ``Limits.max_tokens``.
_TOKEN_LIMITS = {
    route: ("max_output_tokens",)
    if route is Route.RESPONSES
    else ("max_tokens", "max_completion_tokens")
    for route in Route
}

_REQUIRED = {
    Route.RESPONSES: ("model",),
    Route.CHAT: ("model", "messages"),
    Route.COMPLETIONS: ("model", "prompt"),
    Route.EMBEDDINGS: ("model", "input"),
}


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    route: Route
    # Prompts: kept out of the repr, which asyncio and tracebacks may print.
    body: dict[str, Any] = field(repr=False)
    raw: bytes | None = field(repr=False)  # the client's bytes, when ``body`` is what they encode
    model: str
    stream: bool


def check_headers(headers: MultiMapping[str], names: Iterable[str]) -> None:
    """RequestError (400) naming the first of ``names`` that is not valid text.

    The value is never echoed: it may be a key.
    """
    for name in names:
        for value in headers.getall(name, ()):
            if _NOT_HEADER_TEXT.search(value):
                raise RequestError(
                    400,
                    f"The {name} header is not valid text: send it as UTF-8 without "
                    "control characters.",
                    param=name,
                    code="invalid_header",
                )


def parse_request(route: Route, raw: bytes, limits: Limits) -> ParsedRequest:
    """The checked body, or RequestError with a status and an OpenAI-shaped message."""
    body = decode_json(raw, limits.max_json_depth)
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
    checks = _TYPE_CHECKS_BY_ROUTE[route]
    for name, value in body.items():
        check = checks.get(name)
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
    for name in _TOKEN_LIMITS[route]:
        changed |= _apply_limit(body, name, limits.max_tokens, limits.clamp)

    return ParsedRequest(
        route=route,
        body=body,
        raw=None if changed else raw,
        model=body["model"],
        stream=bool(body.get("stream")) and route is not Route.EMBEDDINGS,
    )


def decode_json(raw: bytes, max_depth: int) -> Any:
    """Strict JSON: UTF-8, finite numbers, nesting at most ``max_depth``, no lone surrogates.

    orjson enforces all of it but the depth in one parse (and is several times faster than
    the standard library); only a refused body is parsed again, to say what is wrong.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _diagnose(raw, max_depth, exc.msg) from None
    _check_depth(value, max_depth)
    return value


def _check_depth(value: Any, max_depth: int) -> None:
    """RequestError when containers nest deeper than ``max_depth``; a loop, not recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)] if type(value) in _CONTAINERS else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise _too_deep(max_depth)
        if type(node) is dict:
            children: Iterable[Any] = node.values()
        elif _CONTAINERS.isdisjoint(map(type, node)):
            continue  # a list of scalars, such as tokens: skipped at C speed
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))


def _diagnose(raw: bytes, max_depth: int, reason: str) -> RequestError:
    """The most precise error for a body orjson refused (bad input only: speed is no issue)."""
    encoding = json.detect_encoding(raw)
    if encoding == "utf-8-sig":
        return _bad_encoding("starts with a byte order mark; send UTF-8 without one")
    if encoding != "utf-8":
        return _bad_encoding(f"looks like {encoding.upper()}; send it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad_encoding(f"is not valid UTF-8 (invalid byte at offset {exc.start})")
    try:
        value = _DIAGNOSING_DECODER.decode(text)
    except _NonFiniteNumber:
        return _non_finite()
    except RecursionError:
        return _too_deep(max_depth)
    except ValueError:
        return _invalid_json(None)
    try:
        _check_depth(value, max_depth)
    except RequestError as exc:
        return exc
    if _has_lone_surrogate(value):
        return _lone_surrogate()
    return _invalid_json(reason)  # e.g. an integer too large for a double


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any key or string holds a lone surrogate (which UTF-8 cannot encode)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            stack.extend(node)
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)
        elif type(node) is str:
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _invalid_json(reason: str | None) -> RequestError:
    detail = f" ({reason})" if reason else ""
    return RequestError(
        400,
        f"We could not parse the JSON body of your request{detail}. Send valid JSON.",
        code="invalid_json",
    )


def _non_finite() -> RequestError:
    return RequestError(
        400,
        "The JSON body contains NaN, Infinity or a number too large to represent; "
        "numbers must be finite.",
        code="invalid_json",
    )


def _bad_encoding(problem: str) -> RequestError:
    return RequestError(400, f"The request body {problem}.", code="invalid_encoding")


def _too_deep(max_depth: int) -> RequestError:
    return RequestError(
        400,
        f"The JSON body is nested more than {max_depth} levels deep.",
        code="nesting_too_deep",
    )


def _lone_surrogate() -> RequestError:
    return RequestError(
        400,
        "The JSON body contains an unpaired UTF-16 surrogate escape (such as \\ud800), "
        "which is not valid Unicode text.",
        code="invalid_unicode",
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
