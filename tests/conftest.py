"""Shared test set-up. Fake upstreams live in tests/fakes; PostgreSQL in tests/pg.py.

Session-wide, every log line is checked to be one JSON object: each JSON line any
in-process test renders through ``configure_logging``, and every stdlib log record
emitted during the suite (rendered by a root handler with the product's formatter).
The session fails at the end, listing the offending lines, if any was not.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pytest

from understudy.logs import LineSink, StdlibHandler, observe_json_lines, stdlib_formatter

MAX_REPORTED = 20


class JsonLineAudit:
    """Counts lines and keeps the first few that are not exactly one JSON object."""

    def __init__(self) -> None:
        self.checked = 0
        self.offenders: list[str] = []
        self.offender_count = 0

    def check(self, line: str) -> None:
        self.checked += 1
        try:
            ok = "\n" not in line and isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if not ok:
            self.offender_count += 1
            if len(self.offenders) < MAX_REPORTED:
                self.offenders.append(line[:500])


class _AuditStream(io.TextIOBase):
    """What the root handler writes to: each line to the audit, nothing kept."""

    def __init__(self, audit: JsonLineAudit) -> None:
        self._audit = audit

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self._audit.check(line)
        return len(text)


_audit = JsonLineAudit()
_undo: list[Callable[[], None]] = []


def pytest_configure(config: pytest.Config) -> None:
    _undo.append(observe_json_lines(_audit.check))
    handler = StdlibHandler(LineSink(_AuditStream(_audit), is_json=False), stdlib_formatter(True))
    root = logging.getLogger()
    root.addHandler(handler)
    _undo.append(lambda: root.removeHandler(handler))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for undo in reversed(_undo):
        undo()
    _undo.clear()
    if not _audit.offender_count:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "log lines that are not one JSON object", red=True)
        reporter.write_line(f"{_audit.offender_count} of {_audit.checked} lines:")
        for line in _audit.offenders:
            reporter.write_line(f"  {line!r}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
