"""`serve` refuses a PostgreSQL database behind the code; SQLite upgrades itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from migrations import current, head_revision


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "understudy.cli", "serve"],
        env={**os.environ, "UNDERSTUDY_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_a_postgres_database_behind_the_code(pg_url: str, tmp_path: Path) -> None:
    result = serve(
        {"UNDERSTUDY_DATABASE_URL": pg_url, "UNDERSTUDY_STORAGE__SPILL_DIR": str(tmp_path)}
    )
    assert result.returncode == 1
    assert "run `understudy db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr
    assert pg_url.split("@")[0] not in result.stderr  # credentials are never echoed


async def test_embedded_sqlite_is_upgraded_on_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "understudy.cli", "serve"],
        env={
            **os.environ,
            "UNDERSTUDY_PORT": "0",
            "UNDERSTUDY_DATABASE_URL": url,
            "UNDERSTUDY_STORAGE__SPILL_DIR": str(tmp_path / "spill"),
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if '"listening"' in line:
                break
        assert await current(url) == head_revision()
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode == 0
