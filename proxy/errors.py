"""Errors in OpenAI's JSON shape, so SDKs raise their usual exceptions."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from aiohttp import web


class RequestError(Exception):
    """A client request Understudy refuses, with the status and OpenAI error fields to send."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type

    def response(self) -> web.Response:
        return error_response(
            self.status, self.message, error_type=self.error_type, param=self.param, code=self.code
        )


def error_response(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def redacted_upstream_error(body: bytes, redact: Callable[[str], str]) -> bytes:
    """An upstream's error body as a client may see it: any key it quotes is masked.

    Upstreams echo what they were sent (the operator's key among it); an answer that is
    not an error is relayed unchanged. Bytes that are not UTF-8 pass through as they are.
    """
    text = body.decode("utf-8", "surrogateescape")
    masked = redact(text)
    return body if masked == text else masked.encode("utf-8", "surrogateescape")


def redacted_upstream_headers(
    status: int, headers: Mapping[str, str], redact: Callable[[str], str]
) -> dict[str, str]:
    """An upstream's headers as a client may see them: on an error answer, where upstreams
    echo what they were sent, every value is masked like the body; an answer that
    succeeded keeps them as they are, at no cost on the hot path."""
    if status < 400:
        return dict(headers)
    return {name: redact(value) for name, value in headers.items()}
