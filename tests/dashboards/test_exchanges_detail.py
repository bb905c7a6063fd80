"""One exchange in full: the word diff, timing bars, per-pair metrics worked out by hand here,
the judge's verdicts and people's reviews, hostile text escaped, and 404 for unknown ids."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

from markupsafe import escape
from sqlalchemy import insert, select

from core import ErrorKind, Exchange, Role, RolloutMode, Usage
from core.outcome import PairOutcome
from dashboards.exchange_view import BAR_WIDTH
from dashboards.worddiff import word_diff
from evaluation.metrics.registry import DEFAULT_METRICS, build_metric
from storage.judgments import Judgment, add_judgments
from storage.models import ReviewerRow, ReviewRow
from storage.reviewers import add_reviewer
from tests.dashboards.conftest import UiRig, store_pairs
from tests.storage.factories import decision, full_exchange, noise_arm, served_arm, shadow_arm

PRIMARY_TEXT = "The quick brown fox jumps over the lazy dog."
CANDIDATE_TEXT = "The quick red fox leaps over the lazy dog."
RERUN_TEXT = "The quick brown fox jumped over the lazy dog."
REASONING = "First *think* <b>hard</b>, then answer."
HOSTILE = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>']


def _marked(tag: str, page: str) -> list[str]:
    """The words inside every <tag> of ``page``."""
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
    return [word for run in found for word in html.unescape(run).split()]


def _plain(marked: str) -> str:
    return html.unescape(re.sub(r"</?(ins|del)>", "", marked))


# ---- the diff on its own ------------------------------------------------------------------------


def test_the_diff_marks_exactly_the_changed_words_and_keeps_the_text() -> None:
    d = word_diff(PRIMARY_TEXT, CANDIDATE_TEXT)
    assert d.marked
    assert _marked("del", d.old) == ["brown", "jumps"] and _marked("ins", d.old) == []
    assert _marked("ins", d.new) == ["red", "leaps"] and _marked("del", d.new) == []
    assert _plain(d.old) == PRIMARY_TEXT and _plain(d.new) == CANDIDATE_TEXT

    # Neighbouring changed words share one mark; spacing and lines survive as written.
    old, new = "  one two\nthree  four five\n", "one TWO\nTHREE  four five six"
    d = word_diff(old, new)
    assert str(d.old) == "  one <del>two\nthree</del>  four five\n"
    assert str(d.new) == "one <ins>TWO\nTHREE</ins>  four five <ins>six</ins>"

    d = word_diff("", "all new")
    assert (str(d.old), _marked("ins", d.new)) == ("", ["all", "new"])
    d = word_diff("same words", "same words")
    assert "<" not in d.old + d.new


def test_the_diff_escapes_every_character_before_marking() -> None:
    d = word_diff(f"safe {HOSTILE[0]}", f"safe {HOSTILE[1]} & more")
    assert "<script" not in d.old and "<img" not in d.new
    assert _plain(d.old) == f"safe {HOSTILE[0]}" and _plain(d.new) == f"safe {HOSTILE[1]} & more"
    assert _marked("ins", d.new) == [*HOSTILE[1].split(), "&", "more"]


def test_answers_too_long_to_compare_are_shown_unmarked_and_say_so() -> None:
    one, other = "a b " * 600, "b a " * 600
    d = word_diff(one, other, max_word_pairs=1_000_000)
    assert not d.marked and (d.old_words, d.new_words) == (1200, 1200)
    assert _plain(d.old) == one and "<" not in d.old + d.new
    # Long answers that differ in one place: the common ends are set aside, so it is marked.
    same = "word " * 5000
    d = word_diff(same + "end", same + "finish")
    assert d.marked and _marked("del", d.old) == ["end"] and _marked("ins", d.new) == ["finish"]


# ---- the page -----------------------------------------------------------------------------------


def _pair_exchange() -> Exchange:
    return full_exchange(
        id=uuid.uuid4(),
        created_at=datetime.now(UTC) - timedelta(minutes=5),
        decision=decision(shadow="local", noise=True, mode=RolloutMode.SHADOW),
        fallback=False,
        request={
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"Say it {HOSTILE[0]} {HOSTILE[1]}"},
            ],
        },
        observations=(
            served_arm(text=PRIMARY_TEXT, tool_calls=(), latency_ms=800.0, ttft_ms=200.0),
            shadow_arm(
                upstream="local",
                status=200,
                error_kind=None,
                latency_ms=1600.0,
                ttft_ms=400.0,
                text=CANDIDATE_TEXT,
                reasoning_text=REASONING,
                ttft_any_ms=50.0,
                usage=Usage(prompt_tokens=12, completion_tokens=30, reasoning_tokens=21),
            ),
            noise_arm(
                status=200, error_kind=None, latency_ms=400.0, ttft_ms=100.0, text=RERUN_TEXT
            ),
        ),
    )


async def _seed_verdicts(rig: UiRig, exchange_id: uuid.UUID) -> None:
    at = datetime.now(UTC)
    detail = {"candidate_first": "primary", "consistent": False, "why": HOSTILE[0]}
    await add_judgments(
        rig.db, [Judgment(exchange_id, "local", "judge-1", "v2", PairOutcome.PRIMARY, detail)]
    )
    await add_reviewer(rig.db, "ana", "hash-ana", at, at + timedelta(days=1))
    async with rig.db.engine.begin() as conn:
        ana = (await conn.execute(select(ReviewerRow.id))).scalar_one()
        await conn.execute(
            insert(ReviewRow),
            [
                {
                    "id": uuid.uuid4(),
                    "item_token": "token-ana",
                    "reviewer_id": ana,
                    "exchange_id": exchange_id,
                    "candidate": "local",
                    "route": "chat.completions",
                    "shown_order": "candidate_first",
                    "outcome": "both_bad",
                    "time_taken_ms": 4200.0,
                    "note": HOSTILE[1],
                    "shown_at": at,
                    "decided_at": at,
                    "created_at": at,
                }
            ],
        )


def _cell(page: str, metric: str, column: str) -> str:
    row = re.search(rf'<tr data-metric="{metric}">(.*?)</tr>', page, flags=re.S)
    assert row is not None, metric
    found = re.search(rf'<td class="num {column}">([^<]*)</td>', row.group(1))
    assert found is not None
    return found.group(1)


async def test_the_detail_shows_the_pair_diffed_timed_scored_judged_and_reviewed(
    make_ui_rig,
) -> None:
    rig: UiRig = await make_ui_rig()
    exchange = _pair_exchange()
    await store_pairs(rig.db, [exchange])
    await _seed_verdicts(rig, exchange.id)
    admin = await rig.admin()
    async with admin.get(f"{rig.url}/ui/exchanges/{exchange.id}") as response:
        assert response.status == 200
        page = await response.text()

    # The pair side by side, only the changed words marked.
    primary = re.search(r'class="diff diff-primary">(.*?)</div>', page, flags=re.S)
    candidate = re.search(r'class="diff diff-candidate">(.*?)</div>', page, flags=re.S)
    assert primary and candidate
    assert _marked("del", primary.group(1)) == ["brown", "jumps"]
    assert _marked("ins", candidate.group(1)) == ["red", "leaps"]
    assert _plain(candidate.group(1)) == CANDIDATE_TEXT

    # Metrics worked out here: tokens lower-cased, punctuation and articles dropped, so
    # 7 tokens a side of which 5 shared (6 with the primary's own second answer).
    assert _cell(page, "token_f1", "vs-primary") == f"{5 / 7:.3f}"
    assert _cell(page, "token_f1", "vs-rerun") == f"{6 / 7:.3f}"
    assert _cell(page, "rouge_l", "vs-primary") == f"{5 / 7:.3f}"  # the 5 shared, in order
    assert _cell(page, "exact_match", "vs-primary") == "0.000"
    assert _cell(page, "length_ratio", "vs-primary") == "1.000"  # 9 words each
    assert _cell(page, "json_equal", "vs-primary") == "does not apply"
    for name in DEFAULT_METRICS:  # every metric, as the evaluation's own code scores it
        value = build_metric(name).score(CANDIDATE_TEXT, PRIMARY_TEXT)
        shown = _cell(page, name, "vs-primary")
        assert shown == ("does not apply" if value != value else f"{value:.3f}"), name

    # Timing bars: widths in proportion to the longest time, 1,600 ms.
    bars = re.findall(r'<rect class="bar-(total|ttft)" x="0" y="[\d.]+" width="([\d.]+)"', page)
    widths = [(kind, float(w)) for kind, w in bars]
    scale = BAR_WIDTH / 1600.0
    assert widths == [
        ("total", 800 * scale), ("ttft", 200 * scale),
        ("total", 1600 * scale), ("ttft", 400 * scale),
        ("total", 400 * scale), ("ttft", 100 * scale),
    ]  # fmt: skip
    assert "first token 400 ms, total 1,600 ms" in page

    # A reasoning model's thinking: beside its answer, never in the diff or the metrics.
    assert "First <em>think</em> &lt;b&gt;hard&lt;/b&gt;, then answer." in page
    assert "first reasoning token 50 ms" in page and "12 / 30 / – / 21" in page

    # The judge and the reviewer, with what they said.
    judged = re.search(r'<table class="grid judgments">(.*?)</table>', page, flags=re.S)
    assert judged and "judge-1" in judged.group(1) and ">primary<" in judged.group(1)
    assert "consistent: False" in judged.group(1)
    reviewed = re.search(r'<table class="grid reviews">(.*?)</table>', page, flags=re.S)
    assert reviewed and "<td>ana</td>" in reviewed.group(1)
    assert ">both bad<" in reviewed.group(1) and "4.2 s" in reviewed.group(1)

    # Hostile text in the prompt, an answer's metadata, a note and the judge's detail: escaped.
    for hostile in HOSTILE:
        assert hostile not in page
        assert str(escape(hostile)) in page  # shown, as text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&#34;temperature&#34;: 0.2" in page  # the stored request's parameters


async def test_exchanges_without_a_full_pair_say_so(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    failed = full_exchange(
        id=uuid.uuid4(),
        decision=decision(shadow="local", noise=False),
        observations=(served_arm(text="Fine."), shadow_arm(upstream="local")),  # timed out
    )
    alone = full_exchange(
        id=uuid.uuid4(),
        decision=decision(shadow=None, noise=False, mode=RolloutMode.SHADOW),
        observations=(served_arm(text="Only *one* arm.", tool_calls=()),),
    )
    await store_pairs(rig.db, [failed, alone])
    admin = await rig.admin()
    async with admin.get(f"{rig.url}/ui/exchanges/{failed.id}") as response:
        page = await response.text()
    assert response.status == 200
    assert 'class="quiet no-diff"' in page and "No word diff and no metric" in page
    assert ErrorKind.TIMEOUT.value in page and "no response" in page
    assert "get_weather" in page  # the primary's tool calls
    async with admin.get(f"{rig.url}/ui/exchanges/{alone.id}") as response:
        page = await response.text()
    assert response.status == 200
    assert "This exchange has no candidate-vs-primary pair." in page
    assert "Only <em>one</em> arm." in page  # its answer as Markdown
    assert alone.observations[0].role is Role.SERVED


async def test_unknown_or_malformed_ids_get_a_404_page(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    admin = await rig.admin()
    for ident in (str(uuid.uuid4()), "not-an-id", "1' OR '1'='1", "%3Cscript%3E"):
        async with admin.get(f"{rig.url}/ui/exchanges/{ident}") as response:
            assert response.status == 404, ident
            page = await response.text()
        assert "No exchange has this id." in page and "<script>" not in page


async def test_each_shadow_candidate_gets_its_own_pair_on_the_page(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    base = _pair_exchange()
    other = shadow_arm(
        upstream="tgi-mistral", status=200, error_kind=None, text="A slow brown fox jumps."
    )
    exchange = full_exchange(
        id=base.id,
        created_at=base.created_at,
        decision=base.decision,
        fallback=False,
        request=base.request,
        observations=(*base.observations, other),
    )
    await store_pairs(rig.db, [exchange])
    await _seed_verdicts(rig, exchange.id)  # the judge and the reviewer saw "local" only
    admin = await rig.admin()
    async with admin.get(f"{rig.url}/ui/exchanges/{exchange.id}") as response:
        assert response.status == 200
        page = await response.text()

    sections = re.findall(r'<section class="pair" id="pair-\d" data-candidate="([^"]+)">', page)
    assert sections == ["local", "tgi-mistral"]
    second = page[page.index('data-candidate="tgi-mistral"') :]
    diff = re.search(r'class="diff diff-candidate">(.*?)</div>', second, flags=re.S)
    assert diff and _marked("ins", diff.group(1)) == ["A", "slow", "jumps."]
    assert "Not judged." in second and "Nobody has reviewed this pair." in second
    first = page[: page.index('data-candidate="tgi-mistral"')]
    assert "judge-1" in first and "<td>ana</td>" in first
