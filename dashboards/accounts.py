"""Secrets of accounts: argon2id password hashes and one-time invite tokens.

Only hashes are stored: an invite as its sha256 (it is long and random, so a fast hash
suffices), a password as argon2id (people choose guessable ones).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # hashing has a cost; a megabyte password is an attack

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the name is unknown, so the time taken does not tell names apart.
_DECOY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def new_token() -> str:
    """A random token for an invite link or a session cookie (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"Use at least {MIN_PASSWORD_CHARS} characters."
    if len(password) > MAX_PASSWORD_CHARS:
        return f"Use at most {MAX_PASSWORD_CHARS} characters."
    return None


async def hash_password(password: str) -> str:
    # Off the event loop: argon2id takes tens of milliseconds by design.
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(stored: str | None, given: str) -> bool:
    """Whether ``given`` is the password of ``stored`` (None: an unknown name, still timed)."""
    if len(given) > MAX_PASSWORD_CHARS:
        return False

    def check() -> bool:
        try:
            return _hasher.verify(stored or _DECOY_HASH, given) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


REVIEWER_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
