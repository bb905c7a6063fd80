"""Error classes shared across layers."""

from __future__ import annotations

from core.exchange import ErrorKind


class UnderstudyError(Exception):
    """Base class for errors raised by Understudy itself."""


class ConfigError(UnderstudyError):
    """A setting has a value Understudy cannot run with."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class UpstreamError(UnderstudyError):
    """An upstream call failed before a usable response arrived.

    ``kind`` is the closed set of failure classes recorded on Observations.
    ``status`` is set when the upstream answered with an HTTP error.
    """

    def __init__(self, kind: ErrorKind, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
