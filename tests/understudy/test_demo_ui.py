"""`understudy demo` hands over to the web UI: its address, an admin token drawn for the
run and a reviewer's invite, kept open after the story until Ctrl-C.

The demo runs as a real process; the UI it prints is signed in to over HTTP, the
rollout moved on its page, and the run's pairs found in the invited reviewer's queue.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.understudy.test_demo import ADMIN_TOKEN, INVITE, UI_ADDRESS, Printed, _env, history

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
VERSION = re.compile(r'name="if_version" value="(\d+)"')


async def _use_the_ui(root: str, token: str, invite: str) -> tuple[int, dict[str, Any]]:
    """Sign in as the demo's admin and move the rollout; accept the invite and look at the
    review queue. The new flag version, and the reviewer's first pair."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as admin:
        async with admin.get(root + "/ui/signin") as response:
            form = CSRF.search(await response.text())
        assert form is not None
        async with admin.post(
            root + "/ui/signin/admin",
            data={"csrf": form.group(1), "token": token},
            headers={"Origin": root},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
        async with admin.get(root + "/ui/rollout") as response:
            assert response.status == 200
            page = await response.text()
        assert "local-llama" in page and token not in page
        csrf, version = CSRF.search(page), VERSION.search(page)
        assert csrf is not None and version is not None
        change = {"csrf": csrf.group(1), "if_version": version.group(1), "action": "set",
                  "percent": "25", "reason": "a person tries the page"}  # fmt: skip
        async with admin.post(
            root + "/ui/rollout/change",
            data={**change, "confirm": "yes"},
            headers={"Origin": root},
            allow_redirects=False,
        ) as response:
            assert response.status == 303, await response.text()
            moved = int(response.headers["Location"].rsplit("version=", 1)[1])
    path = invite.removeprefix(root)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as reviewer:
        async with reviewer.get(invite) as response:
            form = CSRF.search(await response.text())
        assert form is not None
        password = "a long enough password"
        async with reviewer.post(
            root + path,
            data={"csrf": form.group(1), "password": password, "confirm": password},
            headers={"Origin": root},
            allow_redirects=False,
        ) as response:
            assert response.status == 303 and response.headers["Location"] == "/ui/review"
        async with reviewer.get(root + "/ui/api/review/current") as response:
            assert response.status == 200
            queue: dict[str, Any] = await response.json()
    return moved, queue


@pytest.mark.slow
def test_the_demo_keeps_the_web_ui_open_with_its_admin_token_and_pairs_to_review(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        # Fewer pairs than a stage needs (30), so only the page moves the rollout after it.
        [sys.executable, "-m", "understudy.cli", "demo", "--port", "0", "--rate", "5",
         "--duration", "4", "--keep-open"],
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        printed = Printed(proc)
        seen = printed.until("Ctrl-C ends the demo", deadline=time.monotonic() + 90)
        after = seen.split("Stopped before the story ended.", 1)[1]
        address, token, invite = (
            UI_ADDRESS.search(after),
            ADMIN_TOKEN.search(after),
            INVITE.search(after),
        )
        assert address and token and invite, seen
        root = address["root"]
        assert len(token["token"]) >= 32 and invite["link"].startswith(f"{root}/ui/invite/")
        moved, queue = asyncio.run(_use_the_ui(root, token["token"], invite["link"]))
        # The change made on the page is told in the terminal as it is recorded.
        told_line = printed.until("set by ui:demo-admin", deadline=time.monotonic() + 30)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "shadow -> 25%: set by ui:demo-admin: a person tries the page" in told_line
    assert "Stopped." in rest and "Traceback" not in err
    assert token["token"] not in err  # printed for the person running the demo, never logged
    assert queue["item"] is not None and queue["waiting"] >= 1, queue
    assert len(queue["item"]["answers"]) == 2

    entries = history(tmp_path)
    assert (entries[-1]["actor"], entries[-1]["action"], entries[-1]["flag_version"]) == (
        "ui:demo-admin",
        "set",
        moved,
    )
    # The token and the invite are the run's own, and stored nowhere.
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("understudy.db*"))
    assert token["token"].encode() not in stored
    assert invite["link"].rsplit("/", 1)[1].encode() not in stored
