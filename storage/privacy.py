"""What may be stored: applied to every exchange before it reaches the database or a spill file."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core import Exchange, Observation, ToolCall
from storage.redaction import BUILTIN_REDACTORS, Redactor, redact_secrets

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

REDACTED = "[redacted:key]"


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates.
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
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
    bearer tokens are masked whatever the settings.
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
        text = _storable(text)
        if len(text) < 6:  # shorter than anything a pattern can match ("a@b.io")
            return text
        text = redact_secrets(text)
        for name, redactor in BUILTIN_REDACTORS.items():  # fixed order, whatever the list says
            if name in self.redact:
                text = redactor(text)
        for hook in self.hooks:
            text = hook(text)
        return text

    def apply(self, exchange: Exchange) -> Exchange:
        """The exchange as it may be stored."""
        request = self._request(exchange.request)
        observations = tuple(self._observation(o) for o in exchange.observations)
        return dataclasses.replace(exchange, request=request, observations=observations)

    def _request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        kept = (
            request
            if self.store_prompts
            else {k: v for k, v in request.items() if k not in PROMPT_FIELDS}
        )
        cleaned: dict[str, Any] = self._value(kept)
        return cleaned

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {
                _storable(str(k)): REDACTED if _is_secret_field(k) else self._value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._value(v) for v in value]
        return value

    def _observation(self, obs: Observation) -> Observation:
        if not self.store_responses:
            # Which tools were called is structure, not content: keep the names.
            calls = tuple(ToolCall(name=c.name, arguments="", id=c.id) for c in obs.tool_calls)
            return dataclasses.replace(obs, text=None, tool_calls=calls)
        return dataclasses.replace(
            obs,
            text=self.redact_text(obs.text) if obs.text is not None else None,
            tool_calls=tuple(
                dataclasses.replace(c, arguments=self.redact_text(c.arguments))
                for c in obs.tool_calls
            ),
        )


def _is_secret_field(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_FIELDS
