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

# Each pattern comes with substrings one of which any match contains (lower
# case for the patterns that ignore case): checking those first skips the regex
# scan for ordinary text, which is most text, and most log fields.
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
    (("AKIA",), re.compile(r"AKIA(?<![A-Za-z0-9_]AKIA)[0-9A-Z]{16}(?![A-Za-z0-9_])")),
    # GitHub tokens.
    (("gh",), re.compile(r"gh(?<![A-Za-z0-9_]gh)[pousr]_[A-Za-z0-9]{20,}+(?![A-Za-z0-9_])")),
    # Slack tokens.
    (("xox",), re.compile(r"xox(?<![A-Za-z0-9_]xox)[abprs]-[A-Za-z0-9\-]{10,}")),
    # Google API keys.
    (("AIza",), re.compile(r"AIza(?<![A-Za-z0-9_]AIza)[0-9A-Za-z_\-]{30,}")),
    # Hugging Face tokens.
    (("hf_",), re.compile(r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{20,}+(?![A-Za-z0-9_])")),
    # JWT: three base64url segments. A JWT starts where a run of segment
    # characters starts (so not after "-"): otherwise "eyJ-eyJ-eyJ-..." would
    # rescan the rest of the run from every "eyJ".
    (
        ("eyJ",),
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


_ANY_CASE = frozenset({"bearer", "key", "secret", "pass", "token", "auth"})


def redact_secrets(text: str) -> str:
    """Mask API keys, bearer tokens, JWTs and ``key=value`` secrets in ``text``."""
    lowered = text.lower()
    for triggers, pattern in _SECRET_PATTERNS:
        if any(t in (lowered if t in _ANY_CASE else text) for t in triggers):
            text = pattern.sub(_mask_value if pattern.groups else SECRET_MARK, text)
            lowered = text.lower()
    return text


# Phone and card patterns read ASCII digits and separators only (re.ASCII).
_NOT_DIGITS = str.maketrans("", "", " \t\n\r\f\v.-()+")


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
    r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{1,4}\)[\s.\-]?)?\d(?:[\s.\-]?\d){4,14}(?!\w)",
    re.ASCII,
)


def redact_phone(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        return "[redacted:phone]" if 9 <= len(found.translate(_NOT_DIGITS)) <= 15 else found

    return _PHONE.sub(replace, text)


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
    """,
    re.ASCII,
)
# Luhn's doubled digit with its digits summed, as a digit: "0".."9" -> 0 2 4 6 8 1 3 5 7 9.
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_ok(digits: str) -> bool:
    """Luhn's check on ASCII digits; the digit sums are byte sums, done in C."""
    if not digits.isascii() or not digits.isdigit():
        return False
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_LUHN_DOUBLED)
    total = sum(kept.encode()) + sum(doubled.encode()) - 48 * len(digits)
    return total % 10 == 0


def redact_card(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        candidate = match.group(0)
        return "[redacted:card]" if luhn_ok(candidate.translate(_NOT_DIGITS)) else candidate

    return _CARD_CANDIDATE.sub(replace, text)


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
# (no pattern consumes them) or after a run of whitespace, unless the run
# follows a digit, ")", ":", "=" or an Authorization scheme, or precedes ":"
# or "=". At a piece's edge the lookarounds of every pattern then see what
# they would see at that whitespace or separator.
_CUT_CANDIDATE = re.compile(r"[\s,;](?![\s])")  # a separator, or the last of a whitespace run
_UNSAFE_BEFORE_SPACE = re.compile(r"(?i)(?:[:=)0-9]|bearer|basic|token|digest|apikey)\Z")
# Cuts are looked for backwards from the limit, in windows this long, and at
# most this many candidates are weighed before the cut falls at the limit.
_CUT_WINDOW = 1024
_CUT_TRIES = 64
_LONGEST_RUN = 64  # a longer whitespace run is not weighed (only hostile text has one)


def pieces(text: str, limit: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in consecutive pieces of at most ``limit`` characters, cut where no match spans.

    Redacting each piece gives the same text as redacting the whole, except
    where no safe cut is found near the limit (hostile text, or one enormous
    token): there the cut falls at the limit.
    """
    start, end = 0, len(text)
    while end - start > limit:
        cut = _last_safe_cut(text, start + limit // 2, start + limit)
        yield text[start:cut]
        start = cut
    yield text[start:]


def _last_safe_cut(text: str, low: int, high: int) -> int:
    tries = _CUT_TRIES
    right = high
    while right > low and tries > 0:
        left = max(low, right - _CUT_WINDOW)
        # The window ends before ``high`` so each candidate's lookahead sees real text.
        for match in reversed(list(_CUT_CANDIDATE.finditer(text, left, right - 1))):
            tries -= 1
            if _safe_cut(text, match.start()):
                return match.end()
            if tries == 0:
                break
        right = left
    return high


def _safe_cut(text: str, last: int) -> bool:
    """Whether cutting after ``text[last]``, a separator or a whitespace run's end, is safe."""
    if text[last] in ",;":
        return True
    start = last
    while start > 0 and text[start - 1].isspace():
        start -= 1
        if last - start > _LONGEST_RUN:
            return False
    after = text[last + 1 : last + 2]
    if after.isspace():  # the run goes on past the window that found it
        return False
    return after not in (":", "=") and not _UNSAFE_BEFORE_SPACE.search(
        text, max(0, start - 6), start
    )
