"""Serving through a database outage (issue 11): recently validated keys and the
last routing snapshot keep chats answered; breaker writes that fail are logged,
never raised. Through the HTTP API, on SQLite and PostgreSQL.

PostgreSQL is made unreachable for real: the connection settings point at a
closed port and the pool is closed, so every new connection is refused. The
SQLite test database lives in memory and vanishes when its connection closes,
so there the connection itself is patched to fail as an unopenable file does.
"""

import contextlib
import json
import logging
import socket
import time

import pytest
from django.db import OperationalError, connection, connections

from providers_app.services.client_keys import client_key_create
from providers_app.services.routes import route_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]


def _post(client, key, **body):
    return client.post(
        URL,
        json.dumps({"messages": HELLO, **body}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RETRY_S = 0.2


@pytest.fixture
def database_down(monkeypatch, settings):
    # After a failed connect the backend fails fast for this long, then retries.
    settings.DATABASE_RETRY_AFTER_FAILURE_S = RETRY_S

    @contextlib.contextmanager
    def down():
        if connection.vendor == "postgresql":
            port = connection.settings_dict["PORT"]
            connection.close()
            connection.close_pool()
            connection.settings_dict["PORT"] = _closed_port()
            try:
                yield
            finally:
                connection.close()
                connection.close_pool()
                connection.settings_dict["PORT"] = port
                time.sleep(RETRY_S * 1.5)  # the next connect is a retry, and succeeds
        else:

            def unopenable(*args, **kwargs):
                raise OperationalError("unable to open database file")

            with monkeypatch.context() as patch:
                patch.setattr(type(connections["default"]), "_cursor", unopenable)
                yield

    return down


@pytest.fixture
def snapshot_with_secondary_first(client, providers, api_key):
    """The key is validated and the process's snapshot puts `secondary` first."""
    first, second = providers
    route_create(name="chat", providers=[second, first], is_default=True)
    warm = _post(client, api_key)
    assert (warm.status_code, warm["X-Fallback-Provider"]) == (200, "secondary")
    return first, second


@pytest.mark.django_db(transaction=True)
def test_a_recent_key_is_answered_by_the_first_provider_of_the_last_snapshot(
    client, api_key, snapshot_with_secondary_first, database_down, primary, secondary, caplog
):
    never_used = client_key_create(name="never-used").raw_key
    caplog.set_level(logging.WARNING)

    with database_down():
        answered = _post(client, api_key)
        assert answered.status_code == 200, answered.content
        assert answered["X-Fallback-Provider"] == "secondary"
        assert answered.json()["choices"][0]["message"]["content"]

        streamed = _post(client, api_key, stream=True)
        assert (streamed.status_code, streamed["X-Fallback-Provider"]) == (200, "secondary")
        assert b"data: [DONE]" in b"".join(streamed.streaming_content)

        # The snapshot's first provider fails: the request still fails over, and
        # the breaker's and the event log's writes fail with a log line, not a 500.
        secondary.set_fault("error", status=500)
        failed_over = _post(client, api_key)
        assert (failed_over.status_code, failed_over["X-Fallback-Provider"]) == (200, "primary")
        assert "breaker store error during record_failure" in caplog.text
        secondary.set_fault("ok")

        # A key this process never validated cannot be told from a wrong one.
        refused = _post(client, never_used)
        assert refused.status_code == 503
        assert refused.json()["error"]["type"]

    assert primary.request_count == 1  # only the failover reached it
    back = _post(client, never_used)
    assert (back.status_code, back["X-Fallback-Provider"]) == (200, "secondary")


@pytest.mark.django_db(transaction=True)
def test_a_key_validated_longer_ago_than_the_grace_period_is_refused(
    fake_clock, client, api_key, snapshot_with_secondary_first, database_down, settings
):
    fake_clock.advance(settings.FALLBACK_CLIENT_KEY_GRACE_S + 1)
    with database_down():
        assert _post(client, api_key).status_code == 503


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_is_forgotten_at_once(client, api_key, snapshot_with_secondary_first):
    from providers_app.models import ClientKey
    from providers_app.services.client_keys import client_key_revoke

    client_key_revoke(client_key=ClientKey.objects.get())
    assert _post(client, api_key).status_code == 401
    from providers_app.api.auth import recent_keys
    from providers_app.services.client_keys import client_key_digest

    assert recent_keys.recent(client_key_digest(api_key)) is None
