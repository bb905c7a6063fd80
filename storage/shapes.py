"""Few statement shapes for batches of any size.

A multi-row ``INSERT ... VALUES (...), (...)`` has SQL text that depends on how many
rows it carries. The database driver keeps a prepared statement per distinct text
(sqlite3 128 per connection, asyncpg 100), so a writer whose batches come in every size
from 1 to 256 prepares statements again and again, and the caches fill with near-copies
(about 9 MB in the recorder before this, with the rollups' ``IN`` lists, which now bind
their ids as one parameter). Chunks whose sizes are powers of two keep it to a handful
of shapes, each prepared once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def power_of_two_chunks(items: Sequence[T], most: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive chunks, each as long as the largest power of two that
    fits in what is left and in ``most`` (itself a power of two)."""
    if most < 1 or most & (most - 1):
        raise ValueError(f"most must be a power of two, not {most}")
    start = 0
    while start < len(items):
        size = min(most, 1 << ((len(items) - start).bit_length() - 1))
        yield items[start : start + size]
        start += size
