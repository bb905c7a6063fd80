"""A Chat Completions stream, chunk by chunk, as a Responses API event stream.

A reasoning model's thinking (a delta's ``reasoning_content`` or ``reasoning``) streams as a
``reasoning`` item, as gpt-oss does on OpenAI's own Responses server:
``response.output_item.added``, ``response.content_part.added`` (a ``reasoning_text``
part), ``response.reasoning_text.delta`` events, then ``response.reasoning_text.done``,
``response.content_part.done`` and ``response.output_item.done`` before the answer's item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.responses import shapes


@dataclass(frozen=True, slots=True)
class _ContentKind:
    """An output item whose text streams as deltas: a message's answer, or reasoning."""

    item_type: str
    id_prefix: str
    new_item: Callable[[str, str | None, str], dict[str, Any]]
    new_part: Callable[[str], dict[str, Any]]
    delta_event: str
    delta_extra: Mapping[str, Any] = field(default_factory=dict)


_MESSAGE = _ContentKind(
    "message",
    "msg",
    shapes.message_item,
    shapes.text_part,
    "response.output_text.delta",
    {"logprobs": []},
)
_REASONING = _ContentKind(
    "reasoning", "rs", shapes.reasoning_item, shapes.reasoning_part, "response.reasoning_text.delta"
)


class EventStream:
    """Feed it chat chunks (parsed JSON) in order; it returns the events' SSE bytes."""

    def __init__(self, rid: str, created: int, request: Mapping[str, Any]) -> None:
        self._rid = rid
        self._created = created
        self._request = request
        self._sequence = 0
        self.output: list[dict[str, Any]] = []
        self._open: int | None = None  # output index of the item still receiving deltas
        self._calls: dict[int, int] = {}  # chat tool-call index -> output index
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return shapes.sse(event)

    def _snapshot(self, status: str, incomplete: dict[str, str] | None = None) -> dict[str, Any]:
        return shapes.response(
            self._rid,
            self._created,
            self._request,
            status=status,
            output=self.output if status != "in_progress" else [],
            usage=self.usage if status != "in_progress" else None,
            incomplete=incomplete,
        )

    def opening(self) -> bytes:
        snapshot = self._snapshot("in_progress")
        return self._event("response.created", response=snapshot) + self._event(
            "response.in_progress", response=snapshot
        )

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        out = b""
        if isinstance(chunk.get("usage"), Mapping):
            self.usage = shapes.usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, Mapping) else {}
            thinking = shapes.reasoning_of(delta)
            if thinking:
                out += self._reasoning(thinking)
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += self._text(content)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    out += self._call(call)
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        return out

    def _reasoning(self, piece: str) -> bytes:
        return self._content(piece, _REASONING)

    def _text(self, piece: str) -> bytes:
        return self._content(piece, _MESSAGE)

    def _content(self, piece: str, kind: _ContentKind) -> bytes:
        """``piece`` appended to the open item of ``kind``, opened first if another is open."""
        out = b""
        current = self.output[self._open] if self._open is not None else None
        if current is None or current["type"] != kind.item_type:
            out += self._close()
            index = len(self.output)
            item = kind.new_item(shapes.new_id(kind.id_prefix), None, "in_progress")
            self.output.append(item)
            self._open = index
            out += self._event("response.output_item.added", output_index=index, item=item)
            out += self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=kind.new_part(""),
            )
            item["content"].append(kind.new_part(""))
        assert self._open is not None  # an item of this kind was open or has just been opened
        item = self.output[self._open]
        item["content"][0]["text"] += piece
        return out + self._event(
            kind.delta_event,
            item_id=item["id"],
            output_index=self._open,
            content_index=0,
            delta=piece,
            **kind.delta_extra,
        )

    def _call(self, call: Mapping[str, Any]) -> bytes:
        out = b""
        position = call.get("index", 0)
        position = position if type(position) is int else 0
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        if position not in self._calls:
            out += self._close()
            index = len(self.output)
            item = shapes.call_item(
                shapes.new_id("fc"),
                str(call.get("id") or shapes.new_id("call")),
                str(function.get("name") or ""),
                "",
                "in_progress",
            )
            self.output.append(item)
            self._calls[position] = self._open = index
            out += self._event("response.output_item.added", output_index=index, item=dict(item))
        index = self._calls[position]
        item = self.output[index]
        if not item["name"] and isinstance(function.get("name"), str):
            item["name"] = function["name"]
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            item["arguments"] += fragment
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=fragment,
            )
        return out

    def _close(self) -> bytes:
        """End the item receiving deltas, if any, with its done events."""
        if self._open is None:
            return b""
        index, self._open = self._open, None
        item = self.output[index]
        item["status"] = "completed"
        out = b""
        if item["type"] == "message":
            part = item["content"][0]
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out += self._event(
                "response.output_text.done", **common, text=part["text"], logprobs=[]
            )
            out += self._event("response.content_part.done", **common, part=part)
        elif item["type"] == "reasoning":
            part = item["content"][0]
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out += self._event("response.reasoning_text.done", **common, text=part["text"])
            out += self._event("response.content_part.done", **common, part=part)
        else:
            out += self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def closing(self) -> bytes:
        out = self._close()
        status, _ = shapes.status_of(self.finish_reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, response=self.result())

    def result(self) -> dict[str, Any]:
        status, incomplete = shapes.status_of(self.finish_reason)
        return self._snapshot(status, incomplete)
