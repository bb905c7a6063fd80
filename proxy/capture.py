"""What an upstream call looked like on the wire: status, timed chunks, and how it ended.

Capturing is just appending; parsing happens after the client has its answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from core import ErrorKind
from proxy import jsonfast


@dataclass(slots=True, repr=False)
class Capture:
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    ended: float | None = None
    error: ErrorKind | None = None
    # Once the call has ended, its body joined and its JSON parsed are kept: the relay,
    # the candidate's check and the observer each need them, and each would redo them.
    _joined: bytes | None = None
    _document: Any = None

    def __repr__(self) -> str:
        # Sizes only: the chunks are an upstream's answer.
        return f"Capture(status={self.status}, chunks={len(self.chunks)}, error={self.error})"

    def add(self, chunk: bytes) -> None:
        self.chunks.append((time.perf_counter(), chunk))

    def finish(self, error: ErrorKind | None = None) -> None:
        if self.ended is None:
            self.ended = time.perf_counter()
        if error is not None and self.error is None:
            self.error = error

    @property
    def first_byte_ms(self) -> float | None:
        return (self.chunks[0][0] - self.started) * 1000 if self.chunks else None

    @property
    def latency_ms(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started) * 1000

    def body(self) -> bytes:
        if self._joined is not None:
            return self._joined
        joined = b"".join(chunk for _, chunk in self.chunks)
        if self.ended is not None:
            self._joined = joined
        return joined

    def document(self) -> Any:
        """The body parsed as JSON (ValueError if it is not), parsed once the call has ended."""
        if self._document is not None:
            return self._document
        parsed = jsonfast.loads(self.body())
        if self.ended is not None:
            self._document = parsed
        return parsed

    def keep_document(self, document: Any) -> None:
        """The body's JSON, already parsed by whoever read the whole body first."""
        self._document = document
