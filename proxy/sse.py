"""Split a timed byte stream into Server-Sent Events' data payloads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DONE = b"[DONE]"


def data_events(chunks: Iterable[tuple[float, bytes]]) -> Iterator[tuple[float, bytes]]:
    """Yield ``(time, data)`` for each complete event, timed by the chunk that completed it.

    Multi-line ``data:`` fields are joined with newlines, as the SSE spec says.
    An event left incomplete at the end of the stream is not yielded.
    """
    chunks = list(chunks)
    if not any(b"\r" in chunk for _, chunk in chunks):
        yield from _lf_events(chunks)  # what OpenAI-compatible servers send: one split per chunk
        return
    buffer = b""
    for at, chunk in chunks:
        buffer += chunk
        while True:
            cut = _event_end(buffer)
            if cut is None:
                break
            end, sep_len = cut
            raw, buffer = buffer[:end], buffer[end + sep_len :]
            data = _data_of(raw)
            if data is not None:
                yield at, data


def _lf_events(chunks: list[tuple[float, bytes]]) -> Iterator[tuple[float, bytes]]:
    buffer = b""
    for at, chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        if b"\n\n" not in buffer:
            continue
        *complete, buffer = buffer.split(b"\n\n")
        for raw in complete:
            data = _data_of(raw)
            if data is not None:
                yield at, data


def _event_end(buffer: bytes) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for sep in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        i = buffer.find(sep)
        if i != -1 and (best is None or i < best[0]):
            best = (i, len(sep))
    return best


def _data_of(raw: bytes) -> bytes | None:
    if raw.startswith(b"data:") and b"\n" not in raw and b"\r" not in raw:
        # One line, one field: what a server sends for nearly every event.
        return raw[6:] if raw.startswith(b" ", 5) else raw[5:]
    parts = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts) if parts else None
