"""Reading a client's request body: one function for every route, with its limits."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from proxy.config import Limits
from proxy.errors import RequestError


async def read_body(request: web.Request, limits: Limits) -> bytes:
    """The whole body, or RequestError: 413 too large, 408 too slow, 400 undecodable.

    aiohttp decodes ``Content-Encoding`` while reading, so a body that claims gzip
    and is not fails here, as a 400, not later as a 500.
    """
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise _too_large(limits.max_body_bytes)
    try:
        if request.content.is_eof():  # all of it has arrived: reading cannot wait
            return await request.read()
        async with asyncio.timeout(limits.body_timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limits.max_body_bytes) from None
    except TimeoutError:
        raise RequestError(
            408,
            f"The request body did not arrive within {limits.body_timeout_s:g} s.",
            code="request_timeout",
        ) from None
    except (HttpProcessingError, RequestPayloadError, ValueError, OSError) as exc:
        # A corrupt compressed body (ContentEncodingError) or a broken chunked frame.
        raise RequestError(
            400,
            "We could not read the request body: its encoding is invalid "
            f"({type(exc).__name__}).",
            code="invalid_body_encoding",
        ) from None


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        f"Request body is larger than this proxy's limit of {limit} bytes.",
        code="request_too_large",
    )
