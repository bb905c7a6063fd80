"""Parsing and canonical forms for JSON comparison."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class _Invalid(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not valid JSON")


def parse_json(text: str) -> tuple[bool, Any]:
    """(True, value) for strict JSON, also inside a single markdown code fence; else (False, None).

    Numbers become Decimal so 1 and 1.0 compare equal without float rounding.
    """
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        value = json.loads(
            body, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant
        )
    except ValueError:  # JSONDecodeError and _Invalid are both ValueErrors
        return False, None
    return True, value


def canonical(value: Any) -> Any:
    """A hashable form where key order does not matter and numbers compare by value.

    Each value is tagged with its JSON type so true never equals 1.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Decimal):
        return ("number", value.normalize())
    if isinstance(value, int | float):
        return ("number", Decimal(str(value)).normalize())
    if value is None:
        return ("null",)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, canonical(v)) for k, v in value.items())))
    raise TypeError(f"not a JSON value: {type(value).__name__}")
