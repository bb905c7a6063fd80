"""structlog set-up: JSON lines when not on a terminal, with secrets scrubbed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from understudy.settings import LogFormat

# Anything that looks like a bearer token or an API key is masked in every field.
_SECRET_PATTERN = re.compile(r"(?i)(bearer\s+)?\b(sk|pk|rk)-[A-Za-z0-9_\-]{8,}|bearer\s+\S+")
_SECRET_KEYS = frozenset({"authorization", "api_key", "api-key", "x-api-key", "password", "token"})


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_PATTERN.sub("[redacted]", value)
    return value


def scrub_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(
    level: str = "info", fmt: LogFormat = LogFormat.AUTO, stream: TextIO | None = None
) -> None:
    """Route structlog to ``stream`` (stderr by default); JSON unless it is a terminal."""
    stream = stream or sys.stderr
    use_json = fmt is LogFormat.JSON or (fmt is LogFormat.AUTO and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
