"""Where the proxy spends its CPU: a py-spy flame graph of Understudy under the bench's load.

Starts a mock upstream and ``understudy serve`` shadowing 100 % with SQLite recording,
drives it at --rate req/s (streaming and not, alternating runs), and samples every
process of the server (the proxy and its recorder) with py-spy. The flame graph (SVG)
goes to bench/results/; ``--format raw`` writes collapsed stacks (one line per stack
and its sample count: easier to sum up by function) and ``--format speedscope`` a file
for speedscope.app. Run: python -m bench.profile [--duration 20] [--rate 200]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import peers
from bench.proxy_bench import RESULTS

# py-spy's output formats and the file each is written to.
_SUFFIXES = {"flamegraph": ".svg", "raw": ".txt", "speedscope": ".speedscope.json"}


def _py_spy() -> str:
    """py-spy's binary, installed beside this Python by the bench extra."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        sys.exit("py-spy is not installed: pip install --require-hashes -r requirements.lock")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds sampled")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    parser.add_argument("--stream", action="store_true", help="streaming requests only")
    parser.add_argument(
        "--format",
        choices=sorted(_SUFFIXES),
        default="flamegraph",
        help="py-spy's output: an SVG flame graph, collapsed stacks, or speedscope JSON",
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    kind = "stream" if args.stream else "plain"
    out = RESULTS / f"flame-{kind}-{time.strftime('%Y%m%d-%H%M%S')}{_SUFFIXES[args.format]}"
    with (
        peers.mock() as (mock, _),
        tempfile.TemporaryDirectory() as db_dir,
        peers.understudy(mock, mock, db_dir) as (url, pid),
    ):
        peers.load(url, "--open", str(args.rate), "--duration", "2")  # warm up first
        spy = subprocess.Popen(
            [
                _py_spy(),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--duration",
                str(int(args.duration)),
                "--rate",
                "250",
                "--nonblocking",
                "--format",
                args.format,
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        extra = ["--stream"] if args.stream else []
        run = peers.load(url, "--open", str(args.rate), "--duration", str(args.duration), *extra)
        _, errors = spy.communicate(timeout=args.duration + 60)
    if spy.returncode != 0:
        sys.exit(f"py-spy failed: {errors.strip()}")
    sys.stdout.write(
        f"{run['requests']} requests at {args.rate:g} req/s, p50 {run['p50_ms']:.2f} ms; "
        f"profile: {out}\n"
    )


if __name__ == "__main__":
    main()
