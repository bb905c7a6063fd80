"""Who a request is for: the unit of sticky assignment."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

SUBJECT_HEADER = "x-understudy-subject"


def subject_of(body: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """The request's ``user``, else the subject header, else a hash of the client's key."""
    user = body.get("user")
    if isinstance(user, str) and user:
        return f"user:{user}"
    header = headers.get(SUBJECT_HEADER)
    if header:
        return f"subject:{header}"
    auth = headers.get("Authorization")
    if auth:
        # Never keep the key itself, only a digest of it.
        return "key:" + hashlib.sha256(_utf8(auth)).hexdigest()[:32]
    return "anonymous"


def subject_hash(subject: str) -> str:
    """What is stored: a digest, so raw user ids and keys never reach the database."""
    return hashlib.sha256(_utf8(subject)).hexdigest()[:16]


def _utf8(text: str) -> bytes:
    """UTF-8 for any str, lone surrogates included, so hashing never raises.

    Valid text encodes exactly as ``str.encode()`` would, so digests are unchanged.
    """
    return text.encode("utf-8", "surrogatepass")
