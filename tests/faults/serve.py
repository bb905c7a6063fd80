"""Running ``understudy serve`` as a child process, as an operator would, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.pg import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    url: str
    log: Path  # the process's stdout and stderr, restarts appended

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            body = response.read().decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def terminate(self, timeout_s: float = 60.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs, whatever is only in memory is gone."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def children(self, module: str) -> dict[int, list[str]]:
        """The child processes ``understudy serve`` started running ``module``: pid -> argv."""
        found = {}
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
                if module in argv:
                    found[int(child)] = argv
        return found

    def recorder_pid(self) -> int:
        """The recorder process ``understudy serve`` started beside the proxy."""
        pids = list(self.children("understudy.recorder"))
        if len(pids) != 1:
            raise AssertionError(f"recorder processes under pid {self.process.pid}: {pids}")
        return pids[0]

    def rss_bytes(self) -> int:
        """Resident memory of the process now (VmRSS in /proc/PID/status)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                kib = int(line.split()[1])
                return kib * 1024
        raise AssertionError(f"no VmRSS for pid {self.process.pid}")

    def non_json_lines(self) -> list[str]:
        """Every line the process wrote that is not one JSON object: the log must have none."""
        bad = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:
                bad.append(line)
                continue
            if not isinstance(parsed, dict):
                bad.append(line)
        return bad


def start_proxy(
    tmp_path: Path,
    database_url: str,
    upstreams: tuple[str, str],
    *,
    env: Mapping[str, str] | None = None,
    log_level: str = "warning",
    args: Sequence[str] = (),
) -> Proxy:
    """Start ``understudy serve`` in shadow mode in front of ``(primary, candidate)`` base URLs,
    and wait until it is ready. ``env`` adds or overrides ``UNDERSTUDY_*`` settings."""
    port = free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "UNDERSTUDY_HOST": "127.0.0.1",
        "UNDERSTUDY_PORT": str(port),
        "UNDERSTUDY_PRIMARY__BASE_URL": upstreams[0],
        "UNDERSTUDY_CANDIDATES": json.dumps([{"name": "local", "base_url": upstreams[1]}]),
        "UNDERSTUDY_ROLLOUT__MODE": "shadow",
        "UNDERSTUDY_DATABASE_URL": database_url,
        "UNDERSTUDY_STORAGE__SPILL_DIR": str(tmp_path / "spill"),
        "UNDERSTUDY_LOG_FORMAT": "json",
        "UNDERSTUDY_LOG_LEVEL": log_level,
        "UNDERSTUDY_SHUTDOWN_GRACE_S": "10",
        **(env or {}),
    }
    log = tmp_path / "proxy.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "understudy.cli", "serve", *args],
            env=full_env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proxy = Proxy(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"proxy exited at start:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{proxy.url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return proxy
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"proxy not ready in {START_TIMEOUT_S:g} s:\n{log.read_text()}")
