"""Finding the id of the response an arm made, in its body or in its stream's first event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from proxy.capture import Capture
from proxy.sse import data_events

# The first event of a stream carries the id; past this much, no id is coming.
MAX_SCAN_BYTES = 256 * 1024


def id_in_object(value: Any) -> str | None:
    rid = value.get("id") if isinstance(value, Mapping) else None
    return rid if isinstance(rid, str) and rid else None


def id_in_event(data: bytes) -> str | None:
    """The response id of a ``response.*`` event carrying the Response object."""
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return id_in_object(event.get("response")) if isinstance(event, Mapping) else None


def id_in_body(body: bytes) -> str | None:
    try:
        return id_in_object(json.loads(body))
    except (ValueError, RecursionError):
        return None


def id_in_capture(capture: Capture, stream: bool) -> str | None:
    """The id of a finished arm's response; None when it failed or never said."""
    if capture.status is None or capture.status >= 400 or not capture.chunks:
        return None
    if not stream:
        return id_in_body(capture.body())
    for _, data in data_events(capture.chunks):
        if (rid := id_in_event(data)) is not None:
            return rid
    return None


class StreamScan:
    """Fed a stream's chunks as they pass, it finds the response id in the first events."""

    def __init__(self) -> None:
        self._buffer = b""
        self.done = False

    def feed(self, chunk: bytes) -> str | None:
        if self.done:
            return None
        self._buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n\n", 1)
            for line in raw.split(b"\n"):
                if line.startswith(b"data:") and (rid := id_in_event(line[5:])) is not None:
                    self.done = True
                    return rid
        self.done = len(self._buffer) > MAX_SCAN_BYTES
        return None
