"""structlog set-up: JSON lines when not on a terminal, with secrets scrubbed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

from understudy.settings import LogFormat

# Anything that looks like a bearer token or an API key is masked in every field.
_SECRET_PATTERN = re.compile(r"(?i)\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}|bearer\s+\S+")
_SECRET_KEYS = frozenset({"authorization", "api_key", "api-key", "x-api-key", "password", "token"})


def scrub_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif type(value) is str and ("-" in value or " " in value):
            # Keys contain a dash and bearer tokens a space: skip the regex otherwise.
            event_dict[key] = _SECRET_PATTERN.sub("[redacted]", value)
    return event_dict


def configure_logging(
    level: str = "info",
    fmt: LogFormat = LogFormat.AUTO,
    stream: TextIO | None = None,
    *,
    cache: bool = True,
) -> None:
    """Route structlog to ``stream`` (stderr by default); JSON unless it is a terminal.

    ``cache=False`` lets a later call reconfigure loggers already used (tests do that).
    """
    stream = stream or sys.stderr
    use_json = fmt is LogFormat.JSON or (fmt is LogFormat.AUTO and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_secrets,
    ]
    factory: Any
    if use_json:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:  # orjson's bytes straight to the binary stream: the fast path
            processors = [*shared, structlog.processors.JSONRenderer(serializer=orjson.dumps)]
            factory = structlog.BytesLoggerFactory(file=buffer)
        else:  # an in-memory text stream
            processors = [*shared, structlog.processors.JSONRenderer(serializer=_orjson_text)]
            factory = structlog.WriteLoggerFactory(file=stream)
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=stream.isatty())]
        factory = structlog.WriteLoggerFactory(file=stream)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )


def _orjson_text(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj).decode()
