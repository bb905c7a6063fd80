"""The pairs of a replay run, for ``understudy judge --replay RUN``: the primary's recorded
answer against the replayed one; verdicts are kept on the run's results, apart from the
judgments of live pairs.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from storage.database import Database
from storage.judge_queries import PairToJudge
from storage.replay import replayed_run
from storage.replay_judgments import store_replay_judgments, unjudged_replay_pairs

if TYPE_CHECKING:
    from evaluation.judge import JudgeRun


class ReplayPairs:
    """A ``PairSource`` over one run's results, walked by exchange id."""

    def __init__(self, db: Database, run_id: int) -> None:
        self._db = db
        self._run_id = run_id
        self._after: uuid.UUID | None = None

    @classmethod
    async def of_run(cls, db: Database, run_id: int) -> ReplayPairs:
        await replayed_run(db, run_id)
        return cls(db, run_id)

    async def batch(
        self, judge_model: str, prompt_version: str, limit: int
    ) -> tuple[list[PairToJudge], bool]:
        # Results that failed are not judged: read on until pairs are found or none is left.
        while True:
            found = await unjudged_replay_pairs(
                self._db,
                self._run_id,
                judge_model=judge_model,
                prompt_version=prompt_version,
                after=self._after,
                limit=limit,
            )
            more = found.resume_after is not None
            self._after = found.resume_after
            if found.pairs or not more:
                return found.pairs, more

    async def store(self, run: JudgeRun) -> None:
        verdicts = [(uuid.UUID(r.pair_id), r.outcome) for r in run.results if r.outcome is not None]
        if verdicts:
            await store_replay_judgments(
                self._db,
                self._run_id,
                verdicts,
                judge_model=run.results[0].judge_model,
                prompt_version=run.results[0].prompt_version,
            )

    async def count_unjudged(self, judge_model: str, prompt_version: str) -> int:
        fresh = ReplayPairs(self._db, self._run_id)
        count = 0
        while True:
            pairs, more = await fresh.batch(judge_model, prompt_version, 500)
            count += len(pairs)
            if not more:
                return count
