"""What may be stored: applied to every exchange before it reaches the database or a spill file."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from core import Exchange, Observation, ToolCall
from storage.redaction import (
    BUILTIN_REDACTORS,
    PIECE_CHARS,
    SECRET_MARK,
    Redactor,
    pieces,
    redact_secrets,
)

# Request fields whose value is a credential, whatever it looks like.
SECRET_FIELDS = frozenset(
    {
        "api_key",
        "apikey",
        "x_api_key",
        "openai_api_key",
        "authorization",
        "proxy_authorization",
        "access_token",
        "refresh_token",
        "auth_token",
        "client_secret",
        "secret",
        "password",
        "headers",
        "extra_headers",
    }
)

# Request fields that carry the prompt; dropped when prompts are not stored.
PROMPT_FIELDS = frozenset(
    {"messages", "prompt", "input", "suffix", "instructions", "tools", "functions", "user"}
)

REDACTED = SECRET_MARK

# Containers nested deeper than this in a request are stored as their JSON
# text (secret fields masked, then redacted like any text) instead of as
# structure: no walk here or in a JSON encoder downstream recurses without end.
STORED_DEPTH = 32

# A pattern decides where a match may start from the character before it; once
# that character is masked, a mask's "]" precedes what follows, and a second
# pass could find a match that the first did not ("4111111111111111sk-..."). Text
# is redacted again while a mask is followed by a character a match can start
# with, so that redacting redacted text changes nothing.
_MASK_THEN_START = re.compile(r"\[redacted:[a-z]+\](?=[A-Za-z0-9._%+\-(])")
_MOST_PASSES = 3

T = TypeVar("T")


def run_steps(steps: Generator[int, None, T]) -> T:
    """Run stepwise work to the end at once (the synchronous API).

    Stepwise work is a generator that yields the characters each step
    redacted and returns its result.
    """
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


def is_secret_field(key: object) -> bool:
    """Whether a field of this name holds a credential, whatever its value looks like."""
    return isinstance(key, str) and _is_secret_name(key)


@functools.lru_cache(maxsize=1024)  # the same few field names, in every request
def _is_secret_name(key: str) -> bool:
    return key.lower().replace("-", "_") in SECRET_FIELDS


def _is_scalar(value: Any) -> bool:
    """Neither text nor a container: stored as it is (``_value`` returns it unchanged)."""
    return not isinstance(value, str | Mapping | list | tuple)


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates.
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text.isascii():  # a flag of the string, no scan: most text is done here
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    """Which parts of an exchange are kept, and which text is masked.

    ``redact`` names built-in patterns (``email``, ``phone``, ``card``);
    ``hooks`` are extra ``str -> str`` redactors run after them. API keys and
    bearer tokens are masked whatever the settings. Long texts are redacted
    in pieces of at most ``storage.redaction.PIECE_CHARS`` characters, cut
    where no built-in pattern's match spans; hooks see those pieces too.
    """

    store_prompts: bool = True
    store_responses: bool = True
    redact: tuple[str, ...] = ()
    hooks: tuple[Redactor, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.redact) - set(BUILTIN_REDACTORS))
        if unknown:
            known = ", ".join(sorted(BUILTIN_REDACTORS))
            raise ValueError(f"unknown redaction pattern(s) {unknown}: choose from {known}")

    @classmethod
    def create(
        cls,
        *,
        store_prompts: bool = True,
        store_responses: bool = True,
        redact: Sequence[str] = (),
        hooks: Sequence[Redactor] = (),
    ) -> PrivacyPolicy:
        return cls(store_prompts, store_responses, tuple(redact), tuple(hooks))

    def redact_text(self, text: str) -> str:
        return run_steps(self.redact_text_steps(text))

    def apply(self, exchange: Exchange) -> Exchange:
        """The exchange as it may be stored."""
        return run_steps(self.apply_steps(exchange))

    def apply_steps(self, exchange: Exchange) -> Generator[int, None, Exchange]:
        """``apply`` in steps of at most one piece of text each, for callers on an event loop."""
        request = yield from self._request(exchange.request)
        observations = []
        for obs in exchange.observations:
            observations.append((yield from self._observation(obs)))
        return dataclasses.replace(exchange, request=request, observations=tuple(observations))

    def redact_text_steps(self, text: str) -> Generator[int, None, str]:
        if len(text) < 6:  # shorter than anything a pattern can match ("a@b.io")
            yield len(text)
            return _storable(text)
        if len(text) <= PIECE_CHARS:  # one piece: what ``pieces`` would yield
            redacted = self._redact_piece(_storable(text))
            yield len(text)
            return redacted
        out: list[str] = []
        for piece in pieces(text):
            out.append(self._redact_piece(_storable(piece)))
            yield len(piece)
        return "".join(out)

    def _redact_piece(self, text: str) -> str:
        for _ in range(_MOST_PASSES):
            redacted = self._redact_once(text)
            if redacted == text or not _MASK_THEN_START.search(redacted):
                return redacted
            text = redacted
        return text

    def _redact_once(self, text: str) -> str:
        text = redact_secrets(text)
        for name, redactor in BUILTIN_REDACTORS.items():  # fixed order, whatever the list says
            if name in self.redact:
                text = redactor(text)
        for hook in self.hooks:
            text = hook(text)
        return text

    def _request(self, request: Mapping[str, Any]) -> Generator[int, None, dict[str, Any]]:
        kept = (
            request
            if self.store_prompts
            else {k: v for k, v in request.items() if k not in PROMPT_FIELDS}
        )
        cleaned: dict[str, Any] = yield from self._value(kept, 0)
        return cleaned

    def _value(self, value: Any, depth: int) -> Generator[int, None, Any]:
        if isinstance(value, str):
            return (yield from self.redact_text_steps(value))
        if not isinstance(value, Mapping | list | tuple):
            return value
        if depth >= STORED_DEPTH:
            return (yield from self.redact_text_steps(_masked_json(value)))
        if isinstance(value, Mapping):
            cleaned: dict[str, Any] = {}
            for key, item in value.items():
                if is_secret_field(key):
                    cleaned[_storable(str(key))] = REDACTED
                elif _is_scalar(item):  # no generator for what has nothing to redact
                    cleaned[_storable(str(key))] = item
                else:
                    cleaned[_storable(str(key))] = yield from self._value(item, depth + 1)
            return cleaned
        items = []
        for item in value:
            items.append(item if _is_scalar(item) else (yield from self._value(item, depth + 1)))
        return items

    def _observation(self, obs: Observation) -> Generator[int, None, Observation]:
        if not self.store_responses:
            # Which tools were called is structure, not content: keep the names.
            calls = tuple(ToolCall(name=c.name, arguments="", id=c.id) for c in obs.tool_calls)
            return dataclasses.replace(obs, text=None, reasoning_text=None, tool_calls=calls)
        text = None if obs.text is None else (yield from self.redact_text_steps(obs.text))
        # Reasoning is the model's output as much as its answer: the same rules apply.
        reasoning = obs.reasoning_text
        if reasoning is not None:
            reasoning = yield from self.redact_text_steps(reasoning)
        tool_calls = []
        for call in obs.tool_calls:
            arguments = yield from self.redact_text_steps(call.arguments)
            tool_calls.append(
                call
                if arguments == call.arguments
                else dataclasses.replace(call, arguments=arguments)
            )
        if (
            text == obs.text
            and reasoning == obs.reasoning_text
            and all(new is old for new, old in zip(tool_calls, obs.tool_calls, strict=True))
        ):
            return obs  # nothing masked: the observation as it came (it is immutable)
        return dataclasses.replace(
            obs, text=text, reasoning_text=reasoning, tool_calls=tuple(tool_calls)
        )


class _Raw(str):
    """JSON text already encoded, as opposed to a string value still to encode."""


def _masked_json(value: Any) -> str:
    """``value`` as JSON text with secret fields masked, at any depth, without recursion."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            parts.append(item)
        elif isinstance(item, Mapping):
            stack.append(_Raw("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, child = entries[index]
                stack.append(REDACTED if is_secret_field(key) else child)
                comma = "," if index else ""
                stack.append(_Raw(f"{comma}{json.dumps(str(key), ensure_ascii=False)}:"))
            stack.append(_Raw("{"))
        elif isinstance(item, list | tuple):
            stack.append(_Raw("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Raw(","))
            stack.append(_Raw("["))
        elif item is None or isinstance(item, str | int | float | bool):
            parts.append(json.dumps(item, ensure_ascii=False))
        else:
            parts.append(json.dumps(str(item), ensure_ascii=False))
    return "".join(parts)
