"""Redactors: functions ``str -> str`` that mask secrets and personal data.

Secrets (API keys, bearer tokens) are always masked; the personal-data
patterns are chosen by name in the settings.

Every pattern costs time linear in the text, because hostile clients choose
the text. Three rules make it so:

- a match may only start where a run of the pattern's own characters starts:
  the first character is consumed, then a lookbehind checks the character
  before it (``x(?<![class]x)``). Starting with a literal or a small class
  also lets the regex engine skip ahead in C to the next candidate;
- a quantifier that more pattern follows is bounded or possessive, and
  adjacent quantifiers never share characters, so a failed attempt never
  rescans;
- the one unbounded quantifier a pattern may have is its last element (the
  rest of a token), which nothing can make backtrack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

Redactor = Callable[[str], str]

SECRET_MARK = "[redacted:key]"

# Each pattern comes with lower-case substrings one of which any match contains:
# checking those first skips the regex scan for ordinary text, which is most text.
_SECRET_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # "Bearer <token>" in any header-ish text, any case.
    (
        ("bearer",),
        re.compile(
            r"[Bb](?<![A-Za-z0-9_][Bb])[Ee][Aa][Rr][Ee][Rr]\s++[A-Za-z0-9._~+/=\-]{6,}"
        ),
    ),
    # OpenAI and look-alikes: sk-..., sk-proj-..., pk-/rk- keys.
    (("k-",), re.compile(r"(?:s|p|r)(?<![A-Za-z0-9_][spr])k-[A-Za-z0-9_\-]{8,}")),
    # AWS access key id.
    (("akia",), re.compile(r"AKIA(?<![A-Za-z0-9_]AKIA)[0-9A-Z]{16}(?![A-Za-z0-9_])")),
    # GitHub tokens.
    (("gh",), re.compile(r"gh(?<![A-Za-z0-9_]gh)[pousr]_[A-Za-z0-9]{20,}+(?![A-Za-z0-9_])")),
    # Slack tokens.
    (("xox",), re.compile(r"xox(?<![A-Za-z0-9_]xox)[abprs]-[A-Za-z0-9\-]{10,}")),
    # Google API keys.
    (("aiza",), re.compile(r"AIza(?<![A-Za-z0-9_]AIza)[0-9A-Za-z_\-]{30,}")),
    # Hugging Face tokens.
    (("hf_",), re.compile(r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{20,}+(?![A-Za-z0-9_])")),
    # JWT: three base64url segments. A JWT starts where a run of segment
    # characters starts (so not after "-"): otherwise "eyJ-eyJ-eyJ-..." would
    # rescan the rest of the run from every "eyJ".
    (
        ("eyj",),
        re.compile(
            r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{5,}+\.eyJ[A-Za-z0-9_\-]{5,}+\.[A-Za-z0-9_\-]+"
        ),
    ),
    # key=value / "key": "value" where the key names a secret, any case.
    (
        ("key", "secret", "pass", "token", "auth"),
        re.compile(
            r"""(?x)
            [AaSsPp](?<![A-Za-z0-9_][AaSsPp])     # a key name starts here
            (?=[PpCcUuEeAa])                       # cheap check before the names
            (?i:
                (?<=a)(?:pi[_-]?key|ccess[_-]?token|uth[_-]?token|uthorization)
                | (?<=s)ecret
                | (?<=p)ass(?:word|wd)
            )
            (["']?\s*+[:=]\s*+["']?)               # group 1: kept, with the key
            (?:(?i:basic|token|bearer|digest|apikey)\s++)?  # an Authorization scheme
            [^\s"',;]{6,}
            """
        ),
    ),
)


def _mask_value(match: re.Match[str]) -> str:
    # Keep "api_key: " so the text still reads; mask only the value.
    return match.string[match.start(0) : match.end(1)] + SECRET_MARK


def redact_secrets(text: str) -> str:
    """Mask API keys, bearer tokens, JWTs and ``key=value`` secrets in ``text``."""
    lowered = text.lower()
    for triggers, pattern in _SECRET_PATTERNS:
        if any(t in lowered for t in triggers):
            text = pattern.sub(_mask_value if pattern.groups else SECRET_MARK, text)
    return text


_DIGITS = "0123456789"


def _digit_count(text: str) -> int:
    return sum(map(text.count, _DIGITS))


# Local part of at most 64 characters, then labels of at most 63, a top-level
# domain of letters. Labels cannot contain ".", so the label loop never rescans.
_EMAIL = re.compile(
    r"""(?x)
    [A-Za-z0-9._%+\-](?<![A-Za-z0-9._%+\-][A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{0,63}+
    @[A-Za-z0-9\-]{1,63}+(?:\.[A-Za-z0-9\-]{1,63}+){0,16}
    \.[A-Za-z]{2,63}+(?![A-Za-z0-9_])
    """
)


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
        digits = _digit_count(match.group(0))
        return "[redacted:phone]" if 9 <= digits <= 15 else match.group(0)

    return _PHONE.sub(replace, text) if _digit_count(text) >= 9 else text


# Card numbers as they are written: 13 to 19 digits in one run, four groups
# of four (a 19-digit number has a fifth group of three), or 4-6-5 / 4-6-4.
# Fixed-length digit runs keep the cost per candidate low on digit-heavy text.
_CARD_CANDIDATE = re.compile(
    r"""(?x)
    \d(?<!\d\d)
    (?: \d{12,18}
      | \d{3}([ \-])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?
      | \d{3}([ \-])\d{6}\2\d{4,5}
    )(?!\d)
    """
)
_CARD_SEPARATORS = str.maketrans("", "", " -")
# Luhn's doubled digit, digit sum taken: "0".."9" -> 0, 2, 4, 6, 8, 1, 3, 5, 7, 9.
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(digits: str) -> bool:
    values = [ord(c) - 48 for c in reversed(digits)]
    total = sum(values[0::2]) + sum(_LUHN_DOUBLED[n] for n in values[1::2])
    return total % 10 == 0


def redact_card(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        candidate = match.group(0)
        return "[redacted:card]" if luhn_ok(candidate.translate(_CARD_SEPARATORS)) else candidate

    return _CARD_CANDIDATE.sub(replace, text) if _digit_count(text) >= 13 else text


# Cards run before phones so a card number is labelled as a card.
BUILTIN_REDACTORS: Mapping[str, Redactor] = {
    "card": redact_card,
    "email": redact_email,
    "phone": redact_phone,
}


# -- bounded pieces -------------------------------------------------------------

PIECE_CHARS = 64 * 1024
"""The most text redacted in one step: long texts are cut into pieces this long at most."""

# Where a text may be cut so that no pattern's match spans the cut. Only these
# matches contain whitespace: "Bearer <token>", "key: value", "Token <value>",
# and digit groups of phones and cards. So a cut is safe after "," or ";"
# (no pattern consumes them) or after a run of whitespace unless the run
# follows a digit, ")", ":", "=" or an Authorization scheme, or precedes ":"
# or "=". The lookarounds treat a piece's edge like the whitespace it replaces.
_SAFE_CUT = re.compile(
    r"""(?x)
    [,;]
    | (?<![:=\d)\s])
      (?i:(?<!bearer)(?<!basic)(?<!token)(?<!digest)(?<!apikey))
      \s++(?![:=])
    """
)
# Cuts are looked for backwards from the limit, in windows growing this much.
_CUT_WINDOW = 1024


def pieces(text: str, limit: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in consecutive pieces of at most ``limit`` characters, cut where no match spans.

    Redacting each piece gives the same text as redacting the whole, except
    where a stretch of half a piece holds no safe cut (hostile text, or one
    enormous token): there the cut falls at the limit.
    """
    start, end = 0, len(text)
    while end - start > limit:
        cut = _last_safe_cut(text, start + limit // 2, start + limit)
        yield text[start:cut]
        start = cut
    yield text[start:]


def _last_safe_cut(text: str, low: int, high: int) -> int:
    window = _CUT_WINDOW
    right = high
    while right > low:
        left = max(low, right - window)
        cut = -1
        for match in _SAFE_CUT.finditer(text, left, right):
            # At the window's right edge the text goes on: a match there may be cut short.
            if match.end() < right:
                cut = match.end()
        if cut > 0:
            return cut
        right = left
        window *= 4
    return high
