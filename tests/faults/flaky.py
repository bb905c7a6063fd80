"""A fault mode the shared fakes lack: a fixed share of chat requests answered with OpenAI's 500."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from tests.fakes import FakeOpenAI, Fault, RecordedRequest

CHAT_PATH = "/v1/chat/completions"


class FlakyOpenAI(FakeOpenAI):
    """A fake OpenAI whose chat requests fail with 500 at ``error_ratio``, spread evenly
    (with 0.5, every second one), so a test knows exactly how many failures were served."""

    def __init__(self, *, error_ratio: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= error_ratio <= 1:
            raise ValueError("error_ratio must be between 0 and 1")
        self.error_ratio = error_ratio
        self._chat_calls = 0

    def _next_fails(self) -> bool:
        n = self._chat_calls
        self._chat_calls += 1
        return math.floor((n + 1) * self.error_ratio) > math.floor(n * self.error_ratio)

    async def _early_fault(
        self, request: web.Request, record: RecordedRequest, fault: str
    ) -> web.StreamResponse | None:
        if not fault and record.path == CHAT_PATH and self._next_fails():
            fault = Fault.HTTP_500
        return await super()._early_fault(request, record, fault)
