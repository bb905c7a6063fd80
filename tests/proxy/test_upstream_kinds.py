"""One list of upstream kinds: every kind settings accept has an adapter, and no other."""

from __future__ import annotations

import pytest

from core.upstream_kind import UpstreamKind
from proxy.config import UpstreamConfig
from proxy.upstreams import KINDS, build_upstream
from understudy.settings import CandidateSettings


def test_every_kind_has_exactly_one_adapter() -> None:
    assert set(KINDS) == set(UpstreamKind)


def test_settings_accept_the_kinds_and_nothing_else() -> None:
    for kind in UpstreamKind:
        parsed = CandidateSettings(name="c", base_url="http://127.0.0.1:1", kind=kind.value)
        assert parsed.kind is kind
    with pytest.raises(ValueError, match="kind"):
        CandidateSettings(name="c", base_url="http://127.0.0.1:1", kind="lmstudio")


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown upstream kind 'lmstudio'; known: "):
        build_upstream(UpstreamConfig(name="c", base_url="http://127.0.0.1:1", kind="lmstudio"))
