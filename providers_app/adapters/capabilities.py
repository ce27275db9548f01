"""What a provider can take: defaults by kind and model, and per-request wire limits.

Two layers, both consulted before any call (``engine/capabilities.py``):

- ``default_capabilities(kind, model, base_url)``: what a provider takes by
  default (tools, structured output, images, and prefill, i.e. a continuation
  dialect other than ``none``: ``default_continuation``), as ``docs/clients.md``
  §5 lists them; an operator overrides each per provider;
- ``wire_limit(kind, model, request)``: request shapes a vendor's wire format
  cannot express at all (Gemini has no ``parallel_tool_calls: false``, Ollama no
  forced ``tool_choice`` and no image URLs). Sending those would silently drop
  part of the request, so such a provider is skipped for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from .continuation import NONE, PREFIX, TRAILING_ASSISTANT
from .schema import IMAGES, PREFILL, STRUCTURED_OUTPUT, TOOLS, ChatRequest

CAPABILITIES = (TOOLS, STRUCTURED_OUTPUT, IMAGES, PREFILL)


@dataclass(frozen=True)
class Capabilities:
    tools: bool
    structured_output: bool
    images: bool
    prefill: bool

    def has(self, capability: str) -> bool:
        return bool(getattr(self, capability))


_CLAUDE_NEW = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d)(?!\d))?")
_CLAUDE_OLD = re.compile(r"claude-(\d+)(?:-(\d)(?!\d))?-")
_GEMINI_PREFILL = re.compile(r"^(models/)?(gemini-2\.|gemini-3-|gemini-3\.1-|gemini-pro-latest)")
GEMINI_3 = re.compile(r"^(models/)?gemini-([3-9]|\d\d)")


def claude_version(model: str) -> tuple[int, int] | None:
    match = _CLAUDE_NEW.search(model) or _CLAUDE_OLD.search(model)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


@lru_cache(maxsize=512)
def default_capabilities(kind: str, model: str, base_url: str = "") -> Capabilities:
    prefill = default_continuation(kind, base_url, model) != NONE
    model = model.lower()
    if kind in ("openai", "azure_openai"):
        return Capabilities(True, True, not model.startswith("gpt-3.5"), prefill=prefill)
    if kind == "anthropic":
        version = claude_version(model) or (4, 5)  # an unknown name: assume a current model
        # output_config.format from the 4.5 generation.
        return Capabilities(True, version >= (4, 5), True, prefill=prefill)
    if kind in ("gemini", "simulated"):
        return Capabilities(True, True, True, prefill=prefill)
    # ollama, openai_compatible: tools and JSON are common, vision needs a model
    # that cannot be seen from here; turn it on per provider.
    return Capabilities(True, True, images=False, prefill=prefill)


@lru_cache(maxsize=512)
def default_continuation(kind: str, base_url: str, model: str) -> str:
    """The continuation dialect of a provider, where kind, base URL and model say it
    unambiguously; ``none`` elsewhere (an operator sets it, or it stays off).
    Sources: docs/vendors.md, "Continuing a partial answer"."""
    model = model.lower()
    if kind == "anthropic":
        version = claude_version(model) or (4, 5)  # an unknown name: assume a current model
        return TRAILING_ASSISTANT if version < (4, 6) else NONE  # 4.6+ answer 400
    if kind == "gemini":
        return TRAILING_ASSISTANT if _GEMINI_PREFILL.match(model) else NONE
    if kind == "simulated":
        return TRAILING_ASSISTANT  # the local simulator's default dialect
    if kind != "openai_compatible":
        # openai, azure_openai: a trailing assistant message starts a new answer.
        # ollama: continued only if the model's template leaves the turn open.
        return NONE
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if host == "api.mistral.ai":
        return PREFIX
    if host == "api.deepseek.com":
        # Chat prefix completion is a beta feature, served on /beta only.
        return PREFIX if parts.path.rstrip("/").endswith("/beta") else NONE
    if host == "api.groq.com":
        return TRAILING_ASSISTANT
    if host == "openrouter.ai":
        return _openrouter_continuation(model)
    # vLLM, llama.cpp, Together, LiteLLM...: self-hosted or unknown servers cannot
    # be told apart by their URL; the operator picks the dialect.
    return NONE


def _openrouter_continuation(model: str) -> str:
    """OpenRouter passes a trailing assistant message on; the upstream decides."""
    vendor, _, name = model.partition("/")
    name = name.split(":")[0]  # "...:free", "...:beta"
    if vendor == "openai":
        return NONE
    if vendor == "anthropic":  # "claude-sonnet-4.5" -> "claude-sonnet-4-5"
        return default_continuation("anthropic", "", name.replace(".", "-"))
    if vendor == "google":
        return default_continuation("gemini", "", name)
    return TRAILING_ASSISTANT


def wire_limit(kind: str, model: str, request: ChatRequest) -> str | None:
    """The request field this vendor's wire format cannot carry, or None."""
    if kind == "gemini":
        if request.parallel_tool_calls is False and request.tools:
            return "parallel_tool_calls"
        if request.tools and request.response_format and not GEMINI_3.match(model.lower()):
            return "tools_with_response_format"  # Gemini 2.x: 400 "unsupported"
        if any(not (t.name[0].isalpha() or t.name[0] == "_") for t in request.tools):
            return "tool_name"  # Gemini names start with a letter or an underscore
    if kind == "ollama":
        if request.parallel_tool_calls is False and request.tools:
            return "parallel_tool_calls"  # no such switch in /api/chat
        choice = request.tool_choice
        if choice is not None and choice.mode == "required":
            return "tool_choice"
        if any(not image.inline for m in request.messages for image in m.images):
            return "image_url"  # base64 only; fetching URLs here would be an SSRF surface
    return None
