"""Helpers every subcommand shares: loading settings and reporting config errors."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from core import ConfigError
from storage.timespec import parse_when
from understudy.settings import Settings, load_settings

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_CONFIG = 2


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="a TOML settings file"
    )


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Load settings, or exit 2 with one line naming the bad setting (never its value)."""
    try:
        return load_settings(getattr(args, "config", None), **overrides)
    except ConfigError as exc:
        sys.stderr.write(f"understudy: configuration error: {exc}\n")
        raise SystemExit(EXIT_CONFIG) from None


def when(text: str) -> Any:
    """An argparse type for ``--since``/``--until``: an ISO 8601 time or an age like 24h."""
    try:
        return parse_when(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None``: strict JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def strict_json(data: Any, *, indent: int | None = 2) -> str:
    """Standard JSON for command output; ``allow_nan=False`` makes any slip fail loudly."""
    return json.dumps(finite(data), indent=indent, ensure_ascii=False, allow_nan=False)
