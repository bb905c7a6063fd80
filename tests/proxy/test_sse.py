"""The SSE splitter: events timed by the chunk that completed them, any line ending."""

from __future__ import annotations

import pytest

from proxy.sse import data_events

STREAM = b'data: {"a": 1}\n\ndata: {"b": 2}\n\n: a comment\n\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_events_are_the_same_however_the_stream_is_cut(newline: bytes, size: int) -> None:
    body = STREAM.replace(b"\n", newline)
    chunks = [(float(i), body[i : i + size]) for i in range(0, len(body), size)]
    events = list(data_events(chunks))
    assert [data for _, data in events] == [
        b'{"a": 1}',
        b'{"b": 2}',
        b"line one\nline two",
        b"[DONE]",
    ]
    # Each event is timed by the chunk that holds the last byte of its blank line.
    first_end = body.index(b"}" + newline * 2) + 1 + 2 * len(newline) - 1
    assert events[0][0] == first_end // size * size
    times = [at for at, _ in events]
    assert times == sorted(times)


def test_incomplete_last_event_is_not_yielded() -> None:
    assert list(data_events([(0.0, b'data: {"a": 1}\n\ndata: {"partial"')])) == [(0.0, b'{"a": 1}')]
