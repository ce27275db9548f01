"""Keep API keys out of every message, repr and log line the adapters produce.

Upstreams echo keys back ("Incorrect API key provided: sk-proj-…"), so every text
taken from a response goes through ``scrub_secrets`` before it is stored anywhere.
The exact configured key is removed, plus anything shaped like a vendor key, a
bearer token or a ``key=`` query parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Shapes of credentials that must never be repeated, whoever's they are.
_KEY_SHAPES = re.compile(
    r"""
    \bsk-[A-Za-z0-9_*\-]{6,}                  # OpenAI, Anthropic (sk-ant-), DeepSeek, OpenRouter
    | \bAIza[0-9A-Za-z_\-]{20,}               # Google API keys
    | \bgsk_[A-Za-z0-9]{10,}                  # Groq
    | (?i:\bbearer\s+)[A-Za-z0-9._~+/\-]{8,}=*  # Authorization header values
    | (?i:(?<=[?&])(?:api[-_]?)?key=)[^&\s"']+  # key=... in URLs
    """,
    re.VERBOSE,
)
# Shorter strings than this are not treated as secrets to replace verbatim: a
# one-letter "key" would shred every message.
_MIN_EXACT_SECRET_LEN = 6


def scrub_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with the given secrets and anything key-shaped replaced."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_EXACT_SECRET_LEN and secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(_redact_match, text)


def scrub_exact(text: str, secrets: Iterable[str | None]) -> str:
    """Remove only the configured secrets, for model output that may quote key-like text."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_EXACT_SECRET_LEN and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if found[:6].lower() == "bearer":
        return "Bearer " + REDACTED
    return REDACTED


def short_message(text: str, *, limit: int = 300) -> str:
    """Collapse whitespace and cut to ``limit`` characters, for error messages."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
