"""Property tests with generated input: the parser, the SSE splitter, the Ollama translator,
the observer, and the whole proxy over a raw socket.

Every target has two tiers: a quick one in the normal run and a ``slow`` one with many more
examples (over 10,000 in total). Both are derandomized, so a run is repeatable.
"""

from __future__ import annotations

import gzip
import itertools
import json
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core import ErrorKind, Observation, Role, Route, UpstreamError
from proxy.capture import Capture
from proxy.config import Limits
from proxy.errors import RequestError
from proxy.exchange import CLIENT_HEADERS
from proxy.observe import observe
from proxy.routing import bucket
from proxy.sse import data_events
from proxy.subject import subject_hash, subject_of
from proxy.upstreams import ollama_translate as tr
from proxy.validation import IGNORED_FIELDS, ParsedRequest, parse_request
from tests.proxy.conftest import CLIENT_KEY, Rig, RigFactory
from tests.proxy.test_hostile_input import send_raw

LIMITS = Limits()
ROUTES = list(Route)


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,  # one rig serves every example of a test
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# -- strategies ----------------------------------------------------------------------------

SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00"]
texts = st.text(st.characters() | st.sampled_from(SURROGATES), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.integers(-(10**400), 10**400)
    | st.floats()  # NaN and the infinities included
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=16,
)
FIELD_NAMES = [
    "model",
    "messages",
    "prompt",
    "input",
    "stream",
    "stream_options",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "user",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    *IGNORED_FIELDS,
]
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool"]) | json_values},
    optional={
        "content": texts
        | json_values
        | st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url"]) | texts},
                optional={
                    "text": json_values,
                    "image_url": json_values
                    | st.fixed_dictionaries({"url": st.just("data:image/png;base64,AAAA") | texts}),
                },
            ),
            max_size=3,
        ),
        "tool_calls": json_values
        | st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "function": json_values
                    | st.fixed_dictionaries(
                        {}, optional={"name": json_values, "arguments": json_values}
                    )
                },
            ),
            max_size=2,
        ),
        "name": json_values,
    },
)
BASES: list[dict[str, Any]] = [
    {},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    {"model": "gpt-4o-mini", "prompt": "once upon"},
    {"model": "text-embedding-3-small", "input": "words"},
]
fields = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | texts,
    json_values
    | st.lists(message, max_size=3)
    | st.fixed_dictionaries(
        {"type": st.sampled_from(["json_object", "json_schema"])},
        optional={"json_schema": json_values},
    ),
    max_size=6,
)


def _nest(value: Any, depth: int, as_object: bool) -> Any:
    for _ in range(depth):
        value = {"k": value} if as_object else [value]
    return value


bodies = st.builds(
    lambda base, extra: {**base, **extra}, st.sampled_from(BASES), fields
) | st.builds(
    lambda base, depth, as_object: {**base, "probe": _nest(1, depth, as_object)},
    st.sampled_from(BASES),
    st.integers(0, 130),
    st.booleans(),
)
NUMBER_TOKENS = ["1e999", "-1e999", "1" + "0" * 400, "NaN", "-Infinity", "-0", "1E+2", "0.1e-999"]


@st.composite
def encoded_bodies(draw: st.DrawFn) -> bytes:
    """A generated body as a client might send it: any encoding, odd number tokens spliced in."""
    body = draw(bodies)
    if draw(st.booleans()):
        body["temperature"] = "__NUMBER__"
    try:
        text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    except ValueError:  # an integer too long for str(): not something a client can send
        text = json.dumps({"model": "m"})
    text = text.replace('"__NUMBER__"', draw(st.sampled_from(NUMBER_TOKENS)))
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"]))
    return text.encode(encoding, "surrogatepass")


raw_bodies = st.binary(max_size=200) | encoded_bodies()

# -- the request parser ---------------------------------------------------------------------


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def assert_openai_error(status: int, body: bytes) -> None:
    error = json.loads(body)
    assert set(error) == {"error"}, error
    assert set(error["error"]) == {"message", "type", "param", "code"}, error
    assert isinstance(error["error"]["message"], str) and error["error"]["message"]


def check_parse(route: Route, raw: bytes) -> ParsedRequest | None:
    """A parsed request that is strict JSON, or a 4xx RequestError in OpenAI's shape."""
    try:
        parsed = parse_request(route, raw, LIMITS)
    except RequestError as exc:
        assert 400 <= exc.status < 500
        response = exc.response()
        assert response.body is not None and isinstance(response.body, bytes)
        assert_openai_error(exc.status, response.body)
        return None
    # Accepted means: finite numbers, valid Unicode, bounded nesting, no SDK-side fields.
    json.dumps(parsed.body, allow_nan=False).encode("utf-8")
    assert _depth(parsed.body) <= LIMITS.max_json_depth
    assert not set(IGNORED_FIELDS) & set(parsed.body)
    subject = subject_of(parsed.body, {})
    assert 0 <= bucket("flag", subject) < 10_000 and subject_hash(subject)
    return parsed


@fuzz(150)
@given(route=st.sampled_from(ROUTES), raw=raw_bodies)
def test_parser_on_any_bytes(route: Route, raw: bytes) -> None:
    check_parse(route, raw)


@pytest.mark.slow
@fuzz(1200)
@given(route=st.sampled_from(ROUTES), raw=raw_bodies)
def test_parser_on_any_bytes_long(route: Route, raw: bytes) -> None:
    check_parse(route, raw)


def check_structured(route: Route, body: dict[str, Any]) -> None:
    try:
        raw = json.dumps(body).encode("utf-8", "surrogatepass")
    except ValueError:
        return
    parsed = check_parse(route, raw)
    # Responses reach Ollama as Chat Completions (proxy.responses translates them first).
    if parsed is not None and route in tr.NATIVE_PATHS:
        # What the proxy accepted translates for Ollama without raising.
        json.dumps(tr.to_native(route, parsed.body, parsed.stream))


@fuzz(150)
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_parser_and_translator_on_structured_bodies(route: Route, body: dict[str, Any]) -> None:
    check_structured(route, body)


@pytest.mark.slow
@fuzz(1200)
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_parser_and_translator_on_structured_bodies_long(
    route: Route, body: dict[str, Any]
) -> None:
    check_structured(route, body)


# -- the SSE splitter -----------------------------------------------------------------------

sse_streams = st.lists(
    st.sampled_from(
        [b"data:", b"data: ", b"\n", b"\r", b"\r\n", b"\n\n", b"x", b"[DONE]", b"{}", b":", b" "]
    )
    | st.binary(max_size=6),
    max_size=30,
).map(b"".join)


def check_sse(stream: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [(float(i), stream[a:b]) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    whole = [data for _, data in data_events([(0.0, stream)])]
    split = list(data_events(chunks))
    assert [data for _, data in split] == whole
    assert [at for at, _ in split] == sorted(at for at, _ in split)


@fuzz(150)
@given(stream=sse_streams, cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_sse_splitting_does_not_depend_on_chunk_boundaries(stream: bytes, cuts: list[int]) -> None:
    check_sse(stream, cuts)


@pytest.mark.slow
@fuzz(1200)
@given(stream=sse_streams, cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_sse_splitting_does_not_depend_on_chunk_boundaries_long(
    stream: bytes, cuts: list[int]
) -> None:
    check_sse(stream, cuts)


# -- the Ollama translator, answers -> OpenAI ------------------------------------------------

native_message = json_values | st.fixed_dictionaries(
    {},
    optional={
        "role": json_values,
        "content": texts | json_values,
        "tool_calls": json_values
        | st.lists(
            json_values
            | st.fixed_dictionaries(
                {},
                optional={
                    "function": json_values
                    | st.fixed_dictionaries(
                        {}, optional={"name": json_values, "arguments": json_values}
                    )
                },
            ),
            max_size=3,
        ),
    },
)
native_answers = st.fixed_dictionaries(
    {},
    optional={
        "message": native_message,
        "response": texts | json_values,
        "done": json_values,
        "done_reason": st.sampled_from(["stop", "length"]) | json_values,
        "prompt_eval_count": st.integers(0, 10**6) | json_values,
        "eval_count": st.integers(0, 10**6) | json_values,
        "embeddings": json_values | st.lists(st.lists(st.floats(), max_size=3), max_size=2),
    },
)


def check_native(route: Route, native: dict[str, Any], first: bool, usage: bool) -> None:
    """Either OpenAI-shaped output or UpstreamError(INVALID_RESPONSE); nothing else."""
    calls: list[Callable[[], Any]] = [
        lambda: tr.completion_from_native(route, native, "m", "id"),
        lambda: tr.chunks_from_native(
            route, native, "m", "id", first=first, include_usage=usage, saw_tools=first
        ),
        lambda: tr.has_tool_calls(native),
    ]
    for call in calls:
        try:
            json.dumps(call())
        except UpstreamError as exc:
            assert exc.kind is ErrorKind.INVALID_RESPONSE
    tr.error_body(500, json.dumps(native))


@fuzz(100)
@given(
    route=st.sampled_from(ROUTES), native=native_answers, first=st.booleans(), usage=st.booleans()
)
def test_translator_on_any_ollama_answer(
    route: Route, native: dict[str, Any], first: bool, usage: bool
) -> None:
    check_native(route, native, first, usage)


@pytest.mark.slow
@fuzz(1500)
@given(
    route=st.sampled_from(ROUTES), native=native_answers, first=st.booleans(), usage=st.booleans()
)
def test_translator_on_any_ollama_answer_long(
    route: Route, native: dict[str, Any], first: bool, usage: bool
) -> None:
    check_native(route, native, first, usage)


# -- the observer (runs in the recorder's done-callback) -------------------------------------


def _answer_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value).encode("utf-8", "surrogatepass")
    except ValueError:
        return b"{}"


answer_chunks = st.lists(
    st.builds(lambda v: b"data: " + _answer_bytes(v) + b"\n\n", native_answers | json_values)
    | st.builds(
        lambda m: _answer_bytes({"choices": [{"delta": m, "message": m, "text": m}]}),
        native_message,
    )
    | st.just(b"data: [DONE]\n\n")
    | st.binary(max_size=20),
    max_size=5,
)


def check_observe(chunks: list[bytes], status: int | None, route: Route, stream: bool) -> None:
    capture = Capture(status=status)
    for chunk in chunks:
        capture.add(chunk)
    capture.finish()
    obs = observe(
        capture, upstream="u", role=Role.SHADOW, model="m", route=route, stream=stream, max_chars=50
    )
    assert isinstance(obs, Observation)
    assert obs.text is None or (isinstance(obs.text, str) and len(obs.text) <= 50)
    assert obs.finish_reason is None or isinstance(obs.finish_reason, str)
    for call in obs.tool_calls:
        assert isinstance(call.name, str) and isinstance(call.arguments, str)
    for count in (obs.usage.prompt_tokens, obs.usage.completion_tokens, obs.usage.cached_tokens):
        assert count is None or type(count) is int


@fuzz(100)
@given(
    chunks=answer_chunks,
    status=st.sampled_from([None, 200, 400, 500]),
    route=st.sampled_from(ROUTES),
    stream=st.booleans(),
)
def test_observe_never_raises(
    chunks: list[bytes], status: int | None, route: Route, stream: bool
) -> None:
    check_observe(chunks, status, route, stream)


@pytest.mark.slow
@fuzz(1000)
@given(
    chunks=answer_chunks,
    status=st.sampled_from([None, 200, 400, 500]),
    route=st.sampled_from(ROUTES),
    stream=st.booleans(),
)
def test_observe_never_raises_long(
    chunks: list[bytes], status: int | None, route: Route, stream: bool
) -> None:
    check_observe(chunks, status, route, stream)


# -- the whole proxy over a raw socket -------------------------------------------------------

PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
# Bytes an HTTP/1.1 header value may carry on the wire (aiohttp's parser refuses the rest
# itself, before the proxy's code runs): visible ASCII, space, tab and any byte >= 0x80.
header_values = st.binary(max_size=16).map(
    lambda b: bytes(c for c in b if c in (9, 32) or 33 <= c <= 126 or c >= 128)
)
client_headers = st.lists(
    st.tuples(st.sampled_from([name.encode() for name in CLIENT_HEADERS]), header_values),
    max_size=3,
)
content_encodings = st.sampled_from(["none"] * 5 + ["gzip", "deflate", "fake-gzip", "identity"])


def _encode(body: bytes, encoding: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    if encoding == "gzip":
        return gzip.compress(body), [(b"Content-Encoding", b"gzip")]
    if encoding == "deflate":
        return zlib.compress(body), [(b"Content-Encoding", b"deflate")]
    if encoding == "fake-gzip":  # claims gzip, is not
        return body, [(b"Content-Encoding", b"gzip")]
    if encoding == "identity":
        return body, [(b"Content-Encoding", b"identity")]
    return body, []


BASE_FOR_PATH = dict(zip(PATHS, BASES[1:], strict=True))
plain_texts = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=12)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """A path and a body: often a valid request with odd extras, else anything at all."""
    path = draw(st.sampled_from(PATHS))
    if draw(st.booleans()):
        return path, draw(raw_bodies)
    body: dict[str, Any] = {**BASE_FOR_PATH[path], "stream": draw(st.booleans())}
    if "messages" in body:
        body["messages"] = [{"role": "user", "content": draw(plain_texts)}]
    body.update(draw(st.dictionaries(plain_texts, json_values, max_size=3)))
    try:
        return path, json.dumps(body, allow_nan=False).encode()
    except ValueError:  # a NaN, or an integer too long for str(): sent as the bare base
        return path, json.dumps(BASE_FOR_PATH[path]).encode()


_RIGS: dict[int, Rig] = {}


async def _shared_rig(make_rig: RigFactory) -> Rig:
    """One rig per test (the fixture's factory), reused by all of that test's examples."""
    key = id(make_rig)
    if key not in _RIGS:
        _RIGS.clear()
        _RIGS[key] = await make_rig(candidate_kind="ollama")
    return _RIGS[key]


async def check_end_to_end(
    make_rig: RigFactory,
    request: tuple[str, bytes],
    headers: list[tuple[bytes, bytes]],
    encoding: str,
) -> None:
    rig = await _shared_rig(make_rig)
    path, body = request
    payload, extra = _encode(body, encoding)
    auth = [(b"Authorization", f"Bearer {CLIENT_KEY}".encode())]
    given = [h for h in auth if h[0] not in {n for n, _ in headers}] + headers + extra
    answer = await send_raw(rig, payload, path=path, headers=given)
    ours = answer.headers.get("x-understudy-served-by") == "understudy"
    event(f"status {answer.status}")  # shown by --hypothesis-show-statistics
    assert not (ours and answer.status >= 500), answer.body
    if answer.status >= 400:
        assert_openai_error(answer.status, answer.body)
    assert '"internal_error"' not in rig.logs.getvalue()
    assert '"background_task_failed"' not in rig.logs.getvalue()


@fuzz(60)
@given(request=requests(), headers=st.just([]) | client_headers, encoding=content_encodings)
async def test_proxy_never_answers_500_on_hostile_requests(
    make_rig: RigFactory,
    request: tuple[str, bytes],
    headers: list[tuple[bytes, bytes]],
    encoding: str,
) -> None:
    await check_end_to_end(make_rig, request, headers, encoding)


@pytest.mark.slow
@fuzz(1200)
@given(request=requests(), headers=st.just([]) | client_headers, encoding=content_encodings)
async def test_proxy_never_answers_500_on_hostile_requests_long(
    make_rig: RigFactory,
    request: tuple[str, bytes],
    headers: list[tuple[bytes, bytes]],
    encoding: str,
) -> None:
    await check_end_to_end(make_rig, request, headers, encoding)
