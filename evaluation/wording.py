"""Numbers in plain words, by unit, for reasons and rendered reports."""

from __future__ import annotations

import math


def fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "unbounded"
    match unit:
        case "ratio":
            return f"{(value - 1.0) * 100:+.1f}%"
        case "difference":
            return f"{value * 100:+.2f} points"
        case "share":
            return f"{value * 100:.1f}%"
        case "ms":
            return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.2f} ms"
        case "usd":
            return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"
    return f"{value:.3g}"


def fmt_interval(lower: float | None, upper: float | None, unit: str) -> str:
    return f"{fmt(lower, unit)} to {fmt(upper, unit)}"
