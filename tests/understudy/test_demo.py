"""`understudy demo` serves traffic through the proxy and records the pairs it makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def understudy(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "understudy.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_serves_and_records_pairs(tmp_path: Path) -> None:
    demo = understudy("demo", "--duration", "4", "--rate", "10", "--port", "0", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "curl -s http://127.0.0.1:" in demo.stdout
    assert "demo finished: answers by" in demo.stdout
    assert (tmp_path / "understudy.db").exists()

    listed = understudy("exchanges", "list", "--format", "json", "--limit", "500", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    exchanges = json.loads(listed.stdout)
    assert len(exchanges) >= 10
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


def test_each_demo_run_follows_its_own_mode_on_a_reused_database(tmp_path: Path) -> None:
    shadow = understudy("demo", "--duration", "3", "--rate", "10", "--port", "0", cwd=tmp_path)
    assert shadow.returncode == 0, shadow.stderr
    split = understudy(
        "demo", "--duration", "4", "--rate", "10", "--port", "0", "--mode", "split", cwd=tmp_path
    )
    assert split.returncode == 0, split.stderr
    [finished] = [line for line in split.stdout.splitlines() if "demo finished" in line]
    answers = json.loads(finished.split("answers by ", 1)[1])
    assert answers.get("local-llama", 0) > 0  # 25 % of users go to the candidate in split

    history = understudy("rollout", "history", "--json", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    reasons = [entry["reason"] for entry in json.loads(history.stdout)]
    assert "understudy demo --mode split" in reasons
    assert "understudy demo --mode shadow" in reasons
