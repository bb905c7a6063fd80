"""Reading databases and spill folders back in tests, without going through the code under test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import text

from storage.database import Database
from storage.models import metadata


async def dump_all_text(db: Database) -> str:
    """Every value of every table, as the database returns it raw, in one string."""
    parts: list[str] = []
    async with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            result = await conn.execute(text(f"SELECT * FROM {table.name}"))
            for row in result:
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


async def count_rows(db: Database, table: str, where: str = "") -> int:
    async with db.engine.connect() as conn:
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int((await conn.execute(text(sql))).scalar_one())


async def exchange_ids(db: Database) -> list[str]:
    """Every stored exchange id as text, duplicates kept (there must be none)."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id FROM exchanges"))).scalars().all()
    return [str(r).replace("-", "") for r in rows]


def spill_text(directory: Path) -> str:
    if not directory.exists():
        return ""
    return "\n".join(p.read_text() for p in sorted(directory.iterdir()) if p.is_file())


def spill_records(directory: Path, prefix: str = "spill-") -> list[dict[str, Any]]:
    if not directory.exists():
        return []
    records = []
    for path in sorted(directory.glob(f"{prefix}*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records
