"""The values adapters take and return: requests, results, stream deltas, config.

Plain frozen dataclasses, importable without ``requests``; ``base.py``
re-exports them as part of the adapter contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    role: str  # system, user, assistant
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    user: str | None = None

    @property
    def system_prompt(self) -> str | None:
        """All system messages joined, for vendors that take the system prompt apart."""
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

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

    @property
    def is_output(self) -> bool:
        """True when this delta carries model output: forwarding it commits the stream."""
        return bool(self.text)


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


@dataclass(frozen=True)
class Completion:
    """What a vendor module reads out of a successful non-streaming body."""

    text: str
    raw_finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None
    request_id: str | None = None
