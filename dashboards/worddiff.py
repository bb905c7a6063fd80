"""Two answers marked word by word: words only the first has in <del>, only the second in <ins>.

Words are runs of non-space characters; the space after each is kept as written, so
each side reads as its answer did. Every character is escaped before any mark is added.
``difflib.SequenceMatcher`` takes time up to the product of the two word counts (an
answer repeating one word reaches it), so past ``MAX_WORD_PAIRS`` the answers are
shown unmarked and the diff says so; the common start and end are set aside first, so
two long answers that differ in one place are still marked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from markupsafe import Markup, escape

MAX_WORD_PAIRS = 1_000_000  # about a thousand words a side still differing

_WORD = re.compile(r"(\S+)(\s*)")


@dataclass(frozen=True, slots=True)
class WordDiff:
    old: Markup  # the first answer, its words missing from the second in <del>
    new: Markup  # the second answer, its words missing from the first in <ins>
    marked: bool  # False: too long to compare, shown unmarked
    old_words: int
    new_words: int


def _split(text: str) -> tuple[str, list[str], list[str]]:
    """Leading space, then the words and the space after each."""
    stripped = text.lstrip()
    pieces = _WORD.findall(stripped)
    return text[: len(text) - len(stripped)], [w for w, _ in pieces], [s for _, s in pieces]


def _run(words: list[str], spaces: list[str], start: int, end: int, tag: str | None) -> Markup:
    """Words start..end with their spaces; the last one's space stays outside the mark."""
    if start == end:
        return Markup("")
    inner = "".join(w + s for w, s in zip(words[start:end], spaces[start:end], strict=True))
    trailing = spaces[end - 1]
    body = escape(inner[: len(inner) - len(trailing)] if trailing else inner)
    if tag is None:
        return body + escape(trailing)
    return Markup("<{0}>{1}</{0}>").format(tag, body) + escape(trailing)


def _common_ends(a: list[str], b: list[str]) -> tuple[int, int]:
    """Words equal at the start of both, then at the end of what is left."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head, tail


def word_diff(old: str, new: str, *, max_word_pairs: int = MAX_WORD_PAIRS) -> WordDiff:
    old_lead, a, a_space = _split(old)
    new_lead, b, b_space = _split(new)
    head, tail = _common_ends(a, b)
    middle_a, middle_b = a[head : len(a) - tail], b[head : len(b) - tail]
    if len(middle_a) * len(middle_b) > max_word_pairs:
        return WordDiff(escape(old), escape(new), False, len(a), len(b))
    opcodes = SequenceMatcher(None, middle_a, middle_b, autojunk=False).get_opcodes()
    left = [escape(old_lead), _run(a, a_space, 0, head, None)]
    right = [escape(new_lead), _run(b, b_space, 0, head, None)]
    for op, i1, i2, j1, j2 in opcodes:
        changed = op != "equal"
        left.append(_run(a, a_space, head + i1, head + i2, "del" if changed else None))
        right.append(_run(b, b_space, head + j1, head + j2, "ins" if changed else None))
    left.append(_run(a, a_space, len(a) - tail, len(a), None))
    right.append(_run(b, b_space, len(b) - tail, len(b), None))
    return WordDiff(Markup("").join(left), Markup("").join(right), True, len(a), len(b))
