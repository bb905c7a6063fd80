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

# What a value never is: the key of the next secret ("password:" after an empty
# "api_key:"). Taken as a value and masked, it would leave that secret no key.
_NOT_A_SECRET_KEY = (
    r"""(?!(?i:api[_-]?key|access[_-]?token|auth[_-]?token|authorization|secret|pass(?:word|wd))"""
    r"""["']?\s*+[:=])"""
)

# Each pattern comes with substrings one of which any match contains (lower
# case for the patterns that ignore case): checking those first skips the regex
# scan for ordinary text, which is most text, and most log fields.
_SECRET_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # "Bearer <token>" in any header-ish text, any case. A doubled scheme
    # ("Bearer Bearer <token>") is no token: the second one starts the match.
    (
        ("bearer",),
        re.compile(
            r"[Bb](?<![A-Za-z0-9_][Bb])[Ee][Aa][Rr][Ee][Rr]\s++"
            r"(?![Bb][Ee][Aa][Rr][Ee][Rr]\s)" + _NOT_A_SECRET_KEY + r"[A-Za-z0-9._~+/=\-]{6,}"
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
            (?!\[redacted:)                        # a value masked already
            """
            + _NOT_A_SECRET_KEY  # no value here: the next secret's key
            + r"""[^\s"',;]{6,}"""
        ),
    ),
)


def _mask_value(match: re.Match[str]) -> str:
    # Keep "api_key: " so the text still reads; mask only the value.
    return match.string[match.start(0) : match.end(1)] + SECRET_MARK


_ANY_CASE = frozenset({"bearer", "key", "secret", "pass", "token", "auth"})
# Every trigger at once, in one scan each: most text has none, and is then done.
_ANY_TRIGGER_EXACT = re.compile(
    "|".join(
        re.escape(t) for triggers, _ in _SECRET_PATTERNS for t in triggers if t not in _ANY_CASE
    )
)
_ANY_TRIGGER_LOWERED = re.compile("|".join(re.escape(t) for t in sorted(_ANY_CASE)))


def redact_secrets(text: str) -> str:
    """Mask API keys, bearer tokens, JWTs and ``key=value`` secrets in ``text``."""
    # Lowered once: a mask never adds a trigger that a later pattern's match
    # would need, so the triggers of the text as it came are enough.
    lowered = text.lower()
    if _ANY_TRIGGER_EXACT.search(text) is None and _ANY_TRIGGER_LOWERED.search(lowered) is None:
        return text
    for triggers, pattern in _SECRET_PATTERNS:
        if any(t in (lowered if t in _ANY_CASE else text) for t in triggers):
            text = pattern.sub(_mask_value if pattern.groups else SECRET_MARK, text)
    return text


# Local part of at most 64 characters, then labels of at most 63, a top-level
# domain of letters. Labels cannot contain ".", so the label loop never rescans.
_LOCAL_CHARS = 64
_AT_DOMAIN = r"""
    @[A-Za-z0-9\-]{1,63}+(?:\.[A-Za-z0-9\-]{1,63}+){0,16}
    \.[A-Za-z]{2,63}+(?![A-Za-z0-9_])
"""
_EMAIL = re.compile(
    r"(?x)[A-Za-z0-9._%+\-](?<![A-Za-z0-9._%+\-][A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{0,63}+"
    + _AT_DOMAIN
)
# What follows the "@" of an address. It starts with a literal, which the regex
# engine finds in C; the full pattern instead tries every letter and digit.
_DOMAIN = re.compile("(?x)" + _AT_DOMAIN)
# With fewer domains than one per this many characters, only the 64 characters
# before each are searched for an address; with more, all of the text is.
_CHARS_PER_DOMAIN = 256
EMAIL_MARK = "[redacted:email]"


def redact_email(text: str) -> str:
    if "@" not in text:
        return text
    domains: list[re.Match[str]] = []
    most = len(text) // _CHARS_PER_DOMAIN + 1
    for domain in _DOMAIN.finditer(text):
        domains.append(domain)
        if len(domains) > most:
            return _EMAIL.sub(EMAIL_MARK, text)
    out: list[str] = []
    done = 0  # what is before this is in ``out``
    for domain in domains:
        # The lookbehind sees the text before the window; the window ends where the
        # domain did, which passed its lookahead on the whole text.
        found = _EMAIL.search(text, max(done, domain.start() - _LOCAL_CHARS), domain.end())
        if found is not None:
            out += (text[done : found.start()], EMAIL_MARK)
            done = found.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


# Phone and card patterns read ASCII digits and separators only (re.ASCII).
#
# An optional +country code and (area code), then digits in groups split by
# space, dot or dash: 9 to 15 digits in all. Plain digit runs of that length
# count too: false positives on long numbers are why this pattern is opt-in.
# The digit count is part of the pattern, one branch per length of the country
# and area codes, so no Python runs per candidate; a cheap lookahead turns a
# "+" or "(" away before the branches are tried.
_SEP = r"[\s.\-]?"


def _then_main_digits(codes: list[tuple[str, int]]) -> str:
    """One branch per ``(codes pattern, digits in it)``, each then followed by 5 or more
    digits so that the number holds 9 to 15 in all."""
    main = r"\d(?:{sep}\d){{{low},{high}}}"
    return "|".join(
        code + main.format(sep=_SEP, low=max(5, 9 - n) - 1, high=15 - n - 1) for code, n in codes
    )


_AFTER_PLUS = _then_main_digits(
    [
        (rf"\d{{{c}}}{_SEP}" + (rf"\(\d{{{a}}}\){_SEP}" if a else ""), c + a)
        for c in (1, 2, 3)
        for a in (0, 1, 2, 3, 4)
    ]
)
_AFTER_PAREN = _then_main_digits([(rf"\d{{{a}}}\){_SEP}", a) for a in (1, 2, 3, 4)])
_PHONE = re.compile(
    rf"""(?x)
    [+(\d](?<![\w+][+(\d])
    (?: (?<=\+) (?=\d{{1,3}}{_SEP}(?:\(\d{{1,4}}\){_SEP})?\d(?:{_SEP}\d){{4}}) (?:{_AFTER_PLUS})
      | (?<=\() (?=\d{{1,4}}\){_SEP}\d(?:{_SEP}\d){{4}}) (?:{_AFTER_PAREN})
      | (?<=\d) (?:{_SEP}\d){{8,14}}
    )(?!\w)
    """,
    re.ASCII,
)


def redact_phone(text: str) -> str:
    return _PHONE.sub("[redacted:phone]", text)


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
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_ok(digits: str) -> bool:
    """Luhn's check on ASCII digits."""
    return digits.isascii() and digits.isdigit() and _luhn_bytes_ok(digits.encode())


def _luhn_bytes_ok(digits: bytes) -> bool:
    # Sums of bytes and a byte translation: done in C, which matters on digit-heavy text.
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(kept) + sum(doubled) - 48 * len(digits)) % 10 == 0


def redact_card(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        candidate = match.group(0)  # ASCII digits, spaces and dashes (re.ASCII)
        return (
            "[redacted:card]"
            if _luhn_bytes_ok(candidate.encode().translate(None, b" -"))
            else candidate
        )

    return _CARD_CANDIDATE.sub(replace, text)


# Cards run before phones so a card number is labelled as a card.
BUILTIN_REDACTORS: Mapping[str, Redactor] = {
    "card": redact_card,
    "email": redact_email,
    "phone": redact_phone,
}


# -- bounded pieces -------------------------------------------------------------

# 16 K: one piece of the costliest text takes about 2 ms to redact, the writer's slice.
PIECE_CHARS = 16 * 1024
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
