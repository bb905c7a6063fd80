"""``understudy db upgrade|downgrade REV|current``: manage the database schema.

Also home of the helpers the other storage commands share: running a
coroutine with storage errors turned into one clear line, and opening a
database only when its schema is current.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

import migrations
from storage.database import Database, normalise_url, safe_url
from storage.errors import StorageError
from understudy.commands.common import Subparsers, add_config_option, settings_from_args

EXIT_ERROR = 1


def fail(message: str) -> int:
    sys.stderr.write(f"understudy: {message}\n")
    return EXIT_ERROR


def run_storage(work: Coroutine[Any, Any, int]) -> int:
    """Run a storage command; database failures become one line on stderr and exit 1."""
    try:
        return asyncio.run(work)
    except StorageError as exc:
        return fail(str(exc))
    except sa_exc.DBAPIError as exc:
        # The driver's own message: the SQLAlchemy one quotes statements and parameters.
        detail = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        return fail(f"database error: {type(exc.orig).__name__}: {detail}")
    except (OSError, sa_exc.SQLAlchemyError) as exc:
        return fail(f"cannot use the database: {type(exc).__name__}: {exc}")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, None for other databases or in-memory SQLite."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def open_current(url: str) -> Database:
    """A Database whose schema is current; raises StorageError otherwise.

    Read-only commands never create or migrate a database as a side effect.
    """
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise StorageError(
            f"no database at {path}: start the proxy, or run `understudy db upgrade`"
        )
    await migrations.ensure_schema(url, auto_upgrade=False)
    return Database(url)


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("db", help="manage the database schema")
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    up = actions.add_parser("upgrade", help="migrate the schema up (to the newest by default)")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    up.set_defaults(func=lambda a: run_storage(_upgrade(a)))

    down = actions.add_parser("downgrade", help="migrate the schema down to REV")
    down.add_argument("revision", metavar="REV", help="target revision, or `base` for empty")
    down.set_defaults(func=lambda a: run_storage(_downgrade(a)))

    cur = actions.add_parser("current", help="show the database's schema revision")
    cur.set_defaults(func=lambda a: run_storage(_current(a)))

    for sub in (up, down, cur):
        add_config_option(sub)


def _url(args: argparse.Namespace) -> str:
    return settings_from_args(args).database_url


async def _upgrade(args: argparse.Namespace) -> int:
    url = _url(args)
    await migrations.upgrade(url, args.revision)
    return await _report(url, "upgraded")


async def _downgrade(args: argparse.Namespace) -> int:
    url = _url(args)
    await migrations.downgrade(url, args.revision)
    return await _report(url, "downgraded")


async def _current(args: argparse.Namespace) -> int:
    return await _report(_url(args), None)


async def _report(url: str, verb: str | None) -> int:
    revision = await migrations.current(url)
    head = migrations.head_revision()
    if revision == head:
        state = "(head)"
    elif revision is None:
        state = f"(empty: run `understudy db upgrade` to reach {head})"
    else:
        state = f"(behind: head is {head})"
    prefix = f"{verb}: " if verb else ""
    sys.stdout.write(f"{prefix}{safe_url(url)} at revision {revision or 'none'} {state}\n")
    return 0
