"""Append-only JSONL spill files: where exchanges wait while the database cannot take them.

Several parties touch the same folder: this process's writer (append, replay),
other processes sharing it, and ``understudy purge``. Each file operation
holds an exclusive ``flock`` on the file and checks, once locked, that the path
still names the file it opened; a file that was replayed (unlinked) or
rewritten (renamed over) meanwhile is opened again. POSIX only.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPILL_PREFIX = "spill-"
REJECTED_PREFIX = "rejected-"  # records the database refused; kept for a person, not replayed
SUFFIX = ".jsonl"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_locked(path: Path, flags: int) -> int | None:
    """An fd on ``path`` holding its exclusive lock, or None if the file is gone."""
    while True:
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # replaced or removed while we waited: look again


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _lines(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8", "replace").split("\n") if line.strip()]


@dataclass
class Claim:
    """A spill file locked for replay: ``commit()`` deletes it, ``release()`` keeps it."""

    path: Path
    lines: list[str]
    _fd: int

    def commit(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
            _fsync_dir(self.path.parent)
        finally:
            self.release()

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)  # closing drops the flock


class SpillDir:
    """The spill folder of one process; safe to call from several threads."""

    def __init__(
        self,
        directory: Path,
        *,
        max_lines_per_file: int = 10_000,
        max_bytes_per_file: int = 64 * 1024 * 1024,
    ) -> None:
        self.directory = Path(directory)
        # Replay reads a whole file at once: these bound its memory.
        self.max_lines_per_file = max_lines_per_file
        self.max_bytes_per_file = max_bytes_per_file
        self._lock = threading.Lock()
        self._current: dict[str, tuple[Path, int, int]] = {}  # path, lines, bytes
        self._seq = 0

    def _target(self, prefix: str) -> tuple[Path, int, int]:
        current = self._current.get(prefix)
        if (
            current is None
            or current[1] >= self.max_lines_per_file
            or current[2] >= self.max_bytes_per_file
            or not current[0].exists()
        ):
            self._seq += 1
            name = f"{prefix}{time.time_ns():020d}-{os.getpid()}-{self._seq}{SUFFIX}"
            current = (self.directory / name, 0, 0)
        return current

    def append(self, lines: Sequence[str], *, prefix: str = SPILL_PREFIX) -> None:
        """Append JSON lines and fsync them; raises OSError (disk full, bad folder)."""
        if not lines:
            return
        payload = "".join(line + "\n" for line in lines).encode("utf-8")
        with self._lock:
            if not self.directory.is_dir():
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path, count, _ = self._target(prefix)
            created = not path.exists()
            fd = _open_locked(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
            if fd is None:  # unreachable with O_CREAT; keeps the type checker honest
                raise FileNotFoundError(path)
            try:
                on_disk = os.fstat(fd).st_size
                # A line torn by a crash must not swallow the first new record.
                if on_disk and os.pread(fd, 1, on_disk - 1) != b"\n":
                    payload = b"\n" + payload
                _write_all(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.directory)
            self._current[prefix] = (path, count + len(lines), on_disk + len(payload))

    def files(self, prefix: str = SPILL_PREFIX) -> list[Path]:
        """Spill files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{prefix}*{SUFFIX}"))

    def all_files(self) -> list[Path]:
        return self.files(SPILL_PREFIX) + self.files(REJECTED_PREFIX)

    def claim(self, path: Path) -> Claim | None:
        """Lock a file and read it; None if it vanished (replayed by someone else)."""
        fd = _open_locked(path, os.O_RDWR)
        if fd is None:
            return None
        try:
            lines = _lines(_read_all(fd))
        except BaseException:
            os.close(fd)
            raise
        return Claim(path=path, lines=lines, _fd=fd)

    def pending(self) -> bool:
        return bool(self.files())

    def remove_records(self, drop: Callable[[dict[str, Any] | None], bool]) -> int:
        """Rewrite every file without the records ``drop`` selects; returns how many went.

        ``drop`` gets each record as parsed JSON, or None for a line that is not JSON.
        """
        removed = 0
        for path in self.all_files():
            removed += self._rewrite(path, drop)
        return removed

    def _rewrite(self, path: Path, drop: Callable[[dict[str, Any] | None], bool]) -> int:
        fd = _open_locked(path, os.O_RDWR)
        if fd is None:
            return 0
        try:
            lines = _lines(_read_all(fd))
            kept = [line for line in lines if not drop(_parse(line))]
            if len(kept) == len(lines):
                return 0
            if kept:
                tmp = path.with_name(f".{path.name}.tmp")
                tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    _write_all(tmp_fd, "".join(line + "\n" for line in kept).encode("utf-8"))
                    os.fsync(tmp_fd)
                finally:
                    os.close(tmp_fd)
                os.replace(tmp, path)
            else:
                path.unlink()
            _fsync_dir(path.parent)
            return len(lines) - len(kept)
        finally:
            os.close(fd)

    def count_records(self) -> int:
        return sum(len(_lines(p.read_bytes())) for p in self.all_files())

    def iter_lines(self) -> Iterator[str]:
        for path in self.all_files():
            yield from _lines(path.read_bytes())


def _parse(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
