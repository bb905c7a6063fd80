"""Redactors: functions ``str -> str`` that mask secrets and personal data.

Secrets (API keys, bearer tokens) are always masked; the personal-data
patterns are chosen by name in the settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Redactor = Callable[[str], str]

_SECRET_MARK = "[redacted:key]"

# Each pattern comes with lower-case substrings one of which any match contains:
# checking those first skips the regex scan for ordinary text, which is most text.
_SECRET_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # "Bearer <token>" in any header-ish text.
    (("bearer",), re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{6,}")),
    # OpenAI and look-alikes: sk-..., sk-proj-..., pk-/rk- keys.
    (("k-",), re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}")),
    (("akia",), re.compile(r"\bAKIA[0-9A-Z]{16}\b")),  # AWS access key id
    (("gh",), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b")),  # GitHub tokens
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),  # Slack tokens
    (("aiza",), re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}")),  # Google API keys
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")),  # Hugging Face tokens
    (
        ("eyj",),
        re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]+"),
    ),  # JWT
    # key=value / "key": "value" where the key names a secret.
    (
        ("key", "secret", "pass", "token", "auth"),
        re.compile(
            r"""(?ix)
            (?<![A-Za-z0-9_])
            (?:api[_-]?key|secret|password|passwd|access[_-]?token|auth[_-]?token|authorization)
            (["']?\s*[:=]\s*["']?)
            (?:(?:basic|token|bearer|digest|apikey)\s+)?  # an Authorization scheme
            [^\s"',;]{6,}
            """
        ),
    ),
)


def _mask_value(match: re.Match[str]) -> str:
    # Keep "api_key: " so the text still reads; mask only the value.
    return match.string[match.start(0) : match.end(1)] + _SECRET_MARK


def redact_secrets(text: str) -> str:
    lowered = text.lower()
    for triggers, pattern in _SECRET_PATTERNS:
        if any(t in lowered for t in triggers):
            text = pattern.sub(_mask_value if pattern.groups else _SECRET_MARK, text)
            lowered = text.lower()
    return text


def _digit_count(text: str) -> int:
    return sum(text.count(d) for d in "0123456789")


_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")


def redact_email(text: str) -> str:
    return _EMAIL.sub("[redacted:email]", text) if "@" in text else text


# An optional +country code and (area code), then digits in groups split by
# space, dot or dash: 9 to 15 digits in all. Plain digit runs of that length
# count too: false positives on long numbers are why this pattern is opt-in.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{1,4}\)[\s.\-]?)?\d(?:[\s.\-]?\d){4,14}(?!\w)"
)


def redact_phone(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = sum(c.isdigit() for c in match.group(0))
        return "[redacted:phone]" if 9 <= digits <= 15 else match.group(0)

    return _PHONE.sub(replace, text) if _digit_count(text) >= 9 else text


_CARD_CANDIDATE = re.compile(r"(?<!\d)\d(?:[ \-]?\d){12,18}(?!\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def redact_card(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"[ \-]", "", match.group(0))
        return "[redacted:card]" if luhn_ok(digits) else match.group(0)

    return _CARD_CANDIDATE.sub(replace, text) if _digit_count(text) >= 13 else text


# Cards run before phones so a card number is labelled as a card.
BUILTIN_REDACTORS: Mapping[str, Redactor] = {
    "card": redact_card,
    "email": redact_email,
    "phone": redact_phone,
}
