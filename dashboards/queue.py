"""Which pair a reviewer sees next: stratified by route, the most disputed first.

"Disputed" means the automatic metrics disagree about the pair: the LLM judge
preferred one answer although the two answers are nearly the same words (token F1
near 1), or called a tie although they share few words (token F1 near 0). A pair the
judge has not rated sits in between. People's time goes where the machine is least
trustworthy. Routes take turns: the next pair comes from the route this reviewer has
been shown least, so a busy route does not crowd out the others.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from core import Route
from core.outcome import PairOutcome
from evaluation.metrics.token_f1 import TokenF1
from storage.database import Database
from storage.reviews import (
    CANDIDATE_FIRST,
    PRIMARY_FIRST,
    EligiblePair,
    PendingItem,
    eligible_pairs,
    pending_item,
    routes_reviewed,
    show_pair,
)

POOL = 200  # newest qualifying pairs of a route ranked for each choice
UNJUDGED = 0.5  # a pair the judge has not rated: neither disputed nor settled
_similarity = TokenF1()
# Embeddings have no text to compare; every other route takes part.
REVIEWED_ROUTES = tuple(r.value for r in Route if r is not Route.EMBEDDINGS)


def dispute(pair: EligiblePair) -> float:
    """How much the judge and text similarity disagree on a pair, from 0 to 1."""
    if pair.judge is None:
        return UNJUDGED
    similar = _similarity.score(pair.candidate_text, pair.primary_text)
    return 1.0 - similar if pair.judge is PairOutcome.TIE else similar


async def next_item(
    db: Database,
    reviewer_id: int,
    candidates: list[str],
    per_pair: int,
    rng: random.Random,
) -> PendingItem | None:
    """The reviewer's pending pair, else a new one shown to them now; None when none is left.

    Each candidate's pairs with the primary compete in one pool per route, so people's
    time goes to the most disputed pair whoever the candidate is; nothing on the page
    says which it was.
    """
    for _ in range(3):  # another tab of the same reviewer may take the chosen pair first
        pending = await pending_item(db, reviewer_id)
        if pending is not None:
            return pending
        seen = await routes_reviewed(db, reviewer_id)
        pair = None
        for route in sorted(REVIEWED_ROUTES, key=lambda r: (seen.get(r, 0), r)):
            pool = [
                (candidate, found)
                for candidate in candidates
                for found in await eligible_pairs(
                    db, reviewer_id, candidate, route, per_pair=per_pair, limit=POOL
                )
            ]
            if pool:
                # The most disputed; among equals the first candidate's newest (each
                # candidate's pool is newest first).
                pair = max(pool, key=lambda entry: dispute(entry[1]))
                break
        if pair is None:
            return None
        # The order is drawn per reviewer and pair, and stored with the review.
        order = rng.choice((CANDIDATE_FIRST, PRIMARY_FIRST))
        await show_pair(db, reviewer_id, pair[0], pair[1], order, datetime.now(UTC))
    return await pending_item(db, reviewer_id)
