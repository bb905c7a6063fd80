"""A pool worker of serve's ends when serve is killed outright, instead of waiting forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's prctl")

# The middle process starts a grandchild, reports its pid, and waits to be killed.
MIDDLE = """
import subprocess, sys
grandchild = '''
import os, sys, time
if sys.argv[1] == "lifeline":
    from understudy.lifeline import die_with_parent
    die_with_parent(os.getppid())
print(os.getpid(), flush=True)
time.sleep(60)
'''
subprocess.Popen([sys.executable, "-c", grandchild, sys.argv[1]]).wait()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


def _orphan(kind: str) -> int:
    """Start a middle process and its grandchild, SIGKILL the middle one; the grandchild's pid."""
    middle = subprocess.Popen(
        [sys.executable, "-c", MIDDLE, kind], stdout=subprocess.PIPE, text=True
    )
    assert middle.stdout is not None
    grandchild = int(middle.stdout.readline())
    middle.kill()
    middle.wait()
    return grandchild


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_worker_with_the_lifeline_ends_with_its_parent() -> None:
    assert _gone_within(_orphan("lifeline"), 5.0)


def test_a_worker_without_it_outlives_its_parent() -> None:
    """What the lifeline prevents, shown: the same grandchild without it stays."""
    pid = _orphan("none")
    try:
        assert not _gone_within(pid, 1.0)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_parent_already_gone_ends_the_worker_at_once() -> None:
    code = (
        "import sys; from understudy.lifeline import die_with_parent;"
        " die_with_parent(1); print('still here')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (1, "")
