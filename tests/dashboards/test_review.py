"""Blind review in-process: choices become arms, undo and skip, the queue, and the quality metric."""

from __future__ import annotations

import dataclasses
import re

import pytest
from sqlalchemy import select

from core import Route
from core.outcome import PairOutcome
from storage.judgments import Judgment, add_judgments
from storage.models import ReviewRow
from storage.purge import purge_exchange
from tests.dashboards.conftest import ITEM, UiRig, pair, store_pairs
from understudy.reporting import ReportRequest, assess

# The queue and the quality codes are SQL of their own: both databases run them.
pytestmark = pytest.mark.parametrize(
    "ui_backend",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)


async def _reviews(rig: UiRig) -> list[ReviewRow]:
    async with rig.db.sessions() as session:
        return list((await session.scalars(select(ReviewRow).order_by(ReviewRow.shown_at))).all())


async def _choose(rig: UiRig, client, choice: str, note: str = "") -> str:
    """Decide the pair on the page; returns its item token."""
    async with client.get(rig.url + "/ui/review") as response:
        page = await response.text()
    item = ITEM.search(page)
    assert item is not None, "no pair on the page"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "item": item.group(1), "choice": choice, "note": note}
    answer = await rig.post(client, "/ui/review/decide", data)
    assert answer.status == 303
    return item.group(1)


async def test_a_and_b_become_arms_through_the_stored_order(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    await store_pairs(rig.db, [pair(n) for n in range(12)])
    alice = await rig.reviewer("alice")
    for n in range(12):
        await _choose(rig, alice, "a" if n % 2 else "b", note=f"note {n}")
    reviews = await _reviews(rig)
    assert len(reviews) == 12
    assert {r.shown_order for r in reviews} == {"candidate_first", "primary_first"}
    for n, r in enumerate(reviews):
        chose_a = n % 2 == 1
        a_is_candidate = r.shown_order == "candidate_first"
        wanted = "candidate" if chose_a == a_is_candidate else "primary"
        assert r.outcome == wanted
        assert r.note == f"note {n}"
        assert r.time_taken_ms is not None and r.time_taken_ms >= 0
    async with alice.get(rig.url + "/ui/review") as response:
        page = await response.text()
    assert "12 reviewed · 0 waiting" in page and "Nothing to review right now" in page


async def test_skip_and_undo(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    await store_pairs(rig.db, [pair(n) for n in range(3)])
    alice = await rig.reviewer("alice")
    first = await _choose(rig, alice, "skip")
    second = await _choose(rig, alice, "tie")
    async with alice.get(rig.url + "/ui/review") as response:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert csrf is not None
    assert (await rig.post(alice, "/ui/review/undo", {"csrf": csrf.group(1)})).status == 303
    async with alice.get(rig.url + "/ui/api/review/current") as response:
        current = await response.json()
    assert current["item"]["token"] == second  # the undone pair comes back first
    assert current["reviewed"] == 0  # a skip is not a review
    assert current["waiting"] == 0  # all three were shown: one skipped, two pending
    outcomes = {r.item_token: r.outcome for r in await _reviews(rig)}
    assert outcomes[first] == "skipped"
    assert outcomes[second] is None


async def test_each_pair_goes_to_at_most_k_people(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig(ui={"reviewers_per_pair": 2})
    await store_pairs(rig.db, [pair(n) for n in range(2)])
    people = [await rig.reviewer(name) for name in ("alice", "bob", "carol")]
    for client in people[:2]:
        for _ in range(2):
            await _choose(rig, client, "tie")
    async with people[2].get(rig.url + "/ui/api/review/current") as response:
        assert (await response.json())["item"] is None


async def test_routes_take_turns(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    chat = [pair(n) for n in range(6)]
    completions = [pair(n + 10, route=Route.COMPLETIONS) for n in range(2)]
    await store_pairs(rig.db, chat + completions)
    alice = await rig.reviewer("alice")
    for _ in range(8):
        await _choose(rig, alice, "tie")
    routes = [r.route for r in await _reviews(rig)]
    # The least-shown route goes next until it runs out.
    assert routes[:4] == ["chat.completions", "completions", "chat.completions", "completions"]
    assert routes[4:] == ["chat.completions"] * 4


async def test_pairs_the_judge_and_similarity_dispute_come_first(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    same = "The sky is blue, says reply 5."
    pairs = [pair(n) for n in range(4)]
    # Exchange 2: identical answers the judge still split; exchange 3: judged, plainly different.
    pairs[2] = pair(2, candidate_text="The sky is blue, says reply 2.")
    pairs[3] = pair(3, candidate_text=same.upper())
    await store_pairs(rig.db, pairs)
    await add_judgments(
        rig.db,
        [
            Judgment(pairs[2].id, "local", "judge", "pairwise-v1", PairOutcome.PRIMARY),
            Judgment(pairs[3].id, "local", "judge", "pairwise-v1", PairOutcome.CANDIDATE),
        ],
    )
    alice = await rig.reviewer("alice")
    await _choose(rig, alice, "tie")
    first = (await _reviews(rig))[0]
    assert first.exchange_id == pairs[2].id


async def test_reviews_change_the_quality_metric_and_the_setting_picks_a_source(
    make_ui_rig,
) -> None:
    rig: UiRig = await make_ui_rig()
    pairs = [pair(n) for n in range(6)]
    await store_pairs(rig.db, pairs)
    await add_judgments(
        rig.db,
        [Judgment(p.id, "local", "judge", "pairwise-v1", PairOutcome.PRIMARY) for p in pairs[:3]],
    )
    before = await assess(rig.db, ReportRequest(), rig.settings)
    assert before.quality is not None
    assert (before.quality.tally.wins, before.quality.tally.losses) == (0, 3)

    alice = await rig.reviewer("alice")
    for _ in range(6):
        # Choose the candidate's answer whichever side it is on.
        async with alice.get(rig.url + "/ui/review") as response:
            page = await response.text()
        token = ITEM.search(page)
        assert token is not None
        order = next(r.shown_order for r in await _reviews(rig) if r.item_token == token.group(1))
        await _choose(rig, alice, "a" if order == "candidate_first" else "b")

    people_first = await assess(rig.db, ReportRequest(), rig.settings)
    assert people_first.quality is not None
    assert (people_first.quality.tally.wins, people_first.quality.tally.losses) == (6, 0)

    judge_first = rig.settings.model_copy(
        update={"ui": rig.settings.ui.model_copy(update={"quality_source": "judge"})}
    )
    judged = await assess(rig.db, ReportRequest(), judge_first)
    assert judged.quality is not None
    assert (judged.quality.tally.wins, judged.quality.tally.losses) == (3, 3)


async def test_purging_an_exchange_takes_its_reviews(make_ui_rig, tmp_path) -> None:
    rig: UiRig = await make_ui_rig()
    pairs = [pair(n) for n in range(2)]
    await store_pairs(rig.db, pairs)
    alice = await rig.reviewer("alice")
    await _choose(rig, alice, "a")
    await _choose(rig, alice, "b")
    reviewed = {r.exchange_id for r in await _reviews(rig)}
    assert reviewed == {p.id for p in pairs}
    result = await purge_exchange(rig.db, tmp_path / "spill", pairs[0].id)
    assert result.exchanges == 1
    assert {r.exchange_id for r in await _reviews(rig)} == {pairs[1].id}


async def test_an_item_is_addressed_by_a_token_never_the_exchange_id(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    stored = pair(1)
    await store_pairs(rig.db, [stored])
    alice = await rig.reviewer("alice")
    async with alice.get(rig.url + "/ui/review") as response:
        page = await response.text()
    async with alice.get(rig.url + "/ui/api/review/current") as response:
        body = await response.text()
    for text in (page, body):
        assert str(stored.id) not in text and stored.id.hex not in text
        for word in (
            "openai",
            "local",
            "candidate",
            "primary",
            "gpt-4o",
            "Llama",
            "1234.5",
            "812.25",
        ):
            assert word not in text, word


async def test_a_decision_on_someone_elses_item_changes_nothing(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    await store_pairs(rig.db, [pair(1)])
    alice, bob = await rig.reviewer("alice"), await rig.reviewer("bob")
    async with alice.get(rig.url + "/ui/review") as response:
        item = ITEM.search(await response.text())
    assert item is not None
    async with bob.get(rig.url + "/ui/review") as response:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert csrf is not None
    data = {"csrf": csrf.group(1), "item": item.group(1), "choice": "a"}
    assert (await rig.post(bob, "/ui/review/decide", data)).status == 303
    mine = [r for r in await _reviews(rig) if r.item_token == item.group(1)]
    assert mine[0].outcome is None


def _shadowed_by(exchange, name: str):
    """``exchange`` with a second shadow candidate ``name`` answering beside "local"."""
    extra = dataclasses.replace(
        exchange.observations[1], upstream=name, text="Another answer entirely."
    )
    return dataclasses.replace(exchange, observations=(*exchange.observations, extra))


async def test_shadow_candidates_pairs_are_reviewed_too_and_stay_blind(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig(
        candidates=[
            {"name": "local", "base_url": "http://127.0.0.1:9/v1"},
            {"name": "tgi-mistral", "base_url": "http://127.0.0.1:9/v1"},
        ],
        rollout={"candidate": "local", "shadow_candidates": [{"name": "tgi-mistral"}]},
        ui={"reviewers_per_pair": 1},
    )
    await store_pairs(rig.db, [_shadowed_by(pair(n), "tgi-mistral") for n in range(3)])
    pages = []
    for name in ("alice", "bob"):
        client = await rig.reviewer(name)
        async with client.get(rig.url + "/ui/api/review/current") as response:
            # Three exchanges, each with two pairs: one conversation per reviewer once.
            assert (await response.json())["waiting"] == 2 * 3 - 2 if name == "alice" else 2
        for _ in range(3):
            async with client.get(rig.url + "/ui/review") as response:
                pages.append(await response.text())
            await _choose(rig, client, "a")
    reviews = await _reviews(rig)
    assert sorted(r.candidate for r in reviews) == ["local"] * 3 + ["tgi-mistral"] * 3
    for who in {r.reviewer_id for r in reviews}:  # each conversation once per reviewer
        seen = [r.exchange_id for r in reviews if r.reviewer_id == who]
        assert len(seen) == len(set(seen)) == 3
    for page in pages:  # which candidate answered never reaches the page
        assert "tgi-mistral" not in page and not re.search(r"\blocal\b", page)
    carol = await rig.reviewer("carol")
    async with carol.get(rig.url + "/ui/api/review/current") as response:
        assert (await response.json())["item"] is None  # every pair has its one review
