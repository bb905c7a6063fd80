"""Tool-call equivalence: same functions with equal arguments, in any order.

Answers are compared as text: ``tool_calls_text`` turns ``core.ToolCall``
values into the JSON list this metric reads. Arguments are equal after
canonicalising key order and numbers (1 == 1.0). Parallel calls are compared
as a multiset because their order carries no meaning.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from core import Direction, ToolCall
from evaluation.metrics._json import canonical, parse_json


def tool_calls_text(calls: Sequence[ToolCall]) -> str:
    return json.dumps([{"name": c.name, "arguments": c.arguments} for c in calls])


def _canonical_calls(text: str) -> Counter[Any] | None:
    ok, value = parse_json(text)
    if not ok or not isinstance(value, list):
        return None
    calls: Counter[Any] = Counter()
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        arguments = item.get("arguments", "{}")
        if isinstance(arguments, str):
            args_ok, parsed = parse_json(arguments)
            # Unparseable arguments only match byte-identical unparseable arguments.
            key = canonical(parsed) if args_ok else ("raw", arguments)
        else:
            key = canonical(arguments)
        calls[(item["name"], key)] += 1
    return calls


class ToolCallMatch:
    name: ClassVar[str] = "tool_calls"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def score(self, candidate: str, reference: str) -> float:
        ref = _canonical_calls(reference)
        cand = _canonical_calls(candidate)
        if not ref and not cand:
            return float("nan")  # neither answer called a tool
        return 1.0 if ref == cand else 0.0
