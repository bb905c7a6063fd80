"""Added latency and throughput of the proxy, against calling the upstream directly.

Every case runs in the same session, each server in its own process:
  direct     the load generator calls the mock upstream
  floor      a bare aiohttp pass-through that mirrors every request (the Python floor)
  off        Understudy with shadowing off
  shadow     Understudy mirroring 100 % of requests to a candidate

Run: python -m bench.proxy_bench [--duration 10] [--rate 200] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def load(url: str, extra: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [PY, "-m", "bench.load", url, *extra], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def measure(url: str, args: argparse.Namespace, pid: int) -> dict[str, float]:
    d = str(args.duration)
    cpu_before = cpu_seconds(pid)
    latency = load(url, ["--open", str(args.rate), "--duration", d])
    # CPU per request is steady even when other work shares the machine.
    cpu_us = (cpu_seconds(pid) - cpu_before) / (latency["requests"] + 50) * 1e6
    stream = load(url, ["--open", str(args.rate), "--duration", d, "--stream"])
    closed = load(url, ["--closed", str(args.concurrency), "--duration", d])
    return {
        "cpu_us_per_request": cpu_us,
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "ttft_p50_ms": stream["ttft_p50_ms"],
        "max_rps": closed["rps"],
        "errors": latency["errors"] + stream["errors"] + closed["errors"],
    }


def understudy_env(mock: str, mode: str, port: int, db_dir: str, record: bool) -> dict[str, str]:
    env = {
        "UNDERSTUDY_PORT": str(port),
        "UNDERSTUDY_PRIMARY__BASE_URL": f"{mock}/v1",
        "UNDERSTUDY_PRIMARY__API_KEY": "sk-bench",
        "UNDERSTUDY_CANDIDATES": json.dumps(
            [{"name": "candidate", "base_url": f"{mock}/v1", "max_concurrency": 512}]
        ),
        "UNDERSTUDY_ROLLOUT__MODE": mode,
        "UNDERSTUDY_ROLLOUT__SHADOW_RATE": "1.0",
        "UNDERSTUDY_DATABASE_URL": f"sqlite+aiosqlite:///{db_dir}/bench.db",
        "UNDERSTUDY_STORAGE__SPILL_DIR": f"{db_dir}/spill",
        "UNDERSTUDY_LOG_FORMAT": "json",
    }
    if not record:
        env["UNDERSTUDY_STORAGE__ENABLED"] = "false"
    return env


def run_round(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Every case once, each server in a fresh process."""
    results: dict[str, dict[str, float]] = {}
    mock_port = free_port()
    mock = f"http://127.0.0.1:{mock_port}"
    with process([PY, "-m", "bench.mock_upstream", str(mock_port)], mock_port) as mock_proc:
        results["direct"] = measure(mock, args, mock_proc.pid)
        port = free_port()
        floor_cmd = [PY, "-m", "bench.mirror_floor", str(port), f"{mock}/v1", f"{mock}/v1"]
        with process(floor_cmd, port) as proc:
            results["floor"] = measure(f"http://127.0.0.1:{port}", args, proc.pid)
        for case, mode, record in args.cases:
            port = free_port()
            with tempfile.TemporaryDirectory() as db_dir:
                env = understudy_env(mock, mode, port, db_dir, record)
                with process([PY, "-m", "understudy.cli", "serve"], port, env) as proc:
                    results[case] = measure(f"http://127.0.0.1:{port}", args, proc.pid)
    return results


def run_cases(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Medians over interleaved rounds: on a small shared machine single runs swing widely."""
    rounds = [run_round(args) for _ in range(args.rounds)]
    return {
        case: {
            metric: statistics.median(r[case][metric] for r in rounds) for metric in rounds[0][case]
        }
        for case in rounds[0]
    }


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    direct, floor = results["direct"], results["floor"]
    lines = [
        f"open loop {args.rate:g} req/s and closed loop {args.concurrency} clients, "
        f"{args.duration:g} s each; medians of {args.rounds} rounds; non-streaming unless noted",
        "",
        "| case | p50 ms (added) | p99 ms (added) | stream TTFT p50 ms (added) "
        "| max req/s (x direct, x floor) | CPU µs/request | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, r in results.items():
        lines.append(
            f"| {case} | {r['p50_ms']:.2f} (+{r['p50_ms'] - direct['p50_ms']:.2f}) "
            f"| {r['p99_ms']:.2f} (+{r['p99_ms'] - direct['p99_ms']:.2f}) "
            f"| {r['ttft_p50_ms']:.2f} (+{r['ttft_p50_ms'] - direct['ttft_p50_ms']:.2f}) "
            f"| {r['max_rps']:.0f} ({r['max_rps'] / direct['max_rps']:.2f}x, "
            f"{r['max_rps'] / floor['max_rps']:.2f}x) | {r['cpu_us_per_request']:.0f} "
            f"| {r['errors']:.0f} |"
        )
    shadow = results.get("shadow")
    if shadow is not None:
        checks = [
            ("added p50 <= 1 ms", shadow["p50_ms"] - direct["p50_ms"] <= 1.0),
            ("added p99 <= 5 ms", shadow["p99_ms"] - direct["p99_ms"] <= 5.0),
            ("added TTFT p50 <= 1.5 ms", shadow["ttft_p50_ms"] - direct["ttft_p50_ms"] <= 1.5),
            ("max throughput >= 60 % of floor", shadow["max_rps"] >= 0.6 * floor["max_rps"]),
        ]
        lines.append("")
        lines.extend(f"{'met ' if ok else 'MISSED'}  {name} (shadow 100 %)" for name, ok in checks)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = parser.parse_args()
    args.cases = [
        ("off", "off", True),
        ("shadow", "shadow", True),
        ("shadow, not recording", "shadow", False),
    ]
    results = run_cases(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    sys.stdout.write(report(results, args) + "\n")


if __name__ == "__main__":
    main()
