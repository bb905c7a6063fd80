"""The servers a benchmark compares, each in its own process, and what they cost the machine.

A peer's CPU, memory and open files are read from /proc for the whole process tree,
so a server that hands work to child processes is charged for all of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants that are alive now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo.extend(int(c) for c in children)
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process tree has used so far."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of the process tree."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _tcp_ports() -> dict[str, tuple[int, int]]:
    """Every TCP socket on the machine: its inode -> (local port, remote port)."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                ports[fields[9]] = (
                    int(local.rsplit(":", 1)[1], 16),
                    int(remote.rsplit(":", 1)[1], 16),
                )
    return ports


def open_files_by_kind(pid: int, server_port: int) -> dict[str, int]:
    """The process tree's descriptors: connections clients made to ``server_port``,
    connections it made to other servers (its upstreams), and everything else."""
    ports = _tcp_ports()
    counts = {"clients": 0, "upstreams": 0, "other": 0}
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{member}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{member}/fd/{fd}")
                    local, remote = ports.get(target.removeprefix("socket:[").rstrip("]"), (0, 0))
                    if remote == 0:  # a file, a pipe, a listening or a local socket
                        counts["other"] += 1
                    elif local == server_port:
                        counts["clients"] += 1
                    else:
                        counts["upstreams"] += 1
    return counts


@contextlib.contextmanager
def process(
    cmd: list[str], port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def mock(delay_ms: float = 0.0, hang: bool = False) -> Iterator[tuple[str, int]]:
    """A mock upstream; yields its base URL (without /v1) and its pid."""
    port = free_port()
    cmd = [PY, "-m", "bench.mock_upstream", str(port), "--delay-ms", str(delay_ms)]
    with process([*cmd, "--hang"] if hang else cmd, port) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


@contextlib.contextmanager
def floor(primary: str, mirror: str) -> Iterator[tuple[str, int]]:
    """The Python floor: a bare aiohttp pass-through that mirrors every request."""
    port = free_port()
    with process(
        [PY, "-m", "bench.mirror_floor", str(port), f"{primary}/v1", f"{mirror}/v1"], port
    ) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


@contextlib.contextmanager
def understudy(
    primary: str,
    candidate: str,
    db_dir: str,
    *,
    mode: str = "shadow",
    record: bool = True,
    workers: int = 1,
) -> Iterator[tuple[str, int]]:
    """`understudy serve` mirroring every request, recording into SQLite unless told not to;
    ``workers`` proxy processes on its port."""
    port = free_port()
    env = {
        "UNDERSTUDY_PORT": str(port),
        "UNDERSTUDY_PRIMARY__BASE_URL": f"{primary}/v1",
        "UNDERSTUDY_PRIMARY__API_KEY": "sk-bench",
        "UNDERSTUDY_CANDIDATES": json.dumps(
            [{"name": "candidate", "base_url": f"{candidate}/v1", "max_concurrency": 512}]
        ),
        "UNDERSTUDY_ROLLOUT__MODE": mode,
        "UNDERSTUDY_ROLLOUT__SHADOW_RATE": "1.0",
        "UNDERSTUDY_DATABASE_URL": f"sqlite+aiosqlite:///{db_dir}/bench.db",
        "UNDERSTUDY_STORAGE__SPILL_DIR": f"{db_dir}/spill",
        "UNDERSTUDY_LOG_FORMAT": "json",
        # The proxy's cost per request: the controller's periodic stage report (a worker
        # process, every 5 s) is not per request and is timed by bench.report_db_bench.
        "UNDERSTUDY_ROLLOUT__CONTROLLER__ENABLED": "false",
    }
    if not record:
        env["UNDERSTUDY_STORAGE__ENABLED"] = "false"
    cmd = [PY, "-m", "understudy.cli", "serve"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    with process(cmd, port, env) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


def load(url: str, *extra: str) -> dict[str, object]:
    """One run of the load generator against a peer."""
    out = subprocess.run(
        [PY, "-m", "bench.load", url, *extra], check=True, capture_output=True, text=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result
