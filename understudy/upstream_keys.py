"""Masking the configured upstream keys, and every secret pattern, out of text."""

from __future__ import annotations

from collections.abc import Callable

from storage.redaction import SECRET_MARK, redact_secrets
from understudy.settings import Settings

# A configured key shorter than this is not masked by value: masking a word that short
# would garble ordinary text, and such a key is no secret anyway.
MIN_MASKED_KEY_CHARS = 8


def secret_redactor(settings: Settings) -> Callable[[str], str]:
    """What clients may see of an upstream's error: the log's and the database's secret
    patterns, and first the configured upstream keys, whatever their shape."""
    configured = [settings.primary.api_key, *(c.api_key for c in settings.candidates)]
    keys = sorted(
        {v for k in configured if k and len(v := k.get_secret_value()) >= MIN_MASKED_KEY_CHARS},
        key=len,
        reverse=True,  # a key that contains another is masked whole
    )

    def redact(text: str) -> str:
        for key in keys:
            if key in text:
                text = text.replace(key, SECRET_MARK)
        return redact_secrets(text)

    return redact
