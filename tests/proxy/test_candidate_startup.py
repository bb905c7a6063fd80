"""At start-up a mapped model the candidate does not serve stops `understudy serve` (exit 2,
one line naming the candidate and the model) when the rollout serves users from it, and
is a warning in shadow, where the proxy starts and skips the candidate's shadows."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeOpenAI, ThreadedServer

MISSING = "meta-llama/Llama-3.1-8B-Instruct"
SECRET = "sk-candidate-startup-8b2f"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(
    tmp_path: Path, candidate_url: str, primary_url: str, **rollout: Any
) -> dict[str, str]:
    candidate = {
        "name": "local",
        "base_url": f"{candidate_url}/v1",
        "kind": "vllm",
        "api_key": SECRET,
        "model_map": {"gpt-4o-mini": MISSING},
        "probe_interval_s": 1,
    }
    return {
        **os.environ,
        "UNDERSTUDY_PORT": str(free_port()),
        "UNDERSTUDY_PRIMARY__BASE_URL": f"{primary_url}/v1",
        "UNDERSTUDY_CANDIDATES": json.dumps([candidate]),
        "UNDERSTUDY_ROLLOUT": json.dumps({"candidate": "local", **rollout}),
        "UNDERSTUDY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/u.db",
    }


def candidate_without_the_model() -> FakeOpenAI:
    fake = FakeOpenAI(persona="candidate", models=["some-other-model"])
    fake.health_status = 200
    return fake


@pytest.mark.slow
@pytest.mark.parametrize(
    "rollout",
    [{"mode": "split", "percent": 5}, {"mode": "cutover"}],
    ids=["split", "cutover"],
)
def test_serving_users_from_a_candidate_without_the_model_refuses_to_start(
    tmp_path: Path, rollout: dict[str, Any]
) -> None:
    with (
        ThreadedServer(FakeOpenAI().app) as primary,
        ThreadedServer(candidate_without_the_model().app) as candidate,
    ):
        result = subprocess.run(
            [sys.executable, "-m", "understudy.cli", "serve"],
            env=serve_env(tmp_path, candidate.url, primary.url, **rollout),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1, result.stderr
    assert "'local'" in errors[0] and repr(MISSING) in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert not any('"event": "listening"' in line for line in result.stderr.splitlines())


@pytest.mark.slow
def test_in_shadow_a_missing_model_is_a_warning_and_the_proxy_serves(tmp_path: Path) -> None:
    with (
        ThreadedServer(FakeOpenAI().app) as primary,
        ThreadedServer(candidate_without_the_model().app) as candidate,
    ):
        env = serve_env(tmp_path, candidate.url, primary.url, mode="shadow")
        proc = subprocess.Popen(
            [sys.executable, "-m", "understudy.cli", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{env['UNDERSTUDY_PORT']}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                        ready = json.loads(r.read())
                        break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline, "serve did not become ready"
                    time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert ready["status"] == "ready"
    assert ready["candidates"]["local"]["health"] == "unhealthy"
    assert ready["candidates"]["local"]["missing_models"] == [MISSING]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    warning = [e for e in events if e["event"] == "candidate_model_missing"]
    assert len(warning) == 1 and warning[0]["candidate"] == "local"
    assert warning[0]["models"] == [MISSING] and warning[0]["level"] == "warning"
    assert SECRET not in err
