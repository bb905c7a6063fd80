"""One log stream: structlog and every stdlib logger (aiohttp, asyncio, alembic, sqlalchemy,
``warnings``) as one JSON object per line (or a console line on a terminal), all through the
storage layer's secret-masking policy, bounded in size, and never lost to a rendering error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
import itertools
import logging
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Protocol, TextIO

import orjson
import structlog

from storage.privacy import REDACTED, SECRET_FIELDS
from storage.redaction import redact_secrets
from understudy.settings import LogFormat

EventDict = MutableMapping[str, Any]
LineObserver = Callable[[str], None]

# A line's cost is bounded: long strings, deep nesting and big containers are cut, marked.
MAX_FIELD_CHARS = 4096
MAX_DEPTH = 6
MAX_ITEMS = 64
MAX_FRAMES = 30
MAX_CHAINED = 3

_INT_RANGE = range(-(2**63), 2**64)  # what orjson can write as a number
_UNRENDERABLE = '{"event":"log_line_unrenderable","level":"error"}'

# Libraries that log the data they carry (aiosqlite logs every statement's parameters,
# so stored prompts and answers, at debug): never below WARNING, whatever the level.
DATA_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy")

# The redaction every logged string goes through: storage's secret patterns, plus the
# configured upstream keys by value once serve or demo knows them.
_redact: Callable[[str], str] = redact_secrets
# Short strings (model names, statuses, event names) recur on every line: made safe once.
_MEMO_CHARS = 128
# Field names recur even more: each one's safe name, and whether it names a secret.
_KEYS: dict[str, tuple[str, bool]] = {}
_MAX_KEYS = 4096

# Tests watch every JSON line rendered in this process (see tests/conftest.py).
_json_line_observers: list[LineObserver] = []


def observe_json_lines(observer: LineObserver) -> Callable[[], None]:
    """Call ``observer`` with every JSON log line written from now on; returns an undo."""
    _json_line_observers.append(observer)
    return lambda: _json_line_observers.remove(observer)


# -- making values safe ------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """Whether a field of this name holds a credential (storage's list, shared)."""
    return key.lower().replace("-", "_") in SECRET_FIELDS


def safe_text(text: str) -> str:
    """Bounded, encodable and redacted: what any logged string becomes."""
    if len(text) <= _MEMO_CHARS:
        return _safe_short(text)
    if len(text) > MAX_FIELD_CHARS:
        text = f"{text[:MAX_FIELD_CHARS]}…[truncated {len(text) - MAX_FIELD_CHARS} chars]"
    return _redact(_encodable(text))


@functools.lru_cache(maxsize=4096)
def _safe_short(text: str) -> str:
    return _redact(_encodable(text))


def _encodable(text: str) -> str:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: UTF-8 (and orjson) cannot hold them
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _safe_key(key: str) -> tuple[str, bool]:
    """A field name made safe, and whether it names a credential; remembered."""
    known = _KEYS.get(key)
    if known is None:
        name = safe_text(key)
        known = (name, is_secret_key(name))
        if len(key) <= _MEMO_CHARS and len(_KEYS) < _MAX_KEYS:
            _KEYS[key] = known
    return known


def _printable(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__/__repr__ must not lose the line
        return f"<unprintable {type(value).__qualname__}>"


def safe_value(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON types, every string made safe, secret-named fields masked."""
    kind = type(value)
    if kind is str:
        return safe_text(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return value if value in _INT_RANGE else safe_text(_printable(value))
    if isinstance(value, Mapping):
        return _safe_mapping(value, depth) if depth < MAX_DEPTH else "[nested too deep]"
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= MAX_DEPTH:
            return "[nested too deep]"
        items = [safe_value(v, depth + 1) for v in itertools.islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            items.append(f"[{len(value) - MAX_ITEMS} more items]")
        return items
    if isinstance(value, enum.Enum):
        return safe_value(value.value, depth + 1)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, BaseException):
        return safe_text(f"{type(value).__qualname__}: {_printable(value)}")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, float):  # subclasses of the plain types
        return float(value)
    if isinstance(value, int):
        return safe_value(int(value), depth)
    return safe_text(_printable(value))


def _safe_mapping(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in itertools.islice(value.items(), MAX_ITEMS):
        name, secret = _safe_key(key if type(key) is str else _printable(key))
        kind = type(item)
        # safe_value's first cases inline: most fields of a line are these.
        if secret:
            out[name] = REDACTED
        elif kind is str:
            out[name] = safe_text(item)
        elif item is None or kind is bool or kind is float:
            out[name] = item
        else:
            out[name] = safe_value(item, depth + 1)
    if len(value) > MAX_ITEMS:
        out["[more]"] = f"[{len(value) - MAX_ITEMS} more items]"
    return out


def describe_exception(exc: BaseException) -> str:
    """Type, message and frames (innermost last), then the chain of causes; redacted."""
    lines: list[str] = []
    current: BaseException | None = exc
    for depth in range(MAX_CHAINED + 1):
        if current is None:
            break
        head = f"{type(current).__qualname__}: {_printable(current)}"
        lines.append(head if depth == 0 else f"caused by {head}")
        frames = list(traceback.walk_tb(current.__traceback__))[-MAX_FRAMES:]
        lines.extend(
            f'  File "{frame.f_code.co_filename}", line {lineno}, in {frame.f_code.co_name}'
            for frame, lineno in frames
        )
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    # The head comes first, so truncation keeps the type and the message.
    return safe_text("\n".join(lines))


def _exception_of(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        found = exc_info[1]
        return found if isinstance(found, BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


# -- processors --------------------------------------------------------------------


def add_logger_name(logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    name = record.name if isinstance(record, logging.LogRecord) else getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def exception_to_field(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """``exc_info`` becomes one ``exception`` string field, never a plain-text traceback."""
    exc = _exception_of(event_dict.pop("exc_info", None))
    if exc is not None:
        event_dict["exception"] = describe_exception(exc)
    return event_dict


def clean_asyncio_message(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """asyncio's default handler writes handle/future reprs (prompts, even): keep the head."""
    if event_dict.get("logger") == "asyncio":
        event_dict["event"] = loop_message_head(_printable(event_dict.get("event")))
    return event_dict


_LEADING_FIELDS = ("event", "level", "timestamp", "logger")


def make_safe(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Every field made safe (see ``safe_value``); the common fields first, for the reader."""
    meta = {k: event_dict.pop(k) for k in ("_record", "_from_structlog") if k in event_dict}
    ordered = {k: event_dict[k] for k in _LEADING_FIELDS if k in event_dict}
    ordered.update(event_dict)
    try:
        safe = _safe_mapping(ordered, 0)
    except Exception as exc:  # keep the line, say why its fields are gone
        safe = {"event": "log_fields_unrenderable", "error": type(exc).__qualname__}
    if meta:
        safe.update(meta)
    return safe


def drop_formatter_meta(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    return event_dict


def render_json(_logger: Any, _method: str, event_dict: EventDict) -> str:
    """orjson, never failing: a line that still cannot be written says so instead."""
    try:
        return orjson.dumps(event_dict, default=_printable).decode()
    except Exception as exc:
        return unrenderable_line(_printable(event_dict.get("event")), exc)


def unrenderable_line(event: str, exc: BaseException, logger: str | None = None) -> str:
    """The minimal line written when a record cannot be rendered: what and why, not how."""
    try:
        return orjson.dumps(
            {
                "event": "log_line_unrenderable",
                "level": "error",
                "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
                "logger": logger,
                "original_event": safe_text(event[:200]),
                "error": type(exc).__qualname__,
            }
        ).decode()
    except Exception:
        return _UNRENDERABLE


def _console_renderer(colors: bool) -> Callable[[Any, str, EventDict], str]:
    console = structlog.dev.ConsoleRenderer(colors=colors)

    def render(logger: Any, method: str, event_dict: EventDict) -> str:
        try:
            return console(logger, method, event_dict)
        except Exception as exc:
            return unrenderable_line(_printable(event_dict.get("event")), exc)

    return render


# -- asyncio's exception handler --------------------------------------------------

_REPR_STARTS = ("<", "(", "{", "[", "'", '"', "\n")


def loop_message_head(message: str) -> str:
    """A loop message up to the first repr in it: 'Exception in callback Foo.bar'."""
    cut = min((i for i in (message.find(c) for c in _REPR_STARTS) if i >= 0), default=None)
    return safe_text(message[:cut].strip()[:200] or "event loop error")


def log_loop_exception(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: one structured line, no handle/future/task reprs."""
    fields: dict[str, Any] = {"message": loop_message_head(_printable(context.get("message")))}
    task = context.get("task") or context.get("future")
    if isinstance(task, asyncio.Task):
        fields["task"] = task.get_name()
        fields["coroutine"] = getattr(task.get_coro(), "__qualname__", None)
    exc = context.get("exception")
    structlog.get_logger("asyncio").error(
        "event_loop_exception", exc_info=exc if isinstance(exc, BaseException) else None, **fields
    )


# -- where lines go ----------------------------------------------------------------


class TextStream(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class LineSink:
    """Whole lines to one stream under one lock, for structlog and stdlib records alike."""

    def __init__(self, stream: TextStream, *, is_json: bool) -> None:
        self._stream = stream
        self._is_json = is_json
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        if self._is_json:
            for observer in _json_line_observers:
                observer(line)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # closed or broken stream: nowhere left to report
                pass


class _SinkLogger:
    """structlog's wrapped logger: hands each rendered line to the sink."""

    def __init__(self, sink: LineSink, name: str | None) -> None:
        self._sink = sink
        self.name = name

    def msg(self, message: str) -> None:
        self._sink.write(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class _SinkLoggerFactory:
    def __init__(self, sink: LineSink) -> None:
        self._sink = sink

    def __call__(self, *args: Any) -> _SinkLogger:
        return _SinkLogger(self._sink, str(args[0]) if args else None)


class StdlibHandler(logging.Handler):
    """The root handler: stdlib records through the same processors into the same sink."""

    def __init__(self, sink: LineSink, formatter: logging.Formatter) -> None:
        super().__init__()
        self._sink = sink
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # e.g. a message whose %-arguments do not fit
            line = unrenderable_line(_printable(record.msg), exc, record.name)
        self._sink.write(line)


class _ConfiguredHandler(StdlibHandler):
    """The one ``configure_logging`` installs, and replaces on the next call."""


def stdlib_formatter(use_json: bool, *, colors: bool = False) -> logging.Formatter:
    """A formatter rendering stdlib records exactly as structlog events are rendered."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(foreign=True),
        processors=[drop_formatter_meta, render_json if use_json else _console_renderer(colors)],
    )


def _shared_processors(*, foreign: bool) -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_logger_name,
        *([clean_asyncio_message] if foreign else []),
        exception_to_field,
        make_safe,
    ]


def configure_logging(
    level: str = "info",
    fmt: LogFormat = LogFormat.AUTO,
    stream: TextIO | None = None,
    *,
    cache: bool = True,
    redact: Callable[[str], str] = redact_secrets,
) -> None:
    """Route structlog and the stdlib root logger to ``stream`` (stderr by default).

    JSON unless the format says console or, on AUTO, the stream is a terminal.
    ``cache=False`` lets a later call reconfigure loggers already used (tests do that).
    ``redact`` masks every logged string; the default is storage's secret patterns.
    """
    global _redact
    _redact = redact
    # What was remembered was masked by the former policy.
    _safe_short.cache_clear()
    _KEYS.clear()
    stream = stream or sys.stderr
    is_tty = stream.isatty()
    use_json = fmt is LogFormat.JSON or (fmt is LogFormat.AUTO and not is_tty)
    sink = LineSink(stream, is_json=use_json)
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer = render_json if use_json else _console_renderer(is_tty)
    structlog.configure(
        processors=[*_shared_processors(foreign=False), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_SinkLoggerFactory(sink),
        cache_logger_on_first_use=cache,
    )
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ConfiguredHandler)]:
        root.removeHandler(handler)
    root.addHandler(_ConfiguredHandler(sink, stdlib_formatter(use_json, colors=is_tty)))
    root.setLevel(numeric_level)
    for name in DATA_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))
    logging.captureWarnings(True)
