"""Tool-call ids that survive a conversation moving between vendors.

No upstream id is valid everywhere (OpenAI caps ids at 40 characters, Anthropic
accepts only ``[A-Za-z0-9_-]``, Mistral wants exactly 9 alphanumerics, older
Gemini and Ollama send none), and vendors check only the format and the pairing
inside one request. So the mapping is stateless and deterministic:

- a call coming back from any vendor gets the client-facing id
  ``call_`` + 24 base-62 characters hashed from (kind, response id, vendor id or
  position): 29 characters that every vendor accepts, the same for the same
  upstream response;
- every id on every outbound request (assistant ``tool_calls[].id`` and the
  ``tool_call_id`` of results) goes through ``outbound_id``: kept when it fits the
  target's profile, else replaced by a hash of itself, so a pair stays paired.
"""

from __future__ import annotations

import hashlib
import re

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CLIENT_ID_PREFIX = "call_"

# target profile -> the ids it accepts back
_PROFILES: dict[str, re.Pattern[str]] = {
    "openai": re.compile(r"[A-Za-z0-9_-]{1,40}"),
    "anthropic": re.compile(r"[A-Za-z0-9_-]{1,64}"),
    "gemini": re.compile(r"[A-Za-z0-9_-]{1,40}"),
    "ollama": re.compile(r"[^\x00-\x1f]{1,64}"),
    "mistral": re.compile(r"[A-Za-z0-9]{9}"),
}


def b62(seed: str, length: int) -> str:
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    out = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        out.append(_B62[digit])
    return "".join(out)


def client_tool_id(kind: str, response_id: str | None, vendor_id: str | None, position: int) -> str:
    """The id the client sees for one call of one upstream response."""
    seed = f"{kind}:{response_id or ''}:{vendor_id or position}"
    return CLIENT_ID_PREFIX + b62(seed, 24)


def outbound_id(profile: str, client_id: str) -> str:
    """``client_id`` as the target accepts it: unchanged when it fits, else hashed."""
    pattern = _PROFILES[profile]
    if pattern.fullmatch(client_id):
        return client_id
    if profile == "mistral":
        return b62(client_id, 9)
    return CLIENT_ID_PREFIX + b62(client_id, 24)
