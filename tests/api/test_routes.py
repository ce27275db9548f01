"""`model` names a route: the API side of named routes (docs/clients.md §3)."""

import pytest

from providers_app.models import ClientKey, FailoverEvent
from providers_app.services.client_keys import client_key_create
from providers_app.services.routes import route_create

HELLO = [{"role": "user", "content": "Say hello."}]


def post(client, auth, model, **extra):
    return client.post(
        "/v1/chat/completions",
        data={"model": model, "messages": HELLO, **extra},
        content_type="application/json",
        headers=auth,
    )


@pytest.fixture
def routes(providers):
    primary, secondary = providers
    return (
        route_create(name="chat", providers=[secondary, primary]),
        route_create(name="docs", providers=[primary, secondary], is_default=True),
    )


def test_model_picks_the_route_and_the_response_names_it(client, auth, routes, primary, secondary):
    response = post(client, auth, "chat")

    assert response.status_code == 200
    assert response["X-Fallback-Route"] == "chat"
    assert response["X-Fallback-Provider"] == "secondary"
    assert (primary.request_count, secondary.request_count) == (0, 1)


def test_a_name_matching_no_route_uses_the_default_route(client, auth, routes):
    response = post(client, auth, "gpt-4o-mini")

    assert response.status_code == 200
    assert response["X-Fallback-Route"] == "docs"
    assert response["X-Fallback-Provider"] == "primary"


def test_an_unknown_name_without_a_default_route_is_an_openai_404(client, auth, providers):
    route_create(name="chat", providers=list(providers))

    response = post(client, auth, "nonesuch")

    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "nonesuch" in error["message"]


def test_without_any_route_every_name_follows_the_priority_order(client, auth, providers):
    response = post(client, auth, "whatever")

    assert response.status_code == 200
    assert response["X-Fallback-Route"] == "fallback"
    assert response["X-Fallback-Provider"] == "primary"


def test_a_key_limited_to_other_routes_gets_a_403_naming_the_route(client, routes, primary):
    chat, _docs = routes
    raw = client_key_create(name="chat-only").raw_key
    ClientKey.objects.get(name="chat-only").routes.set([chat])
    headers = {"Authorization": f"Bearer {raw}"}

    assert post(client, headers, "chat").status_code == 200
    refused = post(client, headers, "docs")
    by_default = post(client, headers, "unknown-name")  # resolves to docs, the default

    for response in (refused, by_default):
        assert response.status_code == 403
        error = response.json()["error"]
        assert (error["code"], error["route"]) == ("route_not_allowed", "docs")
        assert "'docs'" in error["message"]
    assert primary.request_count == 0


def test_models_lists_the_routes_and_marks_the_default(client, auth, routes):
    body = client.get("/v1/models", headers=auth).json()

    listed = {m["id"]: (m["default"], m["providers"]) for m in body["data"]}
    assert listed == {
        "chat": (False, ["secondary", "primary"]),
        "docs": (True, ["primary", "secondary"]),
    }


def test_a_failover_event_and_the_stream_carry_the_route(client, auth, routes, secondary):
    secondary.set_fault("error", status=503)

    response = post(client, auth, "chat", stream=True)
    body = b"".join(response.streaming_content)

    assert response["X-Fallback-Route"] == "chat"
    assert response["X-Fallback-Provider"] == "primary"
    assert b"[DONE]" in body
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.FAILOVER)
    assert (event.route, event.provider.name, event.to_provider.name) == (
        "chat",
        "secondary",
        "primary",
    )
