"""Text normalisation shared by the token-level metrics (SQuAD-style)."""

from __future__ import annotations

import re
import string
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    """Lower-case, drop punctuation and English articles, collapse whitespace."""
    folded = unicodedata.normalize("NFKC", text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", folded).split())


def tokens(text: str) -> list[str]:
    return normalise(text).split()
