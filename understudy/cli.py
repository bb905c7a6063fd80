"""The ``understudy`` command line. Each subcommand lives in ``understudy/commands/``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from understudy import __version__

# One module per subcommand; each exposes ``register(subparsers)`` which sets ``func``.
COMMAND_MODULES = (
    "understudy.commands.serve",
    "understudy.commands.demo",
    "understudy.commands.db",
    "understudy.commands.exchanges",
    "understudy.commands.purge",
    "understudy.commands.report",
    "understudy.commands.judge",
    "understudy.commands.rollout",
    "understudy.commands.reviewers",
    "understudy.commands.replay",
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that subcommand's module is imported.

    Command modules import heavy libraries (aiohttp, SQLAlchemy, scipy): loading
    only the one being run keeps every command quick to start.
    """
    parser = argparse.ArgumentParser(
        prog="understudy",
        description="A drop-in OpenAI proxy that shadows and rolls out self-hosted models.",
    )
    parser.add_argument("--version", action="version", version=f"understudy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = [m for m in COMMAND_MODULES if m.rsplit(".", 1)[1] == command]
    for module_name in chosen or COMMAND_MODULES:
        import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
