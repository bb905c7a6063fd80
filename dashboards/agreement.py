"""Agreement figures from the database: the judge against people, and people among themselves."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from core.outcome import PairOutcome
from evaluation.agreement import Agreement, between_reviewers, judge_vs_people
from storage.database import Database
from storage.review_codes import judge_labels, pair_preferences, review_labels
from storage.window import ExchangeWindow

_BY_CODE = {o.code: o for o in PairOutcome}


@dataclass(frozen=True, slots=True)
class AgreementFigures:
    judge_vs_people: Agreement  # per pair: the judge's newest verdict vs people's majority
    between_reviewers: Agreement


async def agreement_figures(db: Database, window: ExchangeWindow) -> AgreementFigures:
    labels = await review_labels(db, window)
    judged = await judge_labels(db, window, reviewed_only=True)  # only these are compared
    people = pair_preferences(labels)
    both = [key for key in people if key in judged]
    per_pair: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        per_pair[label.exchange_id].append(label.preference.value)
    return AgreementFigures(
        judge_vs_people([judged[k].value for k in both], [_BY_CODE[people[k]].value for k in both]),
        between_reviewers(list(per_pair.values())),
    )
