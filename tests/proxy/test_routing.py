"""decide() is pure: sticky buckets, split accuracy, monotone rollout, kill switch."""

from __future__ import annotations

import random

import pytest

from core import FlagState, RolloutMode
from proxy.routing import BUCKETS, bucket, decide


def flag(mode: RolloutMode, percent: float = 0.0, **kw: object) -> FlagState:
    base: dict[str, object] = {
        "key": "chat-rollout",
        "mode": mode,
        "candidate": "local",
        "percent": percent,
        "shadow_rate": 1.0,
        "noise_rate": 0.0,
        "version": 3,
    }
    base.update(kw)
    return FlagState(**base)  # type: ignore[arg-type]


def served_by_candidate(f: FlagState, subject: str) -> bool:
    return decide(f, subject, primary="openai", shadow_draw=0.5, noise_draw=0.5).served_is_candidate


@pytest.mark.parametrize("percent", [5, 25, 50, 75])
def test_split_accuracy_within_two_points_over_10000_subjects(percent: float) -> None:
    f = flag(RolloutMode.SPLIT, percent)
    share = sum(served_by_candidate(f, f"user-{i}") for i in range(10_000)) / 100
    assert abs(share - percent) <= 2.0, share


def test_assignment_is_sticky_per_subject() -> None:
    f = flag(RolloutMode.SPLIT, 50)
    first = [served_by_candidate(f, f"user-{i}") for i in range(500)]
    again = [served_by_candidate(f, f"user-{i}") for i in range(500)]
    assert first == again
    assert 0 < sum(first) < 500


def test_raising_the_percentage_never_moves_a_subject_back() -> None:
    subjects = [f"user-{i}" for i in range(5000)]
    previous: set[str] = set()
    for percent in (5, 25, 50, 75, 100):
        f = flag(RolloutMode.SPLIT, percent)
        now = {s for s in subjects if served_by_candidate(f, s)}
        assert previous <= now
        previous = now
    assert previous == set(subjects)


def test_bucket_depends_on_flag_key() -> None:
    same = sum(bucket("a", f"u{i}") == bucket("b", f"u{i}") for i in range(1000))
    assert same < 10
    assert all(0 <= bucket("k", f"u{i}") < BUCKETS for i in range(1000))


def test_shadow_mode_mirrors_at_shadow_rate() -> None:
    f = flag(RolloutMode.SHADOW, shadow_rate=0.3)
    rng = random.Random(1)
    decisions = [
        decide(f, "u", primary="openai", shadow_draw=rng.random(), noise_draw=1.0)
        for _ in range(10_000)
    ]
    assert all(d.served == "openai" and not d.served_is_candidate for d in decisions)
    rate = sum(d.shadow == "local" for d in decisions) / len(decisions)
    assert abs(rate - 0.3) < 0.02


def test_split_mirrors_only_primary_served_requests() -> None:
    f = flag(RolloutMode.SPLIT, 50)
    for i in range(200):
        d = decide(f, f"user-{i}", primary="openai", shadow_draw=0.0, noise_draw=1.0)
        assert (d.shadow is None) == d.served_is_candidate


def test_cutover_serves_everyone_from_the_candidate() -> None:
    d = decide(flag(RolloutMode.CUTOVER, 0), "u", primary="openai", shadow_draw=0, noise_draw=0)
    assert d.served == "local" and d.served_is_candidate and d.percent == 100.0
    assert d.shadow is None and not d.noise


def test_kill_switch_sends_everything_to_the_primary() -> None:
    f = flag(RolloutMode.CUTOVER, 100, killed=True, noise_rate=1.0)
    d = decide(f, "u", primary="openai", shadow_draw=0.0, noise_draw=0.0)
    assert d.served == "openai" and d.shadow is None and not d.noise
    assert d.mode is RolloutMode.OFF


def test_noise_sampled_at_noise_rate_and_decision_carries_flag_version() -> None:
    f = flag(RolloutMode.SHADOW, noise_rate=0.2)
    assert decide(f, "u", primary="openai", shadow_draw=0.9, noise_draw=0.1).noise
    d = decide(f, "u", primary="openai", shadow_draw=0.9, noise_draw=0.3)
    assert not d.noise and d.flag_version == 3


def test_reverse_shadow_samples_candidate_served_requests_at_its_own_rate() -> None:
    rng = random.Random(2)
    f = flag(RolloutMode.CUTOVER, shadow_rate=1.0, reverse_shadow_rate=0.1)
    decisions = [
        decide(f, f"user-{i}", primary="openai", shadow_draw=rng.random(), noise_draw=1.0)
        for i in range(10_000)
    ]
    assert all(d.served_is_candidate and d.shadow is None for d in decisions)
    rate = sum(d.reverse_shadow for d in decisions) / len(decisions)
    assert abs(rate - 0.1) < 0.02  # its own rate: the shadow rate of 1.0 plays no part


def test_in_split_only_candidate_served_requests_are_reverse_shadowed() -> None:
    f = flag(RolloutMode.SPLIT, 50, reverse_shadow_rate=1.0)
    decisions = [
        decide(f, f"user-{i}", primary="openai", shadow_draw=0.0, noise_draw=1.0)
        for i in range(400)
    ]
    assert {(d.served_is_candidate, d.reverse_shadow, d.shadow) for d in decisions} == {
        (True, True, None),
        (False, False, "local"),
    }


@pytest.mark.parametrize("mode", [RolloutMode.OFF, RolloutMode.SHADOW])
def test_nothing_is_reverse_shadowed_while_the_primary_serves(mode: RolloutMode) -> None:
    d = decide(
        flag(mode, reverse_shadow_rate=1.0), "u", primary="openai", shadow_draw=0, noise_draw=1
    )
    assert not d.served_is_candidate and not d.reverse_shadow


def test_a_killed_rollout_reverse_shadows_nothing() -> None:
    f = flag(RolloutMode.CUTOVER, killed=True, reverse_shadow_rate=1.0)
    d = decide(f, "u", primary="openai", shadow_draw=0.0, noise_draw=1.0)
    assert d.served == "openai" and not d.reverse_shadow


def test_noise_goes_with_the_reverse_shadow_after_cutover() -> None:
    # The primary's run-to-run noise needs a primary answer to set a second one against.
    f = flag(RolloutMode.CUTOVER, reverse_shadow_rate=0.5, noise_rate=1.0)
    with_reverse = decide(f, "u", primary="openai", shadow_draw=0.1, noise_draw=0.0)
    assert with_reverse.reverse_shadow and with_reverse.noise
    without = decide(f, "u", primary="openai", shadow_draw=0.9, noise_draw=0.0)
    assert not without.reverse_shadow and not without.noise
