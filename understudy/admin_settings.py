"""The admin API's tokens: who may change the rollout, and the name the audit log gives them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import SecretStr

SINGLE_ADMIN = "admin"  # the audit log's actor for UNDERSTUDY_ADMIN_TOKEN
ADMIN_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_ADMIN_TOKEN_CHARS = 16  # shorter is guessable; a generated token is far longer


def admin_tokens_by_name(
    single: SecretStr | None, named: Mapping[str, SecretStr]
) -> dict[str, str]:
    """Every admin token by its holder's name; raises ValueError naming what is wrong.

    The message never quotes a token.
    """
    tokens = {name: token.get_secret_value() for name, token in named.items()}
    if single is not None:
        if SINGLE_ADMIN in tokens:
            raise ValueError(
                f"admin_tokens may not name {SINGLE_ADMIN!r}: that is admin_token's holder"
            )
        tokens[SINGLE_ADMIN] = single.get_secret_value()
    for name, token in tokens.items():
        if not ADMIN_NAME.fullmatch(name):
            raise ValueError(f"admin token name {name!r}: use 1-64 letters, digits, . _ @ -")
        if len(token) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(
                f"the admin token of {name!r} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters"
            )
    if len(set(tokens.values())) != len(tokens):
        raise ValueError("two admin tokens are equal: the audit log could not tell who acted")
    return tokens
