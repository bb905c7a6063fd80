"""locate_stage: a stage's window is the newest run of rows on the same stage and candidate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rollout.plan import default_plan
from rollout.position import locate_stage
from storage.flags import FlagRecord

T = datetime(2026, 3, 1, tzinfo=UTC)
BASE = FlagRecord(
    route=None, mode="shadow", candidate="local", percent=0.0, shadow_rate=1.0, noise_rate=0.0
)


def rows(*changes: dict[str, object]) -> list[FlagRecord]:
    """Rows oldest first from ``changes``, each applied to the previous; returned newest first."""
    out = []
    row = BASE
    for version, change in enumerate(changes, start=1):
        row = replace(row, **change, version=version, changed_at=T + timedelta(hours=version))  # type: ignore[arg-type]
        out.append(row)
    return out[::-1]


def test_pause_resume_and_kill_keep_the_window_a_promotion_starts_one() -> None:
    plan = default_plan()
    history = rows(
        {},  # v1 the seed: shadow, found by its traffic
        {"mode": "split", "percent": 5.0, "stage": "5%"},  # v2 promoted
        {"paused": True},  # v3
        {"paused": False},  # v4 resumed
        {"killed": True},  # v5
    )
    at = locate_stage(plan, history)
    assert at.position.stage is not None and at.position.stage.name == "5%"
    assert at.first_version == 2 and at.position.entered_at == T + timedelta(hours=2)
    assert at.position.running_since == T + timedelta(hours=4)  # the resume
    assert at.position.killed and not at.position.paused
    assert at.current.version == 5


def test_a_share_set_by_hand_or_a_new_candidate_starts_a_window() -> None:
    plan = default_plan()
    by_hand = locate_stage(plan, rows({}, {"mode": "split", "percent": 30.0}))
    assert by_hand.position.stage is None and by_hand.first_version == 2
    other = locate_stage(plan, rows({}, {"candidate": "other"}))
    assert other.position.stage is plan.first and other.first_version == 2
    same = locate_stage(plan, rows({}, {"shadow_rate": 0.5}))
    assert same.first_version == 1
