"""The command line: version, configuration errors, and serve's lifecycle."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.fakes import FakeOpenAI, ThreadedServer

SECRET = "sk-never-print-this-4d8e"


def understudy(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "understudy.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version() -> None:
    result = understudy("--version")
    assert result.returncode == 0 and result.stdout.startswith("understudy ")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"UNDERSTUDY_PORT": "eighty"}, "UNDERSTUDY_PORT"),
        ({"UNDERSTUDY_ROLLOUT__PERCENT": "150"}, "UNDERSTUDY_ROLLOUT__PERCENT"),
        ({"UNDERSTUDY_ROLLOUT__MODE": "sideways"}, "UNDERSTUDY_ROLLOUT__MODE"),
        ({"UNDERSTUDY_NOISE_RATE": "2"}, "UNDERSTUDY_NOISE_RATE"),
        ({"UNDERSTUDY_PRIMARY__BASE_URL": "ftp://x"}, "UNDERSTUDY_PRIMARY__BASE_URL"),
        ({"UNDERSTUDY_CANDIDATES": "[{not json"}, "UNDERSTUDY_CANDIDATES"),
        (
            {
                "UNDERSTUDY_CANDIDATES": json.dumps(
                    [{"name": "a", "base_url": "http://x", "api_key": SECRET, "kind": "grpc"}]
                )
            },
            "UNDERSTUDY_CANDIDATES__0__KIND",
        ),
        (
            {"UNDERSTUDY_ROLLOUT__MODE": "shadow", "UNDERSTUDY_ROLLOUT__CANDIDATE": "ghost"},
            "UNDERSTUDY",
        ),
    ],
)
def test_bad_setting_exits_2_with_one_line_naming_it(env: dict[str, str], named: str) -> None:
    result = understudy("serve", env={"UNDERSTUDY_PRIMARY__API_KEY": SECRET, **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_a_config_error(tmp_path: object) -> None:
    result = understudy("serve", "--config", "/nonexistent/understudy.toml")
    assert result.returncode == 2 and "--config" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_from_a_toml_file_answers_and_stops_on_sigterm(tmp_path: os.PathLike[str]) -> None:
    fake = FakeOpenAI()
    port = free_port()
    with ThreadedServer(fake.app) as upstream:
        config = os.path.join(tmp_path, "understudy.toml")
        with open(config, "w") as f:
            f.write(
                f'port = {port}\n[primary]\nbase_url = "{upstream.url}/v1"\napi_key = "{SECRET}"\n'
            )
        proc = subprocess.Popen(
            [sys.executable, "-m", "understudy.cli", "serve", "--config", config],
            env={**os.environ, "UNDERSTUDY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/u.db"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        assert r.status == 200
                        break
                except OSError:
                    assert time.monotonic() < deadline, (
                        proc.stderr.read() if proc.poll() else "no answer"
                    )
                    time.sleep(0.1)
            body = json.dumps(
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            )
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as r:
                assert json.loads(r.read())["object"] == "chat.completion"
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert fake.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e["event"] == "exchange"] == ["exchange"]
    assert SECRET not in err + out
