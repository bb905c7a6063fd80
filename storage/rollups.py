"""Counts the overview reads, kept per time period as exchanges are written.

The overview's plots and cost add up over time, and counting them from every
observation takes seconds on a million exchanges. So the transaction that
writes exchanges also adds them here, per period of each grain in ``GRAINS``
(a minute up to a day, aligned to the epoch): calls by route, candidate,
upstream, role, failure, fallback and log-scale duration bin
(``activity_rollups``), and the primary-candidate pairs' token sums
(``pair_rollups``). A purge subtracts what it deletes in its own transaction,
and a migration or ``rebuild_rollups`` counts them from the rows.

Everything is computed by one SQL statement per table, from the rows just
written: the rules of what fails, which bin a duration falls in and what makes
a pair are the same expressions the reports use.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    Uuid,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import CompoundSelect, FromClause

from core import Role
from storage.models import ActivityRollupRow, PairRollupRow
from storage.report_sql import EXCHANGES, OBSERVATIONS, arm_role, epoch_seconds, failed_flag
from storage.ui_bins import bin_expression, period_expression
from storage.window import ExchangeWindow

ACTIVITY: Table = ActivityRollupRow.__table__  # type: ignore[assignment]
PAIRS: Table = PairRollupRow.__table__  # type: ignore[assignment]

# A minute for the last hour's plots, up to a day for everything recorded: a window
# reads the coarsest grain its time buckets and bounds allow. Each is a bucket width the
# overview draws, so a plot of at most 240 buckets reads at most 240 periods.
GRAINS = (60, 900, 3600, 6 * 3600, 86_400)
LATENCY = "latency"
TTFT = "ttft"
NO_BIN = -1
# The roles that are an arm answering (or failing) a client's request; NOISE is not one.
ARM_ROLES = (Role.SERVED, Role.SHADOW, Role.REVERSE_SHADOW, Role.FAILED_OVER)
PAIR_SUMS = (
    "primary_prompt",
    "primary_cached",
    "primary_uncached",
    "primary_completion",
    "candidate_prompt",
    "candidate_cached",
    "candidate_uncached",
    "candidate_completion",
)


def _grains(grains: Sequence[int]) -> FromClause:
    # Literal columns, not parameters: the grain is grouped by, and PostgreSQL would see
    # each rendering of a parameter as another expression.
    rows = [select(literal_column(str(g), Integer).label("grain_s")) for g in grains]
    return union_all(*rows).subquery("g")


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _text(value: str) -> ColumnElement[str]:
    return literal_column(f"'{value}'", String)


def _activity_rows(
    dialect: str, where: Sequence[ColumnElement[bool]], sign: int, ids: BindParameter[Any] | None
) -> CompoundSelect[Any]:
    """Per period of the finest grain, the rows' arms counted (times ``sign``) as ACTIVITY
    holds them."""
    e, o, g = EXCHANGES, OBSERVATIONS.alias("o"), _grains(GRAINS[:1])
    where = [*where, *_by_id(dialect, ids, e, o)]
    failed = failed_flag(o)
    common = (
        g.c.grain_s,
        period_expression(dialect, e.c.created_at, g.c.grain_s),
        e.c.route,
        func.coalesce(e.c.candidate, ""),
        o.c.upstream,
        o.c.role,
    )
    joined = e.join(o, o.c.exchange_id == e.c.id).join(g, true())
    is_arm = arm_role(o).in_([r.value for r in ARM_ROLES])
    # Failed calls get no latency bin: a timeout's latency is the timeout's.
    latency_bin = func.coalesce(
        case((failed == 0, bin_expression(dialect, o.c.latency_ms)), else_=None), NO_BIN
    )
    latency_keys = (*common, failed, _flag(e.c.fallback), latency_bin)
    latency = (
        _named(ACTIVITY, (*latency_keys[:-1], _text(LATENCY), latency_bin, func.count() * sign))
        .select_from(joined)
        .where(is_arm, *where)
        .group_by(*latency_keys)
    )
    # Constants are selected, never grouped by: PostgreSQL reads GROUP BY 0 as a position.
    ttft_bin = bin_expression(dialect, o.c.ttft_ms)
    zero = literal_column("0", Integer)
    ttft = (
        _named(ACTIVITY, (*common, zero, zero, _text(TTFT), ttft_bin, func.count() * sign))
        .select_from(joined)
        .where(is_arm, failed == 0, o.c.ttft_ms.is_not(None), *where)
        .group_by(*common, ttft_bin)
    )
    return union_all(latency, ttft)


def _by_id(
    dialect: str, ids: BindParameter[Any] | None, e: FromClause, *arms: FromClause
) -> list[Any]:
    """The exchanges and arms of the ids bound to ``ids``, each table named by them: a
    planner then starts from the ids whatever its statistics say, where one filter on the
    exchanges alone let PostgreSQL, on a young table, scan every arm."""
    if ids is None:
        return []
    return [_among(dialect, e.c.id, ids), *(_among(dialect, a.c.exchange_id, ids) for a in arms)]


def _among(dialect: str, column: ColumnElement[Any], ids: BindParameter[Any]) -> Any:
    """``column`` is one of the ids bound to ``ids`` as one parameter, whatever their
    number: a JSON array of the stored hex form on SQLite, a uuid[] on PostgreSQL.
    An ``IN`` of one parameter per id would make a new SQL text for every batch size,
    and bind each id again at every use, four times per statement."""
    if dialect == "sqlite":
        return column.in_(select(func.json_each(ids).table_valued("value").c.value))
    if dialect == "postgresql":
        return column == any_(ids)
    raise ValueError(f"no rollups for dialect {dialect!r}")


def _named(table: Table, values: Sequence[ColumnElement[Any]]) -> Select[Any]:
    """A select of ``values`` labelled as the table's columns, in its order."""
    return select(*(v.label(c.name) for v, c in zip(values, table.columns, strict=True)))


def _in_key_order(rows: Any, keys: int) -> Select[Any]:
    """The rows sorted by their key columns: concurrent writers then lock the rows they
    add to in one order, so two of them never wait on each other in a cycle."""
    found = rows.subquery("rows")
    columns = list(found.c)
    return select(*columns).order_by(*columns[:keys])


def _pair_rows(
    dialect: str, where: Sequence[ColumnElement[bool]], sign: int, ids: BindParameter[Any] | None
) -> Select[Any]:
    """Per period of the finest grain and candidate, the pairs' token sums (times ``sign``)
    as PAIRS holds them. A pair is as ``storage.report_sql.pair_join`` has it: the candidate's arm
    (a shadow, or what served) and the primary's (what served, or its reverse shadow)."""
    e, g = EXCHANGES, _grains(GRAINS[:1])
    primary, shadow = OBSERVATIONS.alias("p"), OBSERVATIONS.alias("c")
    where = [*where, *_by_id(dialect, ids, e, shadow, primary)]
    on_shadow = and_(
        shadow.c.exchange_id == e.c.id,
        arm_role(shadow).in_((Role.SHADOW.value, Role.SERVED.value)),
    )
    on_primary = and_(
        primary.c.exchange_id == e.c.id,
        or_(
            and_(arm_role(primary) == Role.SERVED.value, primary.c.upstream != shadow.c.upstream),
            arm_role(primary) == Role.REVERSE_SHADOW.value,
        ),
    )
    joined = e.join(shadow, on_shadow).join(primary, on_primary).join(g, true())
    known = and_(
        primary.c.prompt_tokens.is_not(None),
        primary.c.completion_tokens.is_not(None),
        shadow.c.completion_tokens.is_not(None),
    )
    keys = (
        g.c.grain_s,
        period_expression(dialect, e.c.created_at, g.c.grain_s),
        e.c.route,
        shadow.c.upstream,
        _flag(shadow.c.prompt_tokens.is_not(None)),
    )
    epoch = epoch_seconds(dialect, e.c.created_at)
    sums = [
        func.sum(case((known, value), else_=0)) * sign
        for arm in (primary, shadow)
        for value in _token_values(arm)
    ]
    return (
        _named(
            PAIRS,
            (
                *keys,
                func.count() * sign,
                func.min(epoch),
                func.max(epoch),
                func.sum(_flag(known)) * sign,
                *sums,
            ),
        )
        .select_from(joined)
        .where(*where)
        .group_by(*keys)
    )


def _token_values(arm: FromClause) -> tuple[ColumnElement[Any], ...]:
    """Prompt, cached, uncached and completion tokens, as the cost computation takes them."""
    cached = func.coalesce(arm.c.cached_tokens, 0)
    uncached = case((arm.c.prompt_tokens > cached, arm.c.prompt_tokens - cached), else_=0)
    return func.coalesce(arm.c.prompt_tokens, 0), cached, uncached, arm.c.completion_tokens


def _upsert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"no rollups for dialect {dialect!r}")


def _earlier(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((b < a, b), else_=a)


def _later(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((b > a, b), else_=a)


def rollup_statements(
    dialect: str,
    where: Sequence[ColumnElement[bool]],
    *,
    sign: int = 1,
    grains: Sequence[int] = GRAINS,
    ids: BindParameter[Any] | None = None,
) -> tuple[Insert, Insert]:
    """The two statements that add the exchanges ``where`` selects, and whose ids are
    bound to ``ids`` if given, to the rollups of ``grains`` (``sign`` -1: take them away;
    the pairs' first and last times are then left as they were).

    The rows are counted once, per period of the finest grain; each grain's periods add
    those up, a few rows each instead of another pass over the exchanges.
    """
    fine_activity = _activity_rows(dialect, where, sign, ids).subquery("fine")
    fine_pairs = _pair_rows(dialect, where, sign, ids).subquery("fine")
    activity = _upsert(dialect, ACTIVITY)
    activity_names = [c.name for c in ACTIVITY.columns]
    activity = activity.from_select(
        activity_names,
        _in_key_order(_activity_coarser(fine_activity, grains), len(ACTIVITY.primary_key)),
    )
    activity = activity.on_conflict_do_update(
        index_elements=[c.name for c in ACTIVITY.primary_key],
        set_={"calls": ACTIVITY.c.calls + activity.excluded.calls},
    )
    pairs = _upsert(dialect, PAIRS)
    pair_names = [c.name for c in PAIRS.columns]
    pairs = pairs.from_select(
        pair_names, _in_key_order(_pairs_coarser(fine_pairs, grains), len(PAIRS.primary_key))
    )
    added = {name: PAIRS.c[name] + pairs.excluded[name] for name in ("pairs", "n", *PAIR_SUMS)}
    pairs = pairs.on_conflict_do_update(
        index_elements=[c.name for c in PAIRS.primary_key],
        set_=added
        | {
            "first_s": _earlier(PAIRS.c.first_s, pairs.excluded.first_s),
            "last_s": _later(PAIRS.c.last_s, pairs.excluded.last_s),
        },
    )
    return activity, pairs


def id_set(dialect: str, ids: Sequence[uuid.UUID] | None = None) -> BindParameter[Any]:
    """The parameter ``rollup_statements`` takes as ``ids``, holding ``ids`` if given;
    else ``id_set_value`` fills it at execution."""
    value = None if ids is None else id_set_value(dialect, ids)
    if dialect == "postgresql":
        return bindparam("ids", value, type_=postgresql.ARRAY(Uuid()))
    return bindparam("ids", value, type_=String())


def id_set_value(dialect: str, ids: Sequence[uuid.UUID]) -> Any:
    """The value of ``id_set``'s parameter for ``ids``."""
    if dialect == "postgresql":
        return list(ids)
    return orjson.dumps([i.hex for i in ids]).decode()  # how the Uuid type stores them


@functools.cache
def _adding_batch(dialect: str) -> tuple[Insert, Insert]:
    """The statements that add the exchanges whose ids are bound as ``ids``: built once,
    so each batch reuses their compiled form instead of building and keying them anew."""
    return rollup_statements(dialect, [], ids=id_set(dialect))


async def add_exchanges(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> None:
    """Add the exchanges just inserted (by id) to the rollups, in the caller's transaction."""
    wanted = list(ids)
    if not wanted:
        return
    dialect = conn.dialect.name
    for statement in _adding_batch(dialect):
        await conn.execute(statement, {"ids": id_set_value(dialect, wanted)})


async def subtract_exchanges(conn: AsyncConnection, where: Sequence[ColumnElement[bool]]) -> None:
    """Take the exchanges ``where`` selects out of the rollups, before they are deleted in
    the same transaction; rows left counting nothing are removed."""
    for statement in rollup_statements(conn.dialect.name, where, sign=-1):
        await conn.execute(statement)
    await conn.execute(delete(ACTIVITY).where(ACTIVITY.c.calls <= 0))
    await conn.execute(delete(PAIRS).where(PAIRS.c.pairs <= 0))


def rebuild_rollups(conn: Connection) -> None:
    """Count the rollups afresh from every exchange (a migration's backfill): the finest
    grain from the rows, each coarser one by adding up the finest's periods, a scan of
    the rollups instead of one more of every observation."""
    conn.execute(delete(ACTIVITY))
    conn.execute(delete(PAIRS))
    finest, coarser = GRAINS[0], GRAINS[1:]
    for statement in rollup_statements(conn.dialect.name, [], grains=(finest,)):
        conn.execute(statement)
    for table, added in ((ACTIVITY, _activity_coarser), (PAIRS, _pairs_coarser)):
        fine = select(table).where(table.c.grain_s == finest).subquery("fine")
        rows = added(fine, coarser)
        conn.execute(table.insert().from_select([c.name for c in table.columns], rows))


_TIME = {"grain_s", "period"}  # the key columns that place a row in time


def _from_finest(
    table: Table, fine: FromClause, grains: Sequence[int]
) -> tuple[FromClause, list[Any]]:
    """Rows of the finest grain (``fine``, with ``table``'s columns) joined to each grain,
    and the keys that place each row in that grain's period (every grain is a whole
    number of the finest's periods)."""
    g = _grains(grains)
    joined = fine.join(g, true())
    period = fine.c.period * GRAINS[0] // g.c.grain_s
    keys = [
        g.c.grain_s,
        period,
        *(fine.c[c.name] for c in table.primary_key if c.name not in _TIME),
    ]
    return joined, keys


def _activity_coarser(fine: FromClause, grains: Sequence[int]) -> Select[Any]:
    joined, keys = _from_finest(ACTIVITY, fine, grains)
    return _named(ACTIVITY, (*keys, func.sum(fine.c.calls))).select_from(joined).group_by(*keys)


def _pairs_coarser(fine: FromClause, grains: Sequence[int]) -> Select[Any]:
    joined, keys = _from_finest(PAIRS, fine, grains)
    r = fine.c
    values = (
        *keys,
        func.sum(r.pairs),
        func.min(r.first_s),
        func.max(r.last_s),
        func.sum(r.n),
        *(func.sum(r[name]) for name in PAIR_SUMS),
    )
    return _named(PAIRS, values).select_from(joined).group_by(*keys)


def grain_for(window: ExchangeWindow, bucket_s: int | None = None) -> int:
    """The coarsest grain that divides ``bucket_s`` and on which the window starts and ends.

    Rollups keep no flag version: a window of a rollout stage is counted from the rows.
    """
    if window.first_flag_version is not None or window.last_flag_version is not None:
        raise ValueError("rollups keep no flag version: count a stage's window from its rows")
    bounds = [int(t.timestamp()) for t in (window.since, window.until) if t is not None]
    if any(t.microsecond for t in (window.since, window.until) if t is not None):
        bounds.append(1)  # no grain fits a bound inside a second
    fitting = [
        g
        for g in GRAINS
        if (bucket_s is None or bucket_s % g == 0) and all(b % g == 0 for b in bounds)
    ]
    if not fitting:
        raise ValueError(
            f"a window read from rollups starts and ends on a minute, and its buckets are "
            f"whole minutes (bucket of {bucket_s} s, bounds {window.since} to {window.until})"
        )
    return max(fitting)


def periods_of(window: ExchangeWindow, table: Table, grain_s: int) -> list[ColumnElement[bool]]:
    """The rollup rows of ``grain_s`` inside the window (whose bounds the grain divides)."""
    where = [table.c.grain_s == grain_s]
    if window.since is not None:
        where.append(table.c.period >= int(window.since.timestamp()) // grain_s)
    if window.until is not None:
        where.append(table.c.period < int(window.until.timestamp()) // grain_s)
    if window.route is not None:
        where.append(table.c.route == window.route.value)
    return where
