"""Admin token settings: usable tokens only, refused without quoting any token."""

from __future__ import annotations

import pytest

from core import ConfigError
from understudy.settings import load_settings

GOOD = "a-long-enough-token-0001"


def test_named_and_single_tokens_by_holder() -> None:
    settings = load_settings(admin_token=GOOD, admin_tokens={"bob": GOOD[:-1] + "2"})
    assert settings.admin_token_names() == {"bob": GOOD[:-1] + "2", "admin": GOOD}
    assert load_settings().admin_token_names() == {}  # none: the admin API is off


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"admin_token": "short-secret"}, "shorter than 16"),
        ({"admin_tokens": {"bob": "tiny-bob-secret"}}, "shorter than 16"),
        ({"admin_tokens": {"bob": GOOD, "eve": GOOD}}, "two admin tokens are equal"),
        ({"admin_token": GOOD, "admin_tokens": {"admin": GOOD + "x"}}, "may not name 'admin'"),
        ({"admin_tokens": {"no spaces": GOOD}}, "admin token name"),
        ({"admin_port": 70000}, "less than or equal to 65535"),
        ({"breaker": {"error_rate": 0}}, "greater than 0"),
        ({"breaker": {"consecutive_failures": 0}}, "greater than or equal to 1"),
    ],
)
def test_unusable_settings_are_refused(values: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(**values)
    assert says in str(refused.value)
    for secret in ("short-secret", "tiny-bob-secret", GOOD):
        assert secret not in str(refused.value)
