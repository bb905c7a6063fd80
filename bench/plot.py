"""The benchmark's pictures: latency distributions per peer, and a soak's memory over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter


def _ecdf(ax: Any, values: list[float], label: str) -> None:
    ordered = np.sort(np.asarray(values))
    ax.step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label=label)


def plot_distributions(
    rounds: list[dict[str, dict[str, Any]]], peers: tuple[str, ...], out: Path
) -> None:
    """Latency (non-streaming) and time to first token (streaming) CDFs, every round pooled."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, key, title in (
        (axes[0], "latency_samples_ms", "latency, non-streaming"),
        (axes[1], "ttft_samples_ms", "time to first token, streaming"),
    ):
        for peer in peers:
            _ecdf(ax, [v for r in rounds for v in r[peer][key]], peer)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.set_xlabel("ms (log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_soak(outcome: dict[str, Any], out: Path) -> None:
    samples = outcome["samples"]
    t = [s["t_s"] / 60 for s in samples]
    fig, rss = plt.subplots(figsize=(8, 4), constrained_layout=True)
    rss.plot(t, [s["rss_mb"] for s in samples], color="tab:blue", label="RSS (MB)")
    rss.set_xlabel("minutes")
    rss.set_ylabel("RSS (MB)")
    files = rss.twinx()
    files.plot(t, [s["open_files"] for s in samples], color="tab:orange", label="open files")
    for kind, style in (("clients", ":"), ("upstreams", "--")):
        files.plot(
            t,
            [s[f"open_files_{kind}"] for s in samples],
            color="tab:orange",
            linestyle=style,
            label=f"of which from {kind}" if kind == "clients" else f"of which to {kind}",
        )
    files.set_ylabel("open files")
    rss.set_title(f"soak at {outcome['rate']:g} req/s")
    fig.legend(loc="lower right")
    fig.savefig(out, dpi=110)
    plt.close(fig)
