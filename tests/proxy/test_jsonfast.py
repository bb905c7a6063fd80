"""The hot path's JSON parser reads every body exactly as the standard library does."""

from __future__ import annotations

import json
import math

import pytest

from proxy import jsonfast

# What orjson reads itself, and what only json reads: each must come out the same.
BODIES = [
    b'{"choices": [{"index": 0, "delta": {"content": "h\\u00e9llo"}}], "usage": null}',
    b'{"a": 1, "a": 2}',  # a repeated key: the last one wins in both
    b"[0.1, 2.5e-3, -0, 1e308]",
    b'{"big": 123456789012345678901234567890}',  # beyond 64 bits: exact, as json reads it
    b'{"edge": [18446744073709551615, -9223372036854775808, -9223372036854775809]}',
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark: json skips it, orjson refuses it
    b'{"s": "\\ud800"}',  # an escaped lone surrogate: json only
    '{"utf16": "x"}'.encode("utf-16"),  # not UTF-8: json only
    '{"text": "already decoded"}',
]


@pytest.mark.parametrize("body", BODIES)
def test_reads_as_json_does(body: bytes | str) -> None:
    value, expected = jsonfast.loads(body), json.loads(body)
    assert value == expected
    assert repr(value) == repr(expected)  # the same types too: 1 is not 1.0


def test_non_finite_numbers_read_as_json_reads_them() -> None:
    value = jsonfast.loads(b"[NaN, Infinity, -Infinity, 1e400]")
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf, math.inf]


@pytest.mark.parametrize("body", [b"", b"{", b'{"a": 1} trailing', b"\xff"])
def test_refuses_what_json_refuses(body: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        jsonfast.loads(body)
