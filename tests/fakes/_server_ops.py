"""What model servers answer beside their API: a health check and Prometheus metrics.

vLLM, TGI and llama.cpp's server answer `GET /health` with 200 once the model is
loaded (503 before); all three serve their metrics at `GET /metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web


def prometheus_text(samples: Mapping[str, float]) -> str:
    """Exposition text for samples keyed by name and labels, e.g.
    ``'vllm:num_requests_waiting{model_name="m",engine="0"}'``. A name ending in
    ``_total`` is a counter (its family is the name without it), any other a gauge."""
    lines: list[str] = []
    typed: set[str] = set()
    for key, value in samples.items():
        name = key.split("{", 1)[0]
        family, kind = (
            (name[: -len("_total")], "counter") if name.endswith("_total") else (name, "gauge")
        )
        if family not in typed:
            typed.add(family)
            lines.append(f"# HELP {family} {family}")
            lines.append(f"# TYPE {family} {kind}")
        lines.append(f"{key} {value!r}")
    return "\n".join(lines) + "\n"


def health_response(status: int) -> web.Response:
    """llama.cpp's shapes: ``{"status": "ok"}``, or its error while the model loads."""
    if status == 200:
        return web.json_response({"status": "ok"})
    error = {"code": status, "message": "Loading model", "type": "unavailable_error"}
    return web.json_response({"error": error}, status=status)


def metrics_response(samples: Mapping[str, float]) -> web.Response:
    return web.Response(text=prometheus_text(samples), content_type="text/plain", charset="utf-8")
