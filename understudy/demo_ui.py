"""The demo's hand-off to the web UI: where it is, an admin token for this run, and an
invite for a reviewer to review the run's pairs blind.

The token is drawn afresh each run and lives only in the demo's memory and its output:
there is no default to guess. The reviewer is created as ``understudy reviewers add``
creates one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from storage.database import Database
from storage.reviewers import ReviewerExists
from understudy.commands.reviewers import Invite, invite_reviewer
from understudy.settings import Settings
from understudy.ui_wiring import UI_PREFIX

DEMO_ADMIN = "demo-admin"  # the admin token's holder: "ui:demo-admin" in the audit log
DEMO_REVIEWER = "demo-reviewer"
TOKEN_BYTES = 24  # 32 characters of URL-safe text
MAX_REVIEWERS = 100  # a folder's earlier runs left demo-reviewer, demo-reviewer-2, ...


def demo_admin_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class UiHandOff:
    address: str  # the UI's root, ending in /ui
    admin_token: str
    invite: Invite

    def lines(self) -> list[str]:
        return [
            f"The web UI: {self.address}/",
            f"  sign in as an admin with this run's token: {self.admin_token}",
            f"  review pairs blind as {self.invite.name} (the link works once): "
            f"{self.invite.link(self.address)}",
        ]


async def _invite_next_reviewer(db: Database, settings: Settings) -> Invite:
    """A new demo reviewer: the first free name of demo-reviewer, demo-reviewer-2, ..."""
    for n in range(1, MAX_REVIEWERS + 1):
        name = DEMO_REVIEWER if n == 1 else f"{DEMO_REVIEWER}-{n}"
        try:
            return await invite_reviewer(db, name, settings)
        except ReviewerExists:
            continue
    raise ReviewerExists(f"{DEMO_REVIEWER}-{MAX_REVIEWERS}")


async def hand_off(db: Database, settings: Settings, server_url: str, token: str) -> UiHandOff:
    """The UI on the server at ``server_url``, the admin ``token`` it was given, and a new
    reviewer's invite."""
    return UiHandOff(server_url + UI_PREFIX, token, await _invite_next_reviewer(db, settings))
