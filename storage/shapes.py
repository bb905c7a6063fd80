"""Few statement shapes for batches of any size.

A multi-row ``INSERT ... VALUES (...), (...)`` and an ``IN (...)`` of bound ids have
SQL text that depends on how many rows or ids they carry. The database driver keeps a
prepared statement per distinct text (sqlite3 128 per connection, asyncpg 100), so a
writer whose batches come in every size from 1 to 256 prepares statements again and
again, and the caches fill with hundreds of near-copies (about 9 MB in the recorder
before this). Sizes that are powers of two keep it to a handful of shapes, each
prepared once.
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


def padded_to_power_of_two(items: Sequence[T]) -> list[T]:
    """``items`` with its last one repeated up to the next power of two in length:
    for a set membership test (``IN``), where a repeat changes nothing."""
    padded = list(items)
    if padded:
        padded += [padded[-1]] * ((1 << (len(padded) - 1).bit_length()) - len(padded))
    return padded
