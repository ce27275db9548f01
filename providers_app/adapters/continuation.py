"""Continuation dialects: how a server is asked to continue a partial answer.

The mid-stream rescue (docs/engine.md) sends the request plus the text already
delivered as a final assistant message. Servers differ in how they must be told
that this message is to be continued rather than answered
(shared reference ``tools_structured_images_prefill.md`` §7; sources in
docs/vendors.md, "Continuing a partial answer"):

- ``none``: the server cannot continue (OpenAI and Azure start a new answer);
  the provider is never asked to.
- ``trailing_assistant``: a plain final assistant message is continued
  (Anthropic before Claude 4.6, Groq, OpenRouter, llama.cpp's server; Gemini's
  final ``model`` turn is the same thing in its own wire format).
- ``vllm``: ``continue_final_message: true`` with ``add_generation_prompt:
  false`` (both true is a 400).
- ``prefix``: ``prefix: true`` on the final assistant message (Mistral;
  DeepSeek on its ``/beta`` base URL).

This module is the vocabulary and the wire form; which dialect a provider has by
default is decided in ``capabilities.default_continuation``, and which dialects
each kind may be set to in ``models.CONTINUATIONS_BY_KIND``.
"""

from __future__ import annotations

from typing import Any

from .wordings import normalise_text

NONE = "none"
TRAILING_ASSISTANT = "trailing_assistant"
VLLM = "vllm"
PREFIX = "prefix"

DIALECTS = (NONE, TRAILING_ASSISTANT, VLLM, PREFIX)


def openai_continuation(body: dict[str, Any], dialect: str) -> None:
    """Mark ``body`` (an OpenAI Chat Completions body whose last message is the
    partial answer) as a continuation in ``dialect``; in place."""
    if dialect == VLLM:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False  # vLLM: both true is a 400
    elif dialect == PREFIX:
        body["messages"][-1]["prefix"] = True


# Wordings of a 400 that refuses a continuation, normalised like every wording
# (adapters/wordings.py); the reference §7.9 lists where each was seen.
_REFUSALS = tuple(
    normalise_text(wording)
    for wording in (
        "does not support assistant message prefill",  # Anthropic, Claude 4.6+
        "must end with a user message",  # Anthropic
        "Prefilling assistant messages",  # Anthropic migration guide
        "ending with a model turn",  # Gemini 3.5+
        "multiturn requests ends with a user role",  # early Gemini
        "Expected last role User or Tool",  # Mistral without prefix: true
        "continue_final_message",  # vLLM
        "final assistant content cannot end with trailing whitespace",  # Anthropic
        "prefix",  # "prefix is not supported", "unknown field prefix", "prefix mode"
        "prefill",  # any other server naming the prefill
    )
)


def refuses_continuation(message: str) -> bool:
    """True when an error message names the prefill or the continuation it refused."""
    text = f" {normalise_text(message)} "
    return any(f" {wording} " in text for wording in _REFUSALS)
