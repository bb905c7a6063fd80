"""What the proxy stored, read straight from the SQLite file with the standard library.

Independent of the code under test: a row the repository would decode leniently
(or refuse) is judged here on its raw column values.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path

from core import ErrorKind, Role, RolloutMode, Route

ROUTES = {r.value for r in Route}
ROLES = {r.value for r in Role}
MODES = {m.value for m in RolloutMode}
ERROR_KINDS = {k.value for k in ErrorKind}


@contextmanager
def _read(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        yield conn


def integrity_check(path: Path) -> list[str]:
    """``PRAGMA integrity_check`` and ``foreign_key_check``: ``["ok"]`` when the file is sound."""
    with _read(path) as conn:
        found = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
    return found + [f"foreign key: {row}" for row in orphans]


def id_counts(path: Path) -> Counter[uuid.UUID]:
    """How many rows each exchange id has (every count must be 1)."""
    with _read(path) as conn:
        return Counter(uuid.UUID(str(r[0])) for r in conn.execute("SELECT id FROM exchanges"))


def question_counts(path: Path) -> Counter[str]:
    """How many stored exchanges carry each request's last message."""
    with _read(path) as conn:
        rows = conn.execute("SELECT request FROM exchanges").fetchall()
    return Counter(json.loads(r[0])["messages"][-1]["content"] for r in rows)


def timed_out_latencies_ms(path: Path, role: Role) -> list[float]:
    """The recorded latency of every arm in ``role`` that ended in a timeout."""
    with _read(path) as conn:
        rows = conn.execute(
            "SELECT latency_ms FROM observations WHERE role = ? AND error_kind = ?",
            (role.value, ErrorKind.TIMEOUT.value),
        ).fetchall()
    return [float(r[0]) for r in rows]


def _exchange_problems(row: sqlite3.Row) -> Iterator[str]:
    uuid.UUID(row["id"])
    datetime.fromisoformat(row["created_at"])
    if row["route"] not in ROUTES:
        yield f"route {row['route']!r}"
    if row["mode"] not in MODES:
        yield f"mode {row['mode']!r}"
    for flag in ("stream", "served_is_candidate", "noise", "fallback"):
        if row[flag] not in (0, 1):
            yield f"{flag} {row[flag]!r}"
    if not row["served_by"]:
        yield "no served_by"
    request = json.loads(row["request"])
    if not isinstance(request, dict) or not request.get("messages"):
        yield "request without messages"


def _observation_problems(row: sqlite3.Row) -> Iterator[str]:
    if row["role"] not in ROLES:
        yield f"role {row['role']!r}"
    if row["error_kind"] is not None and row["error_kind"] not in ERROR_KINDS:
        yield f"error_kind {row['error_kind']!r}"
    if row["status"] is not None and not 100 <= row["status"] <= 599:
        yield f"status {row['status']!r}"
    for number in ("latency_ms", "ttft_ms"):
        if row[number] is not None and not row[number] >= 0:
            yield f"{number} {row[number]!r}"
    if row["tool_calls"] is not None:
        json.loads(row["tool_calls"])


def row_problems(path: Path) -> list[str]:
    """Every stored value that does not decode or is out of its domain, by exchange id.
    Each exchange must have arms numbered 0..n-1 and exactly one served arm."""
    problems: list[str] = []
    with _read(path) as conn:
        conn.row_factory = sqlite3.Row
        arms: dict[str, list[sqlite3.Row]] = {}
        for obs in conn.execute("SELECT * FROM observations ORDER BY exchange_id, position"):
            arms.setdefault(obs["exchange_id"], []).append(obs)
        for row in conn.execute("SELECT * FROM exchanges"):
            found: list[str] = []
            try:
                found.extend(_exchange_problems(row))
                for obs in arms.get(row["id"], []):
                    found.extend(_observation_problems(obs))
            except (ValueError, TypeError, KeyError) as exc:
                found.append(f"undecodable: {type(exc).__name__}: {exc}")
            own = arms.get(row["id"], [])
            if [o["position"] for o in own] != list(range(len(own))):
                found.append("arm positions not 0..n-1")
            if [o["role"] for o in own].count(Role.SERVED.value) != 1:
                found.append("not exactly one served arm")
            problems.extend(f"{row['id']}: {p}" for p in found)
    return problems
