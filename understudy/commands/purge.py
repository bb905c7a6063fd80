"""``understudy purge``: delete records past retention, or every copy of one exchange."""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime

from storage.purge import PurgeResult, purge_exchange, purge_older_than
from storage.timespec import parse_duration
from understudy.commands.common import (
    EXIT_CONFIG,
    Subparsers,
    add_config_option,
    settings_from_args,
)
from understudy.commands.db import open_current, run_storage


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "purge",
        help="delete exchanges past retention, or one exchange everywhere it is kept",
        description=(
            "Deletes from the database and from spill files. Without options, uses "
            "UNDERSTUDY_STORAGE__RETENTION."
        ),
    )
    add_config_option(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--older-than", metavar="AGE", help="delete exchanges older than AGE, like 30d or 12h"
    )
    which.add_argument("--exchange", metavar="ID", help="delete this exchange (its full id)")
    parser.set_defaults(func=_purge)


def _purge(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    spill_dir = settings.storage.spill_dir
    url = settings.database_url
    if args.exchange is not None:
        try:
            exchange_id = uuid.UUID(args.exchange)
        except ValueError:
            sys.stderr.write(
                f"understudy: --exchange needs a full exchange id, not {args.exchange!r}\n"
            )
            return EXIT_CONFIG

        async def by_id() -> int:
            async with await open_current(url) as db:
                result = await purge_exchange(db, spill_dir, exchange_id)
            return _report(result, f"exchange {exchange_id}")

        return run_storage(by_id())

    if args.older_than is not None:
        try:
            age = parse_duration(args.older_than)
        except ValueError as exc:
            sys.stderr.write(f"understudy: --older-than: {exc}\n")
            return EXIT_CONFIG
    elif settings.storage.retention is not None:
        age = settings.storage.retention
    else:
        sys.stderr.write(
            "understudy: give --older-than AGE or --exchange ID, "
            "or set UNDERSTUDY_STORAGE__RETENTION\n"
        )
        return EXIT_CONFIG
    cutoff = datetime.now(UTC) - age

    async def by_age() -> int:
        async with await open_current(url) as db:
            result = await purge_older_than(db, spill_dir, cutoff)
        return _report(result, f"exchanges created before {cutoff.isoformat(timespec='seconds')}")

    return run_storage(by_age())


def _report(result: PurgeResult, what: str) -> int:
    sys.stdout.write(
        f"purged {what}: {result.exchanges} from the database, {result.spilled} from spill files\n"
    )
    return 0
