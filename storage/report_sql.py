"""SQL pieces shared by the report, judge and sample queries: which exchanges a window covers,
how an exchange joins its arms, and times as epoch seconds. Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    type_coerce,
)
from sqlalchemy.sql.selectable import FromClause

from core import Role, RolloutMode
from storage.models import ExchangeRow, JudgmentRow, ObservationRow
from storage.window import ExchangeWindow

EXCHANGES: Table = ExchangeRow.__table__  # type: ignore[assignment]
OBSERVATIONS: Table = ObservationRow.__table__  # type: ignore[assignment]
JUDGMENTS: Table = JudgmentRow.__table__  # type: ignore[assignment]

_UNIX_EPOCH_JULIAN_DAY = 2440587.5


def epoch_seconds(dialect: str, column: ColumnElement[Any]) -> ColumnElement[float]:
    if dialect == "sqlite":
        # SQLite keeps naive UTC text; julianday parses it to millisecond precision.
        return (func.julianday(column) - _UNIX_EPOCH_JULIAN_DAY) * 86400.0
    # EXTRACT gives numeric on PostgreSQL 14+; a double converts without Decimal objects.
    return cast(func.extract("epoch", column), Float)


def failed_flag(arm: FromClause) -> ColumnElement[int | None]:
    """The negation of ``core.Observation.ok`` as 0/1; NULL when an outer join found no arm."""
    bad = or_(arm.c.error_kind.is_not(None), arm.c.status.is_(None), arm.c.status >= 400)
    return case((arm.c.exchange_id.is_(None), None), (bad, 1), else_=0)


def arm_columns(arm: FromClause) -> list[ColumnElement[Any]]:
    return [
        arm.c.latency_ms,
        arm.c.ttft_ms,
        failed_flag(arm),
        arm.c.prompt_tokens,
        arm.c.cached_tokens,
        arm.c.completion_tokens,
    ]


def raw_id() -> ColumnElement[Any]:
    # Skip the Uuid result processor: a million uuid.UUID objects cost a second.
    return type_coerce(EXCHANGES.c.id, String)


def pair_join(candidate: str, *, outer: bool = False) -> tuple[FromClause, FromClause, FromClause]:
    """exchanges joined to the primary's arm and the candidate's arm on the same request.

    A pair is either way round: the primary served and the candidate was its shadow,
    or the candidate served and the primary was its reverse shadow. The second
    alias is named for the first kind, the common one.

    ``outer`` joins keep exchanges lacking an arm (drop them afterwards): SQLite
    never reorders a LEFT JOIN, so it walks exchanges in ``created_at`` order and
    finds the arms by primary key, where an inner join lets its planner start
    from the observations and visit exchanges at random (half again as slow on
    a million rows). PostgreSQL plans either as hash joins.
    """
    e = EXCHANGES
    primary = OBSERVATIONS.alias("p")
    shadow = OBSERVATIONS.alias("c")
    primary_role = arm_role(primary)
    on_primary = and_(
        primary.c.exchange_id == e.c.id,
        or_(
            and_(primary_role == Role.SERVED.value, primary.c.upstream != candidate),
            primary_role == Role.REVERSE_SHADOW.value,
        ),
    )
    on_shadow = and_(
        shadow.c.exchange_id == e.c.id,
        arm_role(shadow).in_((Role.SHADOW.value, Role.SERVED.value)),
        shadow.c.upstream == candidate,
    )
    joined = e.join(primary, on_primary, isouter=outer).join(shadow, on_shadow, isouter=outer)
    return joined, primary, shadow


def arm_role(arm: FromClause) -> ColumnElement[str]:
    """An arm's role, compared without the role index.

    `|| ''`: without statistics SQLite would look arms up through the role index (a
    million entries per value, a scan of every stored arm of that role) instead of by
    their exchange, the primary key.
    """
    return arm.c.role.concat("")


def took_part(candidate: str) -> ColumnElement[bool]:
    """The exchange names the candidate, or mirrored it as a shadow candidate beside the
    rollout's own (those exchanges name the rollout's candidate, or none)."""
    arm = OBSERVATIONS.alias("x")
    # `|| ''` keeps SQLite off the candidate index, which would cost a sort of every
    # row; the created_at index gives the arrival order for free. Evaluated left to
    # right, the look-up by primary key runs only for exchanges naming another.
    shadowed = exists().where(
        arm.c.exchange_id == EXCHANGES.c.id,
        arm_role(arm) == Role.SHADOW.value,
        arm.c.upstream == candidate,
    )
    return or_(EXCHANGES.c.candidate.concat("") == candidate, shadowed)


def pairs_where(window: ExchangeWindow) -> list[ColumnElement[bool]]:
    return [took_part(window.named_candidate), *window.conditions()]


def split_where(window: ExchangeWindow) -> list[ColumnElement[bool]]:
    e = EXCHANGES.c
    # A split exchange served by the primary names no candidate unless it was mirrored,
    # so NULL counts too. As one expression no index can serve, it also keeps SQLite
    # walking the created_at index instead of sorting every row.
    return [
        e.mode == RolloutMode.SPLIT.value,
        func.coalesce(e.candidate, window.named_candidate) == window.named_candidate,
        *window.conditions(),
    ]


def ordered(query: Select[Any]) -> Select[Any]:
    return query.order_by(EXCHANGES.c.created_at, EXCHANGES.c.id)
