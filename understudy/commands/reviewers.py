"""``understudy reviewers add|list|remove``: the people who review pairs blind in the web UI."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dashboards.accounts import REVIEWER_NAME, new_token, token_hash
from storage.database import Database
from storage.reviewers import ReviewerExists, add_reviewer, list_reviewers, remove_reviewer
from understudy.commands.common import (
    EXIT_CONFIG,
    Subparsers,
    add_config_option,
    settings_from_args,
)
from understudy.commands.db import open_current, run_storage
from understudy.settings import Settings
from understudy.ui_wiring import UI_PREFIX


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("reviewers", help="add, list or remove blind reviewers")
    actions = parser.add_subparsers(dest="reviewers_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a reviewer and print their one-time invite link")
    add.add_argument("name", help="1-64 letters, digits, . _ @ -")
    add_config_option(add)
    add.set_defaults(func=_add)
    listed = actions.add_parser("list", help="the reviewers and how much each has reviewed")
    add_config_option(listed)
    listed.set_defaults(func=_list)
    remove = actions.add_parser("remove", help="end a reviewer's access (their reviews are kept)")
    remove.add_argument("name")
    add_config_option(remove)
    remove.set_defaults(func=_remove)


def ui_address(settings: Settings) -> str:
    """Where people open the UI: the configured public URL, else the admin listener."""
    if settings.ui.public_url is not None:
        return settings.ui.public_url + UI_PREFIX
    port = settings.admin_port if settings.admin_port is not None else settings.port
    return f"http://{settings.host}:{port}{UI_PREFIX}"


@dataclass(frozen=True, slots=True)
class Invite:
    name: str
    token: str  # shown once, in the link; only its hash is stored
    expires_at: datetime

    def link(self, ui: str) -> str:
        """The invite link under the UI's address ``ui`` (ending in ``/ui``)."""
        return f"{ui}/invite/{self.token}"


async def invite_reviewer(db: Database, name: str, settings: Settings) -> Invite:
    """Create reviewer ``name`` with a one-time invite; raises ``ReviewerExists``."""
    token = new_token()
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.ui.invite_lifetime_s)
    await add_reviewer(db, name, token_hash(token), now, expires)
    return Invite(name, token, expires)


def _add(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if not REVIEWER_NAME.fullmatch(args.name):
        sys.stderr.write(
            f"understudy: reviewer name {args.name!r}: use 1-64 letters, digits, . _ @ -\n"
        )
        return EXIT_CONFIG

    async def work() -> int:
        async with await open_current(settings.database_url) as db:
            try:
                invite = await invite_reviewer(db, args.name, settings)
            except ReviewerExists:
                sys.stderr.write(f"understudy: a reviewer named {args.name!r} exists already\n")
                return 1
        sys.stdout.write(
            f"invited {args.name}: this link works once, until "
            f"{invite.expires_at.isoformat(timespec='minutes')}:\n"
            f"{invite.link(ui_address(settings))}\n"
        )
        return 0

    return run_storage(work())


def _list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def work() -> int:
        async with await open_current(settings.database_url) as db:
            found = await list_reviewers(db)
        if not found:
            sys.stdout.write("no reviewers: add one with `understudy reviewers add NAME`\n")
        for r in found:
            status = "active" if r.signed_up else "invited"
            last = r.last_review_at.isoformat(timespec="minutes") if r.last_review_at else "never"
            sys.stdout.write(f"{r.name}\t{status}\t{r.reviews} reviews\tlast {last}\n")
        return 0

    return run_storage(work())


def _remove(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def work() -> int:
        async with await open_current(settings.database_url) as db:
            removed = await remove_reviewer(db, args.name, datetime.now(UTC))
        if not removed:
            sys.stderr.write(f"understudy: no reviewer named {args.name!r}\n")
            return 1
        sys.stdout.write(f"removed {args.name}: signed out, reviews kept\n")
        return 0

    return run_storage(work())
