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


def _limited_key(name: str, *routes) -> dict:
    key = client_key_create(name=name)
    key.client_key.routes.set(routes)
    return {"Authorization": f"Bearer {key.raw_key}"}


def test_deleting_a_key_s_last_route_in_the_admin_leaves_the_key_refused_everywhere(
    client, admin_client, routes
):
    chat, _docs = routes
    headers = _limited_key("chat-only", chat)
    assert post(client, headers, "docs").status_code == 403

    deleted = admin_client.post(f"/admin/providers_app/route/{chat.pk}/delete/", {"post": "yes"})

    assert deleted.status_code == 302
    for model in ("chat", "docs", "anything"):  # fail closed: never widened to every route
        response = post(client, headers, model)
        assert response.status_code == 403, (model, response.content)
    assert client.get("/v1/models", headers=headers).json()["data"] == []


def test_a_route_limited_key_sees_only_its_routes_in_models_and_status(client, auth, routes):
    chat, _docs = routes
    extra = route_create(name="private", providers=[routes[0].members.first().provider])
    headers = _limited_key("chat-only", chat)

    listed = client.get("/v1/models", headers=headers).json()["data"]
    status = client.get("/api/status", headers=headers).json()
    everything = client.get("/api/status", headers=auth).json()

    assert [m["id"] for m in listed] == ["chat"]
    assert [r["id"] for r in status["routes"]] == ["chat"]
    assert all(set(p["routes"]) == {"chat"} for p in status["providers"])
    assert {r["id"] for r in everything["routes"]} == {"chat", "docs", extra.name}
    # The same order in both: the route's, as the next request follows it.
    assert status["routes"][0]["providers"] == ["secondary", "primary"]
    assert {p["name"]: p["routes"]["chat"] for p in status["providers"]} == {
        "secondary": 1,
        "primary": 2,
    }


def test_a_key_s_route_limits_are_editable_in_the_admin_and_audited(
    client, admin_client, admin_user, routes
):
    from django.contrib.admin.models import LogEntry

    chat, _docs = routes
    created = client_key_create(name="late-limit")
    headers = {"Authorization": f"Bearer {created.raw_key}"}
    assert post(client, headers, "docs").status_code == 200

    edited = admin_client.post(
        f"/admin/providers_app/clientkey/{created.client_key.pk}/change/",
        {"routes": [chat.pk]},
    )

    assert edited.status_code == 302, edited.content[:2000]
    assert post(client, headers, "docs").status_code == 403
    assert post(client, headers, "chat").status_code == 200
    entry = LogEntry.objects.get(object_id=str(created.client_key.pk))
    assert entry.user == admin_user
    assert entry.change_message == "Routes: every route -> chat"


def test_the_api_resolves_the_route_once_and_the_engine_walks_that_route(
    client, auth, routes, monkeypatch
):
    from providers_app.engine.routing import RoutingTable

    resolved = []
    real_resolve = RoutingTable.resolve

    def counting(table, name):
        route = real_resolve(table, name)
        resolved.append((name, route.name if route else None))
        return route

    monkeypatch.setattr(RoutingTable, "resolve", counting)

    for stream in (False, True):
        response = post(client, auth, "chat", stream=stream)
        assert response.status_code == 200
        assert response["X-Fallback-Provider"] == "secondary"
        if stream:
            assert b"[DONE]" in b"".join(response.streaming_content)  # read to its end
    assert resolved == [("chat", "chat"), ("chat", "chat")]  # once per request, by the API
