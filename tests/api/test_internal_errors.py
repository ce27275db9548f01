"""A bug of ours while serving a chat: the next provider answers where that is
safe; where it is not, a JSON 500 naming the request id, never an HTML page."""

import json
import logging

from providers_app.api import views
from providers_app.engine import counters

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]


def _post(client, auth, stream=False, **headers):
    body = {"model": "fallback", "messages": HELLO, "stream": stream}
    return client.post(
        URL, json.dumps(body), content_type="application/json", headers={**auth, **headers}
    )


def test_a_bug_in_a_per_provider_step_is_answered_by_the_next_provider(
    client, auth, providers, primary, monkeypatch, caplog
):
    first, _ = providers
    real_count = counters.count

    def buggy_count(provider_id, **counts):
        if provider_id == first.id:
            raise ZeroDivisionError("a bug of ours")
        return real_count(provider_id, **counts)

    monkeypatch.setattr(counters, "count", buggy_count)
    with caplog.at_level(logging.ERROR, logger="providers_app.fallback"):
        response = _post(client, auth, stream=True)
        body = b"".join(response.streaming_content).decode()

    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "secondary"
    assert body.rstrip().endswith("data: [DONE]")
    assert primary.request_count == 0
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_a_bug_after_the_engine_is_a_json_500_with_the_request_id(
    client, auth, providers, monkeypatch, caplog
):
    def broken(outcome):
        raise TypeError("a bug of ours")

    monkeypatch.setattr(views, "completion_body", broken)
    with caplog.at_level(logging.ERROR, logger="providers_app.api"):
        response = _post(client, auth, **{"X-Request-Id": "req-bug-1"})

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["request_id"]) == ("internal_error", "req-bug-1")
    assert response["X-Request-Id"] == "req-bug-1"
    assert any("req-bug-1" in r.getMessage() and r.exc_info for r in caplog.records)
