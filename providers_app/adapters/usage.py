"""Token usage as each vendor reports it, and the estimate used where none is reported.

Every wire format names its counters differently (docs/usage.md has the table).
The readers here turn one vendor usage object into the same three numbers:

- ``input_tokens``: every prompt token the vendor billed, cached ones included
  (OpenAI's ``prompt_tokens``; Anthropic's ``input_tokens`` plus its cache reads
  and writes, which it reports apart; Gemini's ``promptTokenCount``; Ollama's
  ``prompt_eval_count``);
- ``cached_input_tokens``: the part of those billed at the cached-input price;
- ``output_tokens``: every generated token billed, reasoning included (Gemini
  reports ``thoughtsTokenCount`` beside ``candidatesTokenCount``).

A reader returns None for a counter the vendor did not send, so that a stream's
later usage event never overwrites a known count with nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .normalise import dig, token_count

# The estimate where a vendor reports nothing: OpenAI's published rule of thumb,
# one token per four characters of English text. Marked ``estimated`` wherever
# it is shown or counted.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Usage:
    """The tokens one attempt was billed for."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated: bool = False  # at least one counter is our estimate, not the vendor's
    failed_attempt: bool = False  # billed for an attempt that did not answer (a cut stream)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the documented estimate (at least 1 for any text)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def usage_of(
    input_tokens: int | None,
    output_tokens: int | None,
    cached_input_tokens: int | None = None,
    *,
    prompt_text: str = "",
    output_text: str = "",
    failed_attempt: bool = False,
) -> Usage:
    """The vendor's counts, each missing one estimated from the text (and marked)."""
    estimated = input_tokens is None or output_tokens is None
    if input_tokens is None:
        input_tokens = estimate_tokens(prompt_text)
    if output_tokens is None:
        output_tokens = estimate_tokens(output_text)
    cached = min(cached_input_tokens or 0, input_tokens)
    return Usage(input_tokens, output_tokens, cached, estimated, failed_attempt)


def _sum(*values: Any) -> int | None:
    counts = [token_count(value) for value in values]
    if counts[0] is None:
        return None
    return sum(count or 0 for count in counts)


def openai_usage(usage: Any) -> dict[str, int | None]:
    """``usage`` of OpenAI, Azure and OpenAI-compatible servers (Groq: ``x_groq.usage``)."""
    return {
        "input_tokens": token_count(dig(usage, "prompt_tokens")),
        "output_tokens": token_count(dig(usage, "completion_tokens")),
        "cached_input_tokens": token_count(dig(usage, "prompt_tokens_details", "cached_tokens")),
    }


def anthropic_usage(usage: Any) -> dict[str, int | None]:
    """Anthropic's ``usage``: ``input_tokens`` excludes cache reads and writes."""
    usage = usage if isinstance(usage, dict) else {}
    return {
        "input_tokens": _sum(
            usage.get("input_tokens"),
            usage.get("cache_read_input_tokens"),
            usage.get("cache_creation_input_tokens"),
        ),
        "output_tokens": token_count(usage.get("output_tokens")),
        "cached_input_tokens": token_count(usage.get("cache_read_input_tokens")),
    }


def gemini_usage(metadata: Any) -> dict[str, int | None]:
    """Gemini's ``usageMetadata``; thinking tokens are billed as output."""
    metadata = metadata if isinstance(metadata, dict) else {}
    output = _sum(metadata.get("candidatesTokenCount"), metadata.get("thoughtsTokenCount"))
    if output is None and token_count(metadata.get("thoughtsTokenCount")) is not None:
        output = metadata["thoughtsTokenCount"]
    return {
        "input_tokens": token_count(metadata.get("promptTokenCount")),
        "output_tokens": output,
        "cached_input_tokens": token_count(metadata.get("cachedContentTokenCount")),
    }


def ollama_usage(payload: Any) -> dict[str, int | None]:
    """Ollama's last (``done: true``) object: ``prompt_eval_count`` and ``eval_count``."""
    payload = payload if isinstance(payload, dict) else {}
    return {
        "input_tokens": token_count(payload.get("prompt_eval_count")),
        "output_tokens": token_count(payload.get("eval_count")),
        "cached_input_tokens": None,
    }
