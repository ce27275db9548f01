"""The values adapters take and return: requests, results, stream deltas, config.

Plain frozen dataclasses, importable without ``requests``; ``base.py``
re-exports them as part of the adapter contract.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The capabilities a request may need (``ChatRequest.required_capabilities``).
TOOLS = "tools"
STRUCTURED_OUTPUT = "structured_output"
IMAGES = "images"
PREFILL = "prefill"

_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ImagePart:
    """An ``image_url`` content part: an http(s) URL or a base64 ``data:`` URL."""

    url: str = field(repr=False)
    detail: str | None = None  # auto, low, high (OpenAI only; others have no equivalent)

    @property
    def inline(self) -> tuple[str, str] | None:
        """``(media_type, base64 data)`` for a data URL, else None."""
        match = _DATA_URL.match(self.url)
        return (match.group(1).lower(), match.group(2)) if match else None

    @property
    def media_type_guess(self) -> str:
        """The declared type of a data URL, else one guessed from the URL's extension."""
        inline = self.inline
        if inline:
            return inline[0]
        path = self.url.split("?", 1)[0].lower()
        for ext, media in (("png", "png"), ("gif", "gif"), ("webp", "webp")):
            if path.endswith("." + ext):
                return f"image/{media}"
        return "image/jpeg"


def valid_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@dataclass(frozen=True)
class TextPart:
    text: str


ContentPart = TextPart | ImagePart


@dataclass(frozen=True)
class ToolCall:
    """A function call the model made; ``arguments`` is the JSON text, as OpenAI sends it.

    ``thought_signature`` is Gemini's opaque token for the call, carried through the
    client as ``extra_content.google.thought_signature`` (never packed into the id).
    """

    id: str
    name: str
    arguments: str
    thought_signature: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ToolCallDelta:
    """One streamed piece of a tool call, in the OpenAI SDK's accumulation shape:
    ``id`` and ``name`` only on the first piece of an ``index``, then argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    thought_signature: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Tool:
    """A function tool; ``parameters`` is its JSON schema (None: no arguments)."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class ResponseFormat:
    """``json_object`` (any JSON) or ``json_schema`` (a named schema, maybe strict)."""

    type: str  # json_object, json_schema
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool = False
    description: str | None = None


@dataclass(frozen=True)
class ToolChoice:
    """``mode`` is none, auto or required; ``name`` forces one function (mode required)."""

    mode: str
    name: str | None = None


@dataclass(frozen=True)
class Message:
    """One turn. ``content`` is plain text or a tuple of text/image parts.

    Assistant turns may carry ``tool_calls``; ``role == "tool"`` turns answer the
    call named by ``tool_call_id`` (``name`` is filled in from the call when parsing).
    """

    role: str  # system, user, assistant, tool
    content: str | tuple[ContentPart, ...] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """The text of the message; parts are joined with newlines, images left out."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def parts(self) -> tuple[ContentPart, ...]:
        if isinstance(self.content, str):
            return (TextPart(self.content),) if self.content else ()
        return self.content

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))


def message_from_dict(message: Mapping[str, Any]) -> Message:
    """An OpenAI-shaped message dict as a Message, keeping its tool fields.

    For Python callers of the engine (``fallback.complete(messages=[{...}])``);
    the HTTP API validates client input itself (``api/parsing.py``). Tool calls
    may be ToolCall objects or OpenAI ``{"id", "function": {"name",
    "arguments"}}`` dicts; content may be text or a list of ``text`` and
    ``image_url`` parts.
    """
    content = message.get("content")
    if content is None:
        content = ""
    elif not isinstance(content, str):
        content = tuple(_part_from_dict(part) for part in content)
    return Message(
        role=message["role"],
        content=content,
        tool_calls=tuple(_tool_call_from_dict(c) for c in message.get("tool_calls") or ()),
        tool_call_id=message.get("tool_call_id"),
        name=message.get("name"),
    )


def _part_from_dict(part: Any) -> ContentPart:
    if isinstance(part, TextPart | ImagePart):
        return part
    if part.get("type") == "image_url":
        image = part["image_url"]
        if isinstance(image, str):
            return ImagePart(url=image)
        return ImagePart(url=image["url"], detail=image.get("detail"))
    return TextPart(part["text"])


def _tool_call_from_dict(call: Any) -> ToolCall:
    if isinstance(call, ToolCall):
        return call
    function = call["function"]
    return ToolCall(id=call["id"], name=function["name"], arguments=function.get("arguments", ""))


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    user: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    # The last message is a partial assistant answer to continue (a prefill), not
    # history to answer: the mid-stream rescue's continuation request.
    continue_final: bool = False

    @property
    def system_prompt(self) -> str | None:
        """All system messages joined, for vendors that take the system prompt apart."""
        parts = [m.text for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def uses_tools(self) -> bool:
        """Tools offered, or a history holding tool calls or results."""
        return bool(self.tools) or any(m.tool_calls or m.role == "tool" for m in self.messages)

    @property
    def required_capabilities(self) -> frozenset[str]:
        """What a provider must support to take this request without dropping anything."""
        needs = set()
        if self.uses_tools:
            needs.add(TOOLS)
        if self.response_format is not None:
            needs.add(STRUCTURED_OUTPUT)
        if any(m.images for m in self.messages):
            needs.add(IMAGES)
        if self.continue_final:
            needs.add(PREFILL)
        return frozenset(needs)

    @property
    def prefill_text(self) -> str | None:
        """The partial answer to continue, when ``continue_final`` is set."""
        if not self.continue_final or not self.messages:
            return None
        return self.messages[-1].text

    @property
    def conversation(self) -> tuple[Message, ...]:
        """The messages without the system ones."""
        return tuple(m for m in self.messages if m.role != "system")


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str  # normalised: stop, length, content_filter, tool_calls, other
    input_tokens: int | None
    output_tokens: int | None
    model: str
    request_id: str | None
    latency_s: float
    raw_finish_reason: str | None = None  # the vendor's own word, for logs
    tool_calls: tuple[ToolCall, ...] = ()
    cached_input_tokens: int | None = None  # part of input_tokens billed as cached


@dataclass(frozen=True)
class StreamDelta:
    text: str = ""  # model output; "" for metadata such as the final finish/usage delta
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    request_id: str | None = None
    # On the final delta: undecodable events the stream skipped (adapters/streaming.py).
    skipped_events: int = 0
    raw_finish_reason: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    cached_input_tokens: int | None = None

    @property
    def is_output(self) -> bool:
        """True when this delta carries model output: forwarding it commits the stream."""
        return bool(self.text) or bool(self.tool_calls)


@dataclass(frozen=True)
class AdapterConfig:
    provider: str  # provider name, used in errors/logs
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    # Extra headers may hold credentials too (an org id, a proxy token): kept out of repr.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    params: Mapping[str, str] = field(default_factory=dict)  # e.g. Azure api-version
    connect_timeout_s: float = 3.05
    # How this server is asked to continue a partial answer (adapters/continuation.py);
    # the engine sends a continuation only to providers whose dialect is not "none".
    continuation: str = "trailing_assistant"


@dataclass(frozen=True)
class Completion:
    """What a vendor module reads out of a successful non-streaming body."""

    text: str
    raw_finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None
    request_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    cached_input_tokens: int | None = None
