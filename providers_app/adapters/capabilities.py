"""What a provider can take: defaults by kind and model, and per-request wire limits.

Two layers, both consulted before any call (``engine/capabilities.py``):

- ``default_capabilities(kind, model)``: the four switches an operator can
  override per provider (tools, structured output, images, prefill), defaulted
  from the vendor and model as ``docs/clients.md`` §5 lists them;
- ``wire_limit(kind, model, request)``: request shapes a vendor's wire format
  cannot express at all (Gemini has no ``parallel_tool_calls: false``, Ollama no
  forced ``tool_choice`` and no image URLs). Sending those would silently drop
  part of the request, so such a provider is skipped for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

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
def default_capabilities(kind: str, model: str) -> Capabilities:
    model = model.lower()
    if kind in ("openai", "azure_openai"):
        # OpenAI has no continuation: a trailing assistant message starts a new answer.
        return Capabilities(True, True, not model.startswith("gpt-3.5"), prefill=False)
    if kind == "anthropic":
        version = claude_version(model) or (4, 5)  # an unknown name: assume a current model
        # output_config.format from the 4.5 generation; 4.6+ refuse assistant prefill.
        return Capabilities(True, version >= (4, 5), True, prefill=version < (4, 6))
    if kind == "gemini":
        return Capabilities(True, True, True, prefill=bool(_GEMINI_PREFILL.match(model)))
    if kind == "ollama":
        # Images and prefill depend on the model; turn them on per provider.
        return Capabilities(True, True, images=False, prefill=False)
    if kind == "simulated":
        # The simulator continues a trailing assistant message, as Claude 4.5 does.
        return Capabilities(True, True, True, prefill=True)
    # openai_compatible: tools and JSON are common, vision and prefill need a model
    # or server flags that cannot be seen from here.
    return Capabilities(True, True, images=False, prefill=False)


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
