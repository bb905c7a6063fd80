"""The SQL schema: exchanges, one observation per arm, LLM-judge results, rollout flags and audit.

Alembic owns the schema (``migrations/``); every change here needs a revision.
Names of enum-like values are free strings so that a new ``core`` enum member
does not need a migration.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.outcome import PairOutcome
from storage.types import UTCDateTime

# Stable constraint names, so that migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON NULL and SQL NULL differ; "no request stored" must be SQL NULL.
_JSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExchangeRow(Base):
    """One client request; the routing decision is copied as of decision time."""

    __tablename__ = "exchanges"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    route: Mapped[str] = mapped_column(String(32), index=True)
    requested_model: Mapped[str] = mapped_column(String)
    subject_hash: Mapped[str] = mapped_column(String)
    stream: Mapped[bool] = mapped_column(Boolean)
    mode: Mapped[str] = mapped_column(String(16))
    percent: Mapped[float] = mapped_column(Float)
    flag_version: Mapped[int] = mapped_column(Integer, index=True)  # a rollout stage's window
    bucket: Mapped[int] = mapped_column(Integer)
    decision_served: Mapped[str] = mapped_column(String)  # planned; differs on fallback
    served_is_candidate: Mapped[bool] = mapped_column(Boolean)
    decision_shadow: Mapped[str | None] = mapped_column(String)
    noise: Mapped[bool] = mapped_column(Boolean)
    reverse_shadow: Mapped[bool] = mapped_column(Boolean, server_default=false())
    served_by: Mapped[str] = mapped_column(String)  # the upstream whose answer the client got
    fallback: Mapped[bool] = mapped_column(Boolean)
    # The shadow or split candidate involved, denormalised so reports filter cheaply.
    candidate: Mapped[str | None] = mapped_column(String, index=True)
    request: Mapped[dict[str, Any] | None] = mapped_column(_JSON)

    observations: Mapped[list[ObservationRow]] = relationship(
        back_populates="exchange",
        order_by="ObservationRow.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class ObservationRow(Base):
    """One arm of an exchange: what a single upstream did with the request."""

    __tablename__ = "observations"

    exchange_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True
    )
    # The arm's index in Exchange.observations: keeps order and makes inserts idempotent.
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream: Mapped[str] = mapped_column(String)
    role: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String)
    status: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)  # to the first visible answer token
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String)
    text: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(_JSON)
    truncated: Mapped[bool] = mapped_column(Boolean)
    embedding_dims: Mapped[int | None] = mapped_column(Integer)
    # A reasoning model's thinking, apart from its answer (revision 0007).
    ttft_any_ms: Mapped[float | None] = mapped_column(Float)  # to the first token of any kind
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)  # part of completion_tokens
    reasoning_text: Mapped[str | None] = mapped_column(Text)

    exchange: Mapped[ExchangeRow] = relationship(back_populates="observations")


class JudgmentRow(Base):
    """An LLM judge's verdict on one candidate-vs-primary pair."""

    __tablename__ = "judgments"
    __table_args__ = (
        CheckConstraint(
            f"outcome IN ({', '.join(repr(o.value) for o in PairOutcome)})",
            name="outcome",
        ),
        Index(None, "candidate", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    exchange_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("exchanges.id", ondelete="CASCADE"), index=True
    )
    candidate: Mapped[str] = mapped_column(String)
    judge_model: Mapped[str] = mapped_column(String)
    prompt_version: Mapped[str] = mapped_column(String)
    outcome: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any] | None] = mapped_column(_JSON)


class FlagRow(Base):
    """One version of the rollout state: an insert per change, never an update.

    ``route`` NULL is the default for every route; a route's own row overrides it.
    ``version`` is one sequence over all routes, so its maximum says whether anything changed.
    """

    __tablename__ = "rollout_flags"
    __table_args__ = (
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent"),
        CheckConstraint("version > 0", name="version"),
        Index(None, "route", "version"),
    )

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    route: Mapped[str | None] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    candidate: Mapped[str | None] = mapped_column(String)
    percent: Mapped[float] = mapped_column(Float)
    shadow_rate: Mapped[float] = mapped_column(Float)
    noise_rate: Mapped[float] = mapped_column(Float)
    reverse_shadow_rate: Mapped[float] = mapped_column(Float, server_default="0")
    stage: Mapped[str | None] = mapped_column(String)
    paused: Mapped[bool] = mapped_column(Boolean)
    killed: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditRow(Base):
    """One change to the rollout: who, what, when and why. Append-only; purge never touches it."""

    __tablename__ = "rollout_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String(32))
    route: Mapped[str | None] = mapped_column(String(32))
    flag_version: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    # The evidence behind an automatic change (the verdict that caused it).
    verdict: Mapped[dict[str, Any] | None] = mapped_column(_JSON)


class ReviewerRow(Base):
    """A person who reviews pairs blind. Removal keeps the row, and so their reviews."""

    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String)  # argon2id; None until invited in
    invite_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # sha256 hex
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UiSessionRow(Base):
    """A signed-in web UI session, found by the sha256 of its cookie; deleting it signs out."""

    __tablename__ = "ui_sessions"
    __table_args__ = (CheckConstraint("role IN ('admin', 'reviewer')", name="role"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    admin_name: Mapped[str | None] = mapped_column(String(64))
    reviewer_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("reviewers.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ReviewRow(Base):
    """One pair shown to one reviewer: pending until decided (``outcome`` NULL).

    ``item_token`` is the pair's address in the reviewer's pages, so no exchange id
    reaches them. Reviews go with their exchange when it is purged.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('candidate', 'primary', 'tie', 'both_bad', 'skipped')", name="outcome"
        ),
        CheckConstraint("shown_order IN ('candidate_first', 'primary_first')", name="shown_order"),
        UniqueConstraint("reviewer_id", "exchange_id"),
        Index(None, "exchange_id", "outcome"),
        Index(None, "reviewer_id", "decided_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    item_token: Mapped[str] = mapped_column(String(64), unique=True)
    reviewer_id: Mapped[int] = mapped_column(Integer, ForeignKey("reviewers.id"))
    exchange_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("exchanges.id", ondelete="CASCADE")
    )
    candidate: Mapped[str] = mapped_column(String)
    route: Mapped[str] = mapped_column(String(32))
    shown_order: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    time_taken_ms: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# The review queue walks one route's exchanges newest first and stops at a page.
Index("ix_exchanges_route_created_at", ExchangeRow.route, ExchangeRow.created_at)

metadata = Base.metadata


class ReplayRunRow(Base):
    """One replay of stored requests to a candidate. Its results live in ``replay_results``,
    which no live query reads, so replayed answers never mix with shadow data.

    ``target`` describes where the requests went without any key; ``selection_key`` is the
    digest of the selection options as typed, by which running the same command again finds
    the run to resume.
    """

    __tablename__ = "replay_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'stopped', 'finished')", name="status"),
        Index(None, "selection_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate: Mapped[str] = mapped_column(String)
    target: Mapped[str] = mapped_column(String)
    selection_key: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(_JSON)
    status: Mapped[str] = mapped_column(String(16))
    selected: Mapped[int] = mapped_column(Integer)  # exchanges chosen to be replayed
    skipped_no_prompt: Mapped[int] = mapped_column(Integer)  # stored without their prompt
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReplayResultRow(Base):
    """One selected exchange of a run: pending until its replay is answered, then the
    candidate's observation. The (run, exchange) key makes a replay never doubled; the
    row goes with its original exchange when that is purged.
    """

    __tablename__ = "replay_results"
    __table_args__ = (
        CheckConstraint(
            f"judge_outcome IN ({', '.join(repr(o.value) for o in PairOutcome)})",
            name="judge_outcome",
        ),
        Index(None, "run_id", "replayed_at"),
    )

    run_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("replay_runs.id", ondelete="CASCADE"), primary_key=True
    )
    exchange_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    original_created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the order of sending
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: still pending
    upstream: Mapped[str | None] = mapped_column(String)
    model: Mapped[str | None] = mapped_column(String)
    status: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)  # to the first visible answer token
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String)
    text: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(_JSON)
    truncated: Mapped[bool | None] = mapped_column(Boolean)
    embedding_dims: Mapped[int | None] = mapped_column(Integer)
    # A reasoning model's thinking, apart from its answer (revision 0007).
    ttft_any_ms: Mapped[float | None] = mapped_column(Float)  # to the first token of any kind
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)  # part of completion_tokens
    reasoning_text: Mapped[str | None] = mapped_column(Text)
    # An LLM judge's verdict on the pair (the recorded primary answer against this one).
    judge_model: Mapped[str | None] = mapped_column(String)
    judge_prompt_version: Mapped[str | None] = mapped_column(String)
    judge_outcome: Mapped[str | None] = mapped_column(String(16))
    judged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ResponseOwnerRow(Base):
    """Which upstream holds a Responses API response, so its follow-ups reach it from any
    replica; ``twin_id`` is the same turn's response on the exchange's other arm."""

    __tablename__ = "response_owners"

    response_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    candidate: Mapped[str | None] = mapped_column(String(64))
    twin_id: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class TranslatedTurnRow(Base):
    """A conversation a Chat-Completions-only candidate answered through translation, up to
    and including ``response_id``: that server keeps none, so follow-ups are rebuilt from it.
    Prompts live here until ``expires_at`` like the response would on OpenAI."""

    __tablename__ = "translated_turns"

    response_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(64))
    messages: Mapped[list[dict[str, Any]]] = mapped_column(_JSON)
    response: Mapped[dict[str, Any]] = mapped_column(_JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ActivityRollupRow(Base):
    """Calls per time period, counted as exchanges are written (``storage.rollups``): the
    overview's latency and TTFT distributions and error and fallback rates read these
    instead of every observation. ``measure`` says which duration ``bin`` is of (-1: no
    bin, a failed call or one without the duration)."""

    __tablename__ = "activity_rollups"

    grain_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)  # floor(epoch / grain_s)
    route: Mapped[str] = mapped_column(String(32), primary_key=True)
    candidate: Mapped[str] = mapped_column(String, primary_key=True)  # the exchange's; '' none
    upstream: Mapped[str] = mapped_column(String, primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    failed: Mapped[int] = mapped_column(Integer, primary_key=True)
    fallback: Mapped[int] = mapped_column(Integer, primary_key=True)
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer)


class PairRollupRow(Base):
    """Token sums of the primary-candidate pairs per time period and candidate, counted as
    exchanges are written: the overview's cost inputs. ``n`` and the sums cover the pairs
    whose token counts are known; ``candidate_prompt_known`` splits them by whether the
    candidate reported its prompt tokens (a per-token price needs them)."""

    __tablename__ = "pair_rollups"

    grain_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    route: Mapped[str] = mapped_column(String(32), primary_key=True)
    candidate: Mapped[str] = mapped_column(String, primary_key=True)  # the candidate arm's
    candidate_prompt_known: Mapped[int] = mapped_column(Integer, primary_key=True)
    pairs: Mapped[int] = mapped_column(Integer)
    first_s: Mapped[float] = mapped_column(Float)  # epoch seconds of the first pair
    last_s: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    primary_prompt: Mapped[float] = mapped_column(Float)
    primary_cached: Mapped[float] = mapped_column(Float)
    primary_uncached: Mapped[float] = mapped_column(Float)
    primary_completion: Mapped[float] = mapped_column(Float)
    candidate_prompt: Mapped[float] = mapped_column(Float)
    candidate_cached: Mapped[float] = mapped_column(Float)
    candidate_uncached: Mapped[float] = mapped_column(Float)
    candidate_completion: Mapped[float] = mapped_column(Float)
