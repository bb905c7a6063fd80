"""What the proxy adds, against calling the upstream directly and against the Python floor.

Three peers, each server in its own process, interleaved over several rounds:
  direct      the load generator calls a fast mock upstream
  floor       a bare aiohttp pass-through that also mirrors every request (bench/mirror_floor.py)
  understudy  `understudy serve` in shadow mode at 100 %, recording into SQLite

  --workers N   a fourth peer, "workers": the same `understudy serve` with N worker
                processes, whose CPU per request is compared with one worker's

Each round measures every peer at --rate req/s open loop (non-streaming, then streaming)
and at --concurrency clients closed loop. The table gives medians over rounds with their
range; "added" figures are a peer's minus direct's in the same round. CPU per request
counts the peer's whole process tree, so work handed to a child process is charged too.

  --scenarios   also: the primary answering in 20 ms with the candidate fast, 10x slower,
                or hung; the primary's added latency through Understudy in each
  --soak        only a soak: --rate req/s for --soak-seconds, RSS and open files every 10 s

Results (JSON and a PNG) go to bench/results/. Run: python -m bench.proxy_bench
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import peers
from bench.soak import soak

RESULTS = Path(__file__).resolve().parent / "results"
PEERS = ("direct", "floor", "understudy")
PRIMARY_DELAY_MS = 20.0  # the scenarios' primary; the candidate is 10x slower or hung


def measure(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """One peer: open loop non-streaming and streaming, then closed loop."""
    d, rate = str(args.duration), str(args.rate)
    figures: dict[str, Any] = {}
    for kind, extra in (("plain", ()), ("stream", ("--stream",))):
        before = peers.cpu_seconds(pid)
        run = peers.load(url, "--open", rate, "--duration", d, "--samples", *extra)
        used = peers.cpu_seconds(pid) - before
        requests = float(run["requests"]) + 50  # type: ignore[arg-type]  # plus the warm-up
        figures[f"cpu_us_{kind}"] = used / requests * 1e6
        figures[f"errors_{kind}"] = run["errors"]
        if kind == "plain":
            figures |= {k: run[k] for k in ("p50_ms", "p99_ms", "latency_samples_ms")}
        else:
            figures |= {
                "ttft_p50_ms": run["ttft_p50_ms"],
                "ttft_samples_ms": run["ttft_samples_ms"],
            }
    closed = peers.load(url, "--closed", str(args.concurrency), "--duration", d)
    figures["max_rps"] = closed["rps"]
    figures["errors_closed"] = closed["errors"]
    return figures


def peer_names(args: argparse.Namespace) -> tuple[str, ...]:
    return (*PEERS, "workers") if args.workers > 1 else PEERS


def run_round(args: argparse.Namespace, index: int) -> dict[str, dict[str, Any]]:
    """Every peer once against one fresh mock, in an order that rotates between rounds."""
    results: dict[str, dict[str, Any]] = {}
    names = peer_names(args)
    with (
        peers.mock() as (mock, mock_pid),
        tempfile.TemporaryDirectory() as one,
        tempfile.TemporaryDirectory() as several,
    ):
        starts: dict[str, Callable[[], contextlib.AbstractContextManager[tuple[str, int]]]] = {
            "direct": lambda: contextlib.nullcontext((mock, mock_pid)),
            "floor": lambda: peers.floor(mock, mock),
            "understudy": lambda: peers.understudy(mock, mock, one),
            "workers": lambda: peers.understudy(mock, mock, several, workers=args.workers),
        }
        turn = index % len(names)
        for peer in names[turn:] + names[:turn]:
            with starts[peer]() as (url, pid):
                results[peer] = measure(url, pid, args)
    return {peer: results[peer] for peer in names}


def _added(rounds: list[dict[str, dict[str, Any]]], peer: str, key: str) -> list[float]:
    return [float(r[peer][key]) - float(r["direct"][key]) for r in rounds]


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per peer: medians and ranges of each figure over the rounds."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for peer in rounds[0]:
        figures = {
            "added_p50_ms": _added(rounds, peer, "p50_ms"),
            "added_p99_ms": _added(rounds, peer, "p99_ms"),
            "added_ttft_p50_ms": _added(rounds, peer, "ttft_p50_ms"),
            "cpu_us_plain": [float(r[peer]["cpu_us_plain"]) for r in rounds],
            "cpu_us_stream": [float(r[peer]["cpu_us_stream"]) for r in rounds],
            "max_rps": [float(r[peer]["max_rps"]) for r in rounds],
            "errors": [
                float(r[peer]["errors_plain"] + r[peer]["errors_stream"] + r[peer]["errors_closed"])
                for r in rounds
            ],
        }
        summary[peer] = {name: _spread(values) for name, values in figures.items()}
    return summary


def targets(summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, tuple[str, bool]]:
    """The targets on medians: figure -> (target, met)."""
    f, u = summary["floor"], summary["understudy"]

    def m(peer: dict[str, dict[str, float]], key: str) -> float:
        return peer[key]["median"]

    checks = [
        ("added p50, non-streaming", "<= +1.0 ms", m(u, "added_p50_ms") <= 1.0),
        (
            "added p99, non-streaming",
            f"<= the floor's + 2 ms ({m(f, 'added_p99_ms') + 2:+.2f})",
            m(u, "added_p99_ms") <= m(f, "added_p99_ms") + 2.0,
        ),
        (
            "added TTFT p50, streaming",
            f"<= the floor's + 0.5 ms ({m(f, 'added_ttft_p50_ms') + 0.5:+.2f})",
            m(u, "added_ttft_p50_ms") <= m(f, "added_ttft_p50_ms") + 0.5,
        ),
        (
            "CPU per request, non-streaming",
            f"<= 1.3x the floor's ({1.3 * m(f, 'cpu_us_plain'):.0f} µs)",
            m(u, "cpu_us_plain") <= 1.3 * m(f, "cpu_us_plain"),
        ),
        (
            "CPU per request, streaming",
            f"<= 1.3x the floor's ({1.3 * m(f, 'cpu_us_stream'):.0f} µs)",
            m(u, "cpu_us_stream") <= 1.3 * m(f, "cpu_us_stream"),
        ),
        (
            "max throughput, closed loop",
            f">= 0.75x the floor's ({0.75 * m(f, 'max_rps'):.0f} req/s)",
            m(u, "max_rps") >= 0.75 * m(f, "max_rps"),
        ),
    ]
    if (w := summary.get("workers")) is not None:
        for kind in ("plain", "stream"):
            key = f"cpu_us_{kind}"
            checks.append(
                (
                    f"CPU per request, {'non-streaming' if kind == 'plain' else 'streaming'}, "
                    "several workers",
                    f"<= 1.1x one worker's ({1.1 * m(u, key):.0f} µs)",
                    m(w, key) <= 1.1 * m(u, key),
                )
            )
    return {name: (target, met) for name, target, met in checks}


def _cell(s: dict[str, float], unit: str, signed: bool = False, digits: int = 2) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{fmt.format(s['median'])}{unit} ({fmt.format(s['min'])} to {fmt.format(s['max'])})"


def render(summary: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> str:
    direct, f, u = summary["direct"], summary["floor"], summary["understudy"]
    rows = [
        ("added p50, non-streaming", "added_p50_ms", " ms", True, 2),
        ("added p99, non-streaming", "added_p99_ms", " ms", True, 2),
        ("added TTFT p50, streaming", "added_ttft_p50_ms", " ms", True, 2),
        ("CPU per request, non-streaming", "cpu_us_plain", " µs", False, 0),
        ("CPU per request, streaming", "cpu_us_stream", " µs", False, 0),
        ("max throughput, closed loop", "max_rps", " req/s", False, 0),
    ]
    lines = [
        f"{args.rounds} rounds, interleaved; open loop {args.rate:g} req/s and closed loop "
        f"{args.concurrency} clients, {args.duration:g} s each; medians (range)",
        "",
        "| figure | floor | Understudy | Understudy ÷ floor | target | met |",
        "|---|---|---|---|---|---|",
    ]
    checked = targets(summary)
    for name, key, unit, signed, digits in rows:
        target, met = checked[name]
        # A ratio of two added latencies says little (either may be near zero or negative).
        ratio = "" if signed else f"{u[key]['median'] / f[key]['median']:.2f}x"
        lines.append(
            f"| {name} | {_cell(f[key], unit, signed, digits)} | "
            f"{_cell(u[key], unit, signed, digits)} | {ratio} | {target} | "
            f"{'met' if met else 'NOT MET'} |"
        )
    if (w := summary.get("workers")) is not None:
        lines += [
            "",
            f"| with --workers {args.workers} | one worker | {args.workers} workers | "
            f"{args.workers} ÷ one | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for kind, key in (("non-streaming", "cpu_us_plain"), ("streaming", "cpu_us_stream")):
            name = f"CPU per request, {kind}, several workers"
            target, met = checked[name]
            lines.append(
                f"| CPU per request, {kind} | {_cell(u[key], ' µs', False, 0)} | "
                f"{_cell(w[key], ' µs', False, 0)} | {w[key]['median'] / u[key]['median']:.2f}x | "
                f"{target} | {'met' if met else 'NOT MET'} |"
            )
        lines.append(
            f"| max throughput, closed loop | {_cell(u['max_rps'], ' req/s', False, 0)} | "
            f"{_cell(w['max_rps'], ' req/s', False, 0)} | "
            f"{w['max_rps']['median'] / u['max_rps']['median']:.2f}x | | |"
        )
    lines += [
        "",
        f"max throughput x direct: floor {f['max_rps']['median'] / direct['max_rps']['median']:.2f}x, "
        f"Understudy {u['max_rps']['median'] / direct['max_rps']['median']:.2f}x; "
        f"errors: floor {f['errors']['max']:.0f}, Understudy {u['errors']['max']:.0f} (worst round)",
    ]
    return "\n".join(lines)


def run_scenarios(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """The primary's added latency when the candidate is fast, 10x slower, or hung."""
    kinds = {
        "candidate fast": {"delay_ms": PRIMARY_DELAY_MS, "hang": False},
        "candidate 10x slower": {"delay_ms": 10 * PRIMARY_DELAY_MS, "hang": False},
        "candidate hung": {"delay_ms": 0.0, "hang": True},
    }
    added: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": []} for k in kinds}
    d, rate = str(args.duration), str(args.rate)
    for _ in range(args.rounds):
        for name, candidate in kinds.items():
            with (
                peers.mock(PRIMARY_DELAY_MS) as (primary, _),
                peers.mock(**candidate) as (slow, _),  # type: ignore[arg-type]
                tempfile.TemporaryDirectory() as db_dir,
            ):
                direct = peers.load(primary, "--open", rate, "--duration", d)
                with peers.understudy(primary, slow, db_dir) as (url, _):
                    through = peers.load(url, "--open", rate, "--duration", d)
            for q in ("p50", "p99"):
                added[name][q].append(
                    float(through[f"{q}_ms"]) - float(direct[f"{q}_ms"])  # type: ignore[arg-type]
                )
    return {name: {q: _spread(v) for q, v in qs.items()} for name, qs in added.items()}


def render_scenarios(scenarios: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        f"The primary answers in {PRIMARY_DELAY_MS:g} ms; Understudy shadows 100 % to the candidate.",
        "",
        "| candidate | primary's added p50 | primary's added p99 |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {_cell(s['p50'], ' ms', True)} | {_cell(s['p99'], ' ms', True)} |"
        for name, s in scenarios.items()
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def results_file(stem: str) -> Iterator[Path]:
    RESULTS.mkdir(exist_ok=True)
    yield RESULTS / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--scenarios", action="store_true", help="also a slow and a hung candidate")
    parser.add_argument("--soak", action="store_true", help="only the soak")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument(
        "--workers", type=int, default=1, help="also understudy serve --workers N (N > 1)"
    )
    args = parser.parse_args()
    from bench.plot import plot_distributions, plot_soak  # matplotlib loads only when run

    if args.soak:
        with results_file("soak") as stem:
            outcome = soak(args.rate, args.soak_seconds)
            stem.with_suffix(".json").write_text(json.dumps(outcome, indent=2))
            plot_soak(outcome, stem.with_suffix(".png"))
        sys.stdout.write(outcome["report"] + f"\nwrote {stem}.json and .png\n")
        return
    rounds = [run_round(args, i) for i in range(args.rounds)]
    summary = summarize(rounds)
    text = render(summary, args)
    payload: dict[str, Any] = {"arguments": vars(args), "summary": summary, "rounds": rounds}
    if args.scenarios:
        scenarios = run_scenarios(args)
        payload["scenarios"] = scenarios
        text += "\n\n" + render_scenarios(scenarios)
    with results_file("proxy_bench") as stem:
        stem.with_suffix(".json").write_text(json.dumps(payload))
        plot_distributions(rounds, peer_names(args), stem.with_suffix(".png"))
    sys.stdout.write(text + f"\n\nwrote {stem}.json and .png\n")


if __name__ == "__main__":
    main()
