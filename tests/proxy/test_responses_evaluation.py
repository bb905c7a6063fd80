"""Responses pairs are scored like chat pairs: stored with ``route = responses``, judged on
their input, counted by the report, and shown to reviewers as a conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

import migrations
from dashboards.pages.review import conversation
from storage.database import Database
from storage.models import ExchangeRow
from tests.evaluation.judge_server import JudgeBehaviour, running_judge
from tests.proxy.conftest import RigFactory
from tests.understudy.test_judge import judge_args, understudy

QUESTIONS = ("Name the capital of France.", "Name a river in Spain.", "Name a Greek island.")


@pytest.mark.slow
async def test_responses_pairs_are_judged_reported_and_reviewable(
    make_rig: RigFactory, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(url)
    rig = await make_rig(
        record=True,
        database_url=url,
        storage={"spill_dir": str(tmp_path / "spill")},
        rollout={"mode": "shadow", "candidate": "local", "shadow_rate": 1.0},
    )
    client = rig.client()
    for number, question in enumerate(QUESTIONS):
        stream = await client.responses.create(
            model="gpt-4o-mini",
            input=question,
            instructions="Answer in one line.",
            stream=number == 0,
        )
        if number == 0:
            async for _ in stream:  # type: ignore[union-attr]
                pass
    await client.close()
    await rig.proxy.stop()  # the writer flushes on the way out
    async with Database(url) as db, db.sessions() as session:
        stored = (await session.execute(select(ExchangeRow.route, ExchangeRow.request))).all()
    assert [route for route, _ in stored] == ["responses"] * 3
    # A reviewer sees the instructions and the input as the conversation.
    assert conversation(stored[1][1]) == [
        {"role": "system", "text": "Answer in one line."},
        {"role": "user", "text": QUESTIONS[1]},
    ]

    behaviour = JudgeBehaviour(preferred_word="candidate")
    async with running_judge(behaviour) as judge_url:
        code, out, err = await understudy(url, *judge_args(judge_url, "--route", "responses"))
    assert code == 0, err
    assert out.startswith("judged 3 pairs"), out
    prompts = [json.dumps(request["messages"]) for request in behaviour.requests]
    for question in QUESTIONS:
        assert any(question in prompt and "Answer in one line." in prompt for prompt in prompts)

    code, out, err = await understudy(
        url,
        "report",
        "--route",
        "responses",
        "--format",
        "json",
        "--primary-model",
        "gpt-4o-mini",
        "--candidate-model",
        "gpt-4o-mini",
        key=None,
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == 3
    # The answers' texts are compared, and the judge's three outcomes counted.
    text_metrics = {m["name"]: m for m in report["text_metrics"]}
    assert text_metrics["token_f1"]["n"] == 3 and text_metrics["token_f1"]["mean"] > 0
    quality = next(m for m in report["verdict"]["metrics"] if m["name"] == "quality")
    assert quality["n"] == 3
