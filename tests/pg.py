"""A throwaway PostgreSQL cluster for tests and benchmarks.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to
the ``postgres`` user and every server command runs through ``runuser``.
CI needs the server binaries: ``apt-get install -y postgresql-15``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

PG_VERSIONS = ("15", "16", "17", "14", "13")
INSTALL_HINT = "install the server binaries, e.g. `apt-get install -y postgresql-15`"


class PostgresUnavailable(RuntimeError):
    """The binaries or the ``postgres`` user needed to start a cluster are missing."""


def find_bin_dir() -> Path:
    env = os.environ.get("UNDERSTUDY_PG_BIN")
    candidates = [Path(env)] if env else []
    candidates += [Path(f"/usr/lib/postgresql/{v}/bin") for v in PG_VERSIONS]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    raise PostgresUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only.

    ``durable=False`` turns off fsync for fast tests; committed data still
    survives ``kill()`` (the OS keeps it), just not a power cut.
    """

    def __init__(self, *, database: str = "understudy", durable: bool = False) -> None:
        self.bin_dir = find_bin_dir()
        self.database = database
        self.durable = durable
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                import pwd

                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root needs a `postgres` user to own the cluster: {INSTALL_HINT}"
                ) from None
        self.base = Path(tempfile.mkdtemp(prefix="understudy-pg-"))
        self.data_dir = self.base / "data"
        self.port = free_port()
        self.log_file = self.base / "server.log"
        self._initialised = False
        if self.as_root:
            os.chown(self.base, self._owner.pw_uid, self._owner.pw_gid)

    # -- commands ---------------------------------------------------------------

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.base)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n"
                f"{self._log_tail()}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            return "server log:\n" + "\n".join(self.log_file.read_text().splitlines()[-20:])
        except OSError:
            return ""

    def _options(self) -> str:
        opts = [
            f"-p {self.port}",
            f"-k {self.base}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
        ]
        if not self.durable:
            # Not synchronous_commit=off: that loses acknowledged commits on kill().
            opts += ["-c fsync=off", "-c full_page_writes=off"]
        return " ".join(opts)

    def start(self) -> None:
        if not self._initialised:
            initdb = ["-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
            self._run("initdb", *initdb, "--no-sync")
            self._initialised = True
            self._run_pg_ctl_start()
            self._run("createdb", *self._client(), self.database)
        else:
            self._run_pg_ctl_start()

    def _run_pg_ctl_start(self) -> None:
        log = ["-l", str(self.log_file)]
        self._run("pg_ctl", "-D", str(self.data_dir), *log, "-o", self._options(), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode`` is pg_ctl's: smart, fast or immediate."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> None:
        """Stop at once, like a crash: no checkpoint, clients cut off."""
        self.stop("immediate")

    def restart(self) -> None:
        self.start()

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL not ready after {timeout_s}s\n{self._log_tail()}")

    def cleanup(self) -> None:
        if self._initialised:
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # -- databases --------------------------------------------------------------

    def _client(self) -> list[str]:
        return ["-h", str(self.base), "-p", str(self.port), "-U", "postgres"]

    def psql(self, sql: str, database: str = "postgres") -> str:
        args = ["-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        return self._run("psql", *self._client(), *args).stdout

    def create_database(self, name: str) -> str:
        self._run("createdb", *self._client(), name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self._run("dropdb", *self._client(), "--if-exists", "--force", name, check=False)

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
