"""Keep API keys out of every message, repr and log line the adapters produce.

Upstreams echo keys back ("Incorrect API key provided: sk-proj-…"), so every text
taken from a response goes through ``scrub_secrets`` before it is stored anywhere.
The exact configured key is removed in every encoding an upstream may echo it in
(URL-encoded, form-encoded, JSON- or HTML-escaped, base64), plus anything shaped
like a vendor key, a bearer token or a ``key=`` query parameter (plain or
URL-encoded).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

# Shapes of credentials that must never be repeated, whoever's they are.
_KEY_SHAPES = re.compile(
    r"""
    \bsk-[A-Za-z0-9_*\-]{6,}                  # OpenAI, Anthropic (sk-ant-), DeepSeek, OpenRouter
    | \bAIza[0-9A-Za-z_\-]{20,}               # Google API keys
    | \bgsk_[A-Za-z0-9]{10,}                  # Groq
    | (?i:\bbearer(?:\s+|%20|\+))[A-Za-z0-9._~+/%\-]{8,}=*  # Authorization values
    | (?i:(?<=[?&])(?:api[-_]?)?key=)[^&\s"']+  # key=... in URLs
    | (?i:(?:%3F|%26)(?:api[-_]?)?key%3D)[^&\s"'%]+(?:%[0-9A-Fa-f]{2}[^&\s"'%]*)*  # encoded
    """,
    re.VERBOSE,
)
# Shorter strings than this are not treated as secrets to replace verbatim: a
# one-letter "key" would shred every message.
_MIN_EXACT_SECRET_LEN = 6


def scrub_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with the given secrets (in any encoding) and anything
    key-shaped replaced."""
    return _KEY_SHAPES.sub(_redact_match, scrub_exact(text, secrets))


def scrub_exact(text: str, secrets: Iterable[str | None]) -> str:
    """Remove only the configured secrets, for model output that may quote key-like text."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_EXACT_SECRET_LEN:
            for form in _encoded_forms(secret):
                if form in text:
                    text = text.replace(form, REDACTED)
    return text


@lru_cache(maxsize=64)
def _encoded_forms(secret: str) -> tuple[str, ...]:
    """The secret as an upstream may echo it, longest first (so no form leaves a
    piece of a longer one behind)."""
    percent = quote(secret, safe="")
    forms = {
        secret,
        percent,
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), percent),
        quote(secret, safe="/"),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        html.escape(secret),
        base64.b64encode(secret.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
    }
    return tuple(sorted(forms, key=len, reverse=True))


def _redact_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if found[:6].lower() == "bearer":
        return "Bearer " + REDACTED
    return REDACTED


def short_message(text: str, *, limit: int = 300) -> str:
    """Collapse whitespace and cut to ``limit`` characters, for error messages."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
