"""`understudy demo` tells a rollout: promoted stage by stage, or rolled back when it degrades.

The demo runs as a real process, with its simulated upstreams, the proxy, the controller
and SQLite; what it prints is checked against what the audit log recorded.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core import RolloutMode
from migrations import ensure_schema
from rollout.changes import NewValues, RolloutAction
from rollout.controller import HISTORY_ROWS
from rollout.position import locate_stage
from storage.database import Database
from storage.flags import route_history
from understudy.commands.demo import CANDIDATE, start_in_shadow
from understudy.demo_story import demo_stages
from understudy.plan_settings import stage_plan
from understudy.settings import Settings, load_settings
from understudy.wiring import rollout_store

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["shadow", "5%", "25%", "50%", "75%", "95%", "100%"]
# "[ 12.3s] 25% -> 50%: promote: ..." as the demo prints a change it read from the audit log
TOLD = re.compile(r"^\[\s*(?P<at>[\d.]+)s\] (?P<was>\S+) -> (?P<now>\S+): (?P<rest>.*)$")
STORY_CAP_S = 240  # --duration: far above the minute the story takes, so it ends by itself
UI_ADDRESS = re.compile(r"The web UI: (?P<root>http://127\.0\.0\.1:\d+)/ui/$", re.M)
ADMIN_TOKEN = re.compile(r"sign in as an admin with this run's token: (?P<token>\S+)$", re.M)
INVITE = re.compile(
    r"review pairs blind as demo-reviewer \(the link works once\): (?P<link>\S+)$", re.M
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def understudy(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "understudy.cli", *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,  # no terminal: the demo ends with its story
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def told(stdout: str) -> list[dict[str, str]]:
    return [m.groupdict() for line in stdout.splitlines() if (m := TOLD.match(line))]


def history(cwd: Path) -> list[dict[str, Any]]:
    listed = understudy("rollout", "history", "--json", "--limit", "100", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    entries: list[dict[str, Any]] = json.loads(listed.stdout)
    return entries[::-1]  # oldest first


def run_story(cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    demo = understudy(
        "demo", "--port", "0", "--duration", str(STORY_CAP_S), "--exit", *extra,
        cwd=cwd, timeout=STORY_CAP_S + 60,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Stopped before the story ended" not in demo.stdout, demo.stdout
    return demo


@pytest.mark.slow
def test_demo_promotes_the_candidate_stage_by_stage_and_ends_with_the_history(
    tmp_path: Path,
) -> None:
    demo = run_story(tmp_path)
    out = demo.stdout

    moves = [(t["was"], t["now"]) for t in told(out) if t["rest"].startswith("promote: ")]
    assert moves == list(itertools.pairwise(STAGES)), out
    assert "The story ends: the candidate serves 100% of users." in out, out
    reached = float(next(t["at"] for t in told(out) if t["now"] == "100%"))
    assert reached < 120, f"the walk to 100 % took {reached:.0f}s"

    # Each promotion printed is one the controller recorded, with the reason it recorded.
    promotions = [e for e in history(tmp_path) if e["action"] == "promote"]
    assert [e["after"]["stage"] for e in promotions] == STAGES[1:], out
    printed = [t["rest"] for t in told(out) if t["rest"].startswith("promote: ")]
    for entry, line in zip(promotions, printed, strict=True):
        assert entry["actor"] == "controller"
        assert entry["verdict"]["decision"] == "promote"
        assert line == entry["reason"]
        gates = {m["name"]: m for m in entry["verdict"]["metrics"]}
        assert set(gates) == {"latency_total", "latency_ttft"}
        assert all(m["label"] == "pass" and m["upper"] <= m["margin"] for m in gates.values())
        assert entry["verdict"]["n"] >= 30

    # The history closes the story, newest first, as `understudy rollout history` prints it.
    tail = out.split("Rollout history of this run", 1)[1]
    rows = [line for line in tail.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert len(rows) == len(history(tmp_path)), out
    assert "controller promote default row" in rows[0] and "stage 95% -> 100%" in rows[0], out
    assert "settings   seed" in rows[-1]  # a fresh database: the settings' row, off
    assert "demo       set" in rows[-2] and "mode off -> shadow" in rows[-2]
    assert "sk-demo" not in out + demo.stderr, demo.stderr[-3000:]

    # The web UI was offered while the story ran; --exit ended the demo with the story.
    guide = out.split("Generating traffic", 1)[0]
    assert UI_ADDRESS.search(guide) and ADMIN_TOKEN.search(guide) and INVITE.search(guide), guide
    assert "The web UI stays open" not in out and "No terminal" not in out


@pytest.mark.slow
def test_regression_scenario_shows_the_degradation_and_the_rollback_with_its_reason(
    tmp_path: Path,
) -> None:
    demo = run_story(tmp_path, "--scenario", "regression")
    out = demo.stdout
    lines = out.splitlines()

    moves = [(t["was"], t["now"], t["rest"]) for t in told(out)]
    promoted = [(was, now) for was, now, rest in moves if rest.startswith("promote: ")]
    assert promoted == [("shadow", "5%"), ("5%", "25%"), ("25%", "50%")], out
    degraded = next(i for i, line in enumerate(lines) if "the candidate degrades now" in line)
    reached_half = next(i for i, line in enumerate(lines) if "25% -> 50%: promote" in line)
    assert degraded > reached_half
    [(was, now, rest)] = [m for m in moves if m[2].startswith("rollback: ")]
    assert (was, now) == ("50%", "shadow")
    assert "The story ends: the candidate was rolled back." in out
    tail = out.split("Rollout history of this run", 1)[1]
    assert "controller rollback default row" in tail

    [rollback] = [e for e in history(tmp_path) if e["action"] == "rollback"]
    assert rollback["actor"] == "controller"
    assert rest.startswith(rollback["reason"])
    after = rollback["after"]
    assert (after["mode"], after["percent"], after["stage"], after["paused"]) == (
        "shadow",
        0.0,
        "shadow",
        True,
    )
    if "circuit breaker" in rollback["reason"]:
        # Rare: failures in a row opened the proxy's breaker before the verdict saw enough.
        assert rollback["reason"].startswith("rollback: circuit breaker of candidate")
        return
    assert rollback["reason"].startswith("rollback: guardrail beyond its harm limit (")
    verdict = rollback["verdict"]
    assert verdict["decision"] == "rollback"
    failed = [m for m in verdict["metrics"] if m["label"] == "fail"]
    assert failed and all(m["name"] in rollback["reason"] for m in failed)
    # Each failed metric is printed under the rollback, with the numbers recorded.
    below = lines[next(i for i, line in enumerate(lines) if " rollback: " in line) + 1 :]
    for m in failed:
        assert any(
            line.strip().startswith(f"{m['name']}: fail, {m['estimate']:.3g} ") for line in below
        )
    tail = out.split("Rollout history of this run", 1)[1]
    assert "controller rollback default row" in tail


def test_duration_stops_the_demo_with_the_history_so_far_and_records_pairs(
    tmp_path: Path,
) -> None:
    demo = understudy("demo", "--duration", "4", "--rate", "10", "--port", "0", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "curl -s http://127.0.0.1:" in demo.stdout
    assert "Stopped before the story ended." in demo.stdout
    assert "demo       set     default row: mode off -> shadow" in demo.stdout
    assert "demo finished: answers by" in demo.stdout
    # Without a terminal and without --keep-open, the demo ends with its story, and says so.
    assert "No terminal to press Ctrl-C in, so the demo ends here" in demo.stdout
    assert "The web UI stays open" not in demo.stdout

    listed = understudy("exchanges", "list", "--format", "json", "--limit", "500", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    exchanges = json.loads(listed.stdout)
    shadowed = [e for e in exchanges if any(o["role"] == "shadow" for o in e["observations"])]
    assert len(shadowed) >= 10
    answered = 0
    for exchange in shadowed:
        roles = {o["role"]: o for o in exchange["observations"]}
        assert roles["served"]["upstream"] == "openai" and roles["served"]["status"] == 200
        assert roles["shadow"]["model"] == "llama-3.1-8b-instruct"
        if roles["shadow"]["status"] != 200:  # the simulated candidate fails 1 % of requests
            assert roles["shadow"]["error_kind"] == "http_status"
            continue
        answered += 1
        assert roles["served"]["text"] and roles["shadow"]["text"]
        assert roles["served"]["text"] != roles["shadow"]["text"]
    assert answered >= 0.8 * len(shadowed)
    assert "sk-demo" not in listed.stdout


def test_ctrl_c_stops_the_demo_cleanly_with_the_history(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        # --keep-open: Ctrl-C during the story ends the demo all the same.
        [
            sys.executable,
            "-m",
            "understudy.cli",
            "demo",
            "--port",
            "0",
            "--rate",
            "10",
            "--keep-open",
        ],
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = Printed(proc)
        seen = printed.until("off -> shadow: set by demo", deadline=time.monotonic() + 60)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    out = seen + printed.rest() + rest
    assert "Stopped before the story ended." in out
    assert "Rollout history of this run" in out
    assert "The web UI stays open" not in out
    assert "Traceback" not in err


class Printed:
    """A process's stdout, read line by line as it is printed (straight from the pipe, so
    no line waits in a buffer the selector cannot see)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._pending = b""
        self.seen = ""  # everything returned so far

    def until(self, wanted: str, deadline: float) -> str:
        """What was printed since the last call, up to and including the first line
        holding ``wanted``."""
        taken: list[str] = []
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self._pending:
                    line, self._pending = self._pending.split(b"\n", 1)
                    taken.append(line.decode() + "\n")
                    if wanted in taken[-1]:
                        self.seen += "".join(taken)
                        return "".join(taken)
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(timeout=left):
                    break
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                self._pending += chunk
        raise AssertionError(f"never printed {wanted!r}:\n{self.seen}{''.join(taken)}")

    def rest(self) -> str:
        """What was read from the pipe but not returned yet."""
        return self._pending.decode()


def _demo_settings(tmp_path: Path) -> Settings:
    return load_settings(
        candidates=[{"name": CANDIDATE, "base_url": "http://127.0.0.1:9/v1"}],
        rollout={"mode": "off", "candidate": CANDIDATE, "plan": demo_stages()},
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
    )


@pytest.mark.parametrize("earlier", ["rolled back, paused and killed", "at 100 %"])
async def test_a_reused_database_starts_in_shadow_running_with_a_fresh_stage_window(
    tmp_path: Path, earlier: str
) -> None:
    settings = _demo_settings(tmp_path)
    plan = stage_plan(settings.rollout.plan)
    await ensure_schema(settings.database_url, auto_upgrade=True)
    db = Database(settings.database_url)
    try:
        store = rollout_store(settings, db)
        # An earlier run, as the controller and a person left it.
        await store.change(
            RolloutAction.SET,
            actor="demo",
            reason="earlier",
            values=NewValues(mode=RolloutMode.SHADOW),
        )
        if earlier == "at 100 %":
            await store.change(
                RolloutAction.SET,
                actor="cli",
                reason="earlier",
                values=NewValues(mode=RolloutMode.CUTOVER, percent=100),
            )
        else:
            await store.change(RolloutAction.PAUSE, actor="controller", reason="earlier")
            await store.change(RolloutAction.KILL, actor="cli", reason="earlier")
        earlier_version = (await store.rows())[None].version

        await start_in_shadow(store, plan, settings)

        rows = await route_history(db, None, limit=HISTORY_ROWS)
        at = locate_stage(plan, rows)
        now = at.current
        assert (now.mode, now.percent, now.candidate) == ("shadow", 0.0, CANDIDATE)
        assert not now.paused and not now.killed
        assert at.position.stage == plan.first
        # The shadow stage's window holds none of the earlier run's flag versions.
        assert at.first_version > earlier_version
    finally:
        await db.dispose()


def test_a_rate_that_is_not_above_zero_is_refused_in_one_line(tmp_path: Path) -> None:
    for rate in ("0", "fast"):
        demo = understudy("demo", "--rate", rate, "--port", "0", cwd=tmp_path)
        assert demo.returncode == 2
        assert "argument --rate:" in demo.stderr and "Traceback" not in demo.stderr
    assert not (tmp_path / "understudy.db").exists()  # refused before anything started
