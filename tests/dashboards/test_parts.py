"""The UI's small parts on their own: safe Markdown, agreement, the limiter, vendored files."""

from __future__ import annotations

import hashlib
import json
import math
import re

import pytest

from dashboards.app import STATIC_DIR, TEMPLATES_DIR
from dashboards.markdown import safe_markdown
from dashboards.ratelimit import SignInLimiter
from evaluation.agreement import between_reviewers, judge_vs_people

HOSTILE = (
    "<script>alert(1)</script>\n\n"
    '<img src=x onerror="alert(2)">\n\n'
    "[click me](javascript:alert(3)) [data](data:text/html;base64,PHNjcmlwdD4=) "
    "![pic](https://tracker.example/pixel.png)\n\n"
    "```python\nprint('<b>hi</b>')\n```\n\n- one\n- two\n"
)


def test_markdown_keeps_code_and_lists_and_defuses_html_and_script_links() -> None:
    html = str(safe_markdown(HOSTILE))
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "<img" not in html  # raw HTML escaped, images off
    assert "javascript:" not in html.replace("[click me](javascript:alert(3))", "")
    assert 'href="javascript' not in html and 'href="data' not in html
    assert "<pre><code" in html and "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "<li>one</li>" in html


def test_judge_vs_people_kappa() -> None:
    perfect = judge_vs_people(["candidate", "primary", "tie"], ["candidate", "primary", "tie"])
    assert perfect.kappa == pytest.approx(1.0) and perfect.compared == 3
    # 2x2 textbook table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5, kappa = 0.4.
    judge = ["candidate"] * 25 + ["primary"] * 25
    people = ["candidate"] * 20 + ["primary"] * 5 + ["candidate"] * 10 + ["primary"] * 15
    found = judge_vs_people(judge, people)
    assert found.kappa == pytest.approx(0.4)
    assert found.observed == pytest.approx(0.7)
    assert math.isnan(judge_vs_people([], []).kappa)


def test_between_reviewers_compares_every_two_people_on_a_pair() -> None:
    agree = between_reviewers([["candidate", "candidate"], ["primary", "primary", "primary"]])
    assert agree.compared == 4 and agree.kappa == pytest.approx(1.0)
    split = between_reviewers([["candidate", "primary"], ["primary", "candidate"]])
    assert split.observed == 0.0 and split.kappa < 0
    assert between_reviewers([["tie"]]).compared == 0


def test_limiter_allows_the_limit_per_minute_per_address() -> None:
    now = [1000.0]
    limiter = SignInLimiter(3, clock=lambda: now[0])
    assert [limiter.attempt("a") for _ in range(3)] == [None, None, None]
    wait = limiter.attempt("a")
    assert wait is not None and 59 <= wait <= 60
    assert limiter.attempt("b") is None  # another address has its own count
    now[0] += 60.5
    assert limiter.attempt("a") is None


def test_vendored_files_are_the_pinned_ones_and_nothing_loads_from_elsewhere() -> None:
    vendor = STATIC_DIR / "vendor"
    manifest = json.loads((vendor / "manifest.json").read_text())
    checked = 0
    for package, entry in manifest.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]), package
        assert set(entry["sha256"]) == set(entry["files"].values())
        for name, digest in entry["sha256"].items():
            assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
            checked += 1
    assert checked == 3
    for template in TEMPLATES_DIR.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), template.name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template.name  # no inline
        assert not re.search(r"\son[a-z]+=", text), template.name
