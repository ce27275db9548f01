"""API keys for callers of the chat API: created once, stored as a digest, revocable."""

import hashlib
import secrets
from dataclasses import dataclass, field

from django.utils import timezone

from ..models import ClientKey

KEY_PREFIX = "fbk_"


@dataclass(frozen=True)
class CreatedClientKey:
    client_key: ClientKey
    raw_key: str = field(repr=False)


def client_key_digest(raw_key: str) -> str:
    # Keys are 256 random bits, so a fast digest is as strong as a slow hash here
    # and keeps the check to one indexed lookup.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def client_key_create(*, name: str) -> CreatedClientKey:
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ClientKey(name=name, prefix=raw_key[:12], key_hash=client_key_digest(raw_key))
    key.full_clean()
    key.save()
    return CreatedClientKey(client_key=key, raw_key=raw_key)


def client_key_revoke(*, client_key: ClientKey) -> None:
    if client_key.revoked_at is None:
        client_key.revoked_at = timezone.now()
        client_key.save(update_fields=["revoked_at"])
