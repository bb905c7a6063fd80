"""Understudy's composition root: settings, CLI and wiring."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("understudy")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
