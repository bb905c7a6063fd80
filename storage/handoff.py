"""The hand-off between proxy and recorder: length-prefixed frames over a local stream socket.

A frame is its kind (1 byte), its payload's length (4 bytes, big-endian) and the payload.

proxy to recorder:
  EXCHANGE  a sequence number (8 bytes) and the exchange as one spill line (storage.codec)
  REPLAY    no payload: the proxy spilled exchanges; replay the spill folder
  METRICS   no payload: answer with your metrics
recorder to proxy:
  SETTLED   sequence numbers (8 bytes each) whose exchanges are now committed, spilled,
            rejected or counted as dropped: the proxy may forget them
  METRICS   the recorder's metrics in Prometheus' text format
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable

EXCHANGE = b"E"
REPLAY = b"R"
METRICS = b"M"
SETTLED = b"S"

_HEADER = struct.Struct(">cI")
_SEQ = struct.Struct(">Q")
MAX_PAYLOAD = 256 * 1024 * 1024  # a request body is capped far below this


class BadFrame(ValueError):
    """The other side sent something that is not a frame: drop the connection."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def exchange_frame(seq: int, line: bytes) -> bytes:
    return _HEADER.pack(EXCHANGE, _SEQ.size + len(line)) + _SEQ.pack(seq) + line


def settled_frame(seqs: Iterable[int]) -> bytes:
    return frame(SETTLED, b"".join(_SEQ.pack(s) for s in seqs))


def split_exchange(payload: bytes) -> tuple[int, bytes]:
    """An EXCHANGE payload's sequence number and line."""
    if len(payload) < _SEQ.size:
        raise BadFrame("exchange frame without a sequence number")
    return _SEQ.unpack_from(payload)[0], payload[_SEQ.size :]


def settled_seqs(payload: bytes) -> list[int]:
    if len(payload) % _SEQ.size:
        raise BadFrame("settled frame of a torn length")
    return [s for (s,) in _SEQ.iter_unpack(payload)]


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The next frame's kind and payload; IncompleteReadError at the end of the stream."""
    kind, length = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if length > MAX_PAYLOAD:
        raise BadFrame(f"frame of {length} bytes")
    return kind, await reader.readexactly(length)
