"""Real fake upstreams for the tests: aiohttp servers shaped like OpenAI and Ollama.

    fake = FakeOpenAI(persona="primary", expected_api_key="sk-test")
    async with running(fake.app) as server:
        client = AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-test")
        ...
    assert fake.requests[0].body["model"] == "gpt-4o-mini"

Switch faults with `fake.fault = Fault.HANG` (all requests) or the request
header `x-fake-fault: hang` (one request).
"""

from ._base import FAULT_HEADER, Cancellation, FakeUpstream, Fault, RecordedRequest
from .ollama_server import MANAGEMENT_PATHS, FakeOllama
from .openai_server import FakeOpenAI
from .server import RunningServer, ThreadedServer, running, start_server

__all__ = [
    "FAULT_HEADER",
    "MANAGEMENT_PATHS",
    "Cancellation",
    "FakeOllama",
    "FakeOpenAI",
    "FakeUpstream",
    "Fault",
    "RecordedRequest",
    "RunningServer",
    "ThreadedServer",
    "running",
    "start_server",
]
