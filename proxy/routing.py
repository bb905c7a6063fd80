"""The pure routing decision: who serves, who is mirrored, sticky per subject."""

from __future__ import annotations

import hashlib

from core import FlagState, RolloutMode, RoutingDecision

BUCKETS = 10_000


def bucket(flag_key: str, subject: str) -> int:
    """A stable bucket in [0, 10000) for ``flag_key:subject``.

    A subject's bucket never changes, so raising the percentage only ever moves
    subjects from the primary to the candidate, never back.
    """
    # surrogatepass: total on any str (a lone surrogate cannot make this raise), and the
    # same bytes as a plain encode() for valid text, so no subject's bucket moves.
    key = f"{flag_key}:{subject}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def decide(
    flag: FlagState, subject: str, *, primary: str, shadow_draw: float, noise_draw: float
) -> RoutingDecision:
    """Route one request. ``shadow_draw`` and ``noise_draw`` are uniform [0, 1) samples.

    One draw serves both mirrors: a request goes one way or the other, so the shadow
    (primary serves, candidate mirrored) and the reverse shadow (candidate serves,
    primary mirrored) never compete for it.
    """
    b = bucket(flag.key, subject)
    mode = RolloutMode.OFF if flag.killed or flag.candidate is None else flag.mode
    to_candidate = mode is RolloutMode.CUTOVER or (
        mode is RolloutMode.SPLIT and b < round(flag.percent * BUCKETS / 100)
    )
    mirrored = (
        mode in (RolloutMode.SHADOW, RolloutMode.SPLIT)
        and not to_candidate
        and shadow_draw < flag.shadow_rate
    )
    reverse = to_candidate and shadow_draw < flag.reverse_shadow_rate
    # Noise needs a primary answer to compare with: the served one, or the reverse shadow's.
    noise = not flag.killed and (reverse or not to_candidate) and noise_draw < flag.noise_rate
    return RoutingDecision(
        served=flag.candidate if to_candidate and flag.candidate else primary,
        served_is_candidate=to_candidate,
        shadow=flag.candidate if mirrored else None,
        noise=noise,
        mode=mode,
        percent=100.0 if mode is RolloutMode.CUTOVER else flag.percent,
        flag_version=flag.version,
        bucket=b,
        reverse_shadow=reverse,
    )
