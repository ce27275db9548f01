"""The chatbot page: sign-in, CSRF, and the NDJSON answer naming the provider."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

# The simulated upstreams, providers on them and a fresh engine state per test.
from tests.api.fixtures import *  # noqa: F403

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def user(db):
    """A non-staff user who may chat (providers_app.use_chat)."""
    user = get_user_model().objects.create_user("alice", password="s3cret-pass")
    user.user_permissions.add(Permission.objects.get(codename="use_chat"))
    return user


@pytest.fixture
def user_without_chat(db):
    return get_user_model().objects.create_user("bob", password="s3cret-pass")


@pytest.fixture
def browser(user):
    """A signed-in browser that enforces CSRF like a real one, with the page loaded."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/chat/")
    assert page.status_code == 200
    return client


def send(client, body, *, csrf=True):
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value} if csrf else {}
    return client.post(
        "/chat/send", json.dumps(body), content_type="application/json", headers=headers
    )


def lines(response) -> list[dict]:
    assert response["Content-Type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def test_healthz_answers_without_a_session(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_page_needs_a_login(client, db):
    response = client.get("/chat/")

    assert response.status_code == 302
    assert response["Location"] == "/chat/login/?next=/chat/"


def test_a_non_staff_user_can_sign_in_and_lands_on_the_page(user):
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/chat/login/?next=/chat/")
    token = login_page.context["csrf_token"]

    response = client.post(
        "/chat/login/",
        {
            "username": "alice",
            "password": "s3cret-pass",
            "next": "/chat/",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/chat/"
    page = client.get("/chat/")
    assert page.status_code == 200
    assert b"alice" in page.content


def test_a_signed_in_user_without_the_chat_permission_gets_403(user_without_chat):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_without_chat)

    assert client.get("/chat/").status_code == 403


def test_sending_without_the_chat_permission_is_a_json_403_and_calls_no_provider(
    user_without_chat, providers, primary
):
    client = Client()  # CSRF is not the point here: the permission is
    client.force_login(user_without_chat)

    response = client.post("/chat/send", json.dumps({"messages": HELLO}), "application/json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert primary.request_count == 0


def test_the_page_renders_the_composer_and_the_script(browser):
    page = browser.get("/chat/")

    html = page.content.decode()
    assert 'data-send-url="/chat/send"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "providers_app/chat.js" in html
    assert "providers_app/chat.css" in html


def test_sending_without_the_csrf_token_is_refused(browser, providers, primary):
    response = send(browser, {"messages": HELLO}, csrf=False)

    assert response.status_code == 403
    assert primary.request_count == 0


def test_sending_streams_the_answer_and_names_the_provider(browser, providers, primary):
    response = send(browser, {"messages": HELLO})

    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "primary"
    events = lines(response)
    meta = events[0]
    assert meta["type"] == "meta"
    assert (meta["provider"], meta["model"], meta["attempts"], meta["failovers"]) == (
        "primary",
        "gpt-primary",
        1,
        0,
    )
    assert "".join(e["text"] for e in events if e["type"] == "delta") == "Hello from primary."
    assert events[-1]["type"] == "done"
    assert events[-1]["finish_reason"] == "stop"


def test_a_failover_is_shown_with_the_provider_that_failed(browser, providers, primary, secondary):
    primary.set_fault("error", status=500)

    meta = lines(send(browser, {"messages": HELLO}))[0]

    assert meta["provider"] == "secondary"
    assert meta["failovers"] == 1
    assert meta["failed"] == [{"provider": "primary", "reason": "server_error"}]


def test_a_mid_stream_failure_ends_with_a_partial_error(browser, providers, primary, secondary):
    primary.set_fault("midstream_error", chunks_before=2)

    events = lines(send(browser, {"messages": HELLO}))

    assert events[-1]["type"] == "error"
    assert events[-1]["partial"] is True
    assert events[-1]["provider"] == "primary"
    assert not any(e["type"] == "done" for e in events)
    assert secondary.request_count == 0


def test_every_provider_failing_is_a_json_503(browser, providers, primary, secondary):
    primary.set_fault("error", status=500)
    secondary.set_fault("error", status=500)

    response = send(browser, {"messages": HELLO})

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "all_providers_failed"


def test_a_malformed_conversation_is_a_400_naming_the_field(browser, providers, primary):
    response = send(browser, {"messages": [{"role": "wizard", "content": "hi"}]})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].role"
    assert primary.request_count == 0


def test_sending_after_the_session_ended_is_a_json_401(browser, providers, primary):
    token = browser.cookies["csrftoken"].value
    browser.logout()
    browser.cookies["csrftoken"] = token  # the page is still open in the tab

    response = send(browser, {"messages": HELLO})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "login_required"
    assert primary.request_count == 0


def test_send_refuses_get_with_a_json_405(browser):
    response = browser.get("/chat/send")
    assert response.status_code == 405


# --- progress: who is being asked while the page waits for the first word ----


def test_the_page_can_ask_who_is_being_asked_now(browser, providers, primary, user_without_chat):
    primary.set_fault("error", status=500)
    progress_id = "0f4e2c9a-5b1d-4c7e-9a2b-3c4d5e6f7a8b"

    assert browser.get(f"/chat/progress/{progress_id}").json() == {}  # nothing asked yet
    response = send(browser, {"messages": HELLO, "progress_id": progress_id})
    assert lines(response)[0]["provider"] == "secondary"

    progress = browser.get(f"/chat/progress/{progress_id}")
    assert progress.json() == {"provider": "secondary", "tried": ["primary", "secondary"]}
    assert progress["Cache-Control"] == "no-store"
    # another user's progress is not readable: the key is per user
    user_without_chat.user_permissions.add(Permission.objects.get(codename="use_chat"))
    other = Client()
    other.force_login(user_without_chat)
    assert other.get(f"/chat/progress/{progress_id}").json() == {}


def test_progress_refuses_a_bad_id_and_a_user_without_the_chat(browser, user_without_chat):
    bad = browser.get("/chat/progress/x!")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "progress_id"
    outsider = Client()
    outsider.force_login(user_without_chat)
    assert outsider.get("/chat/progress/0f4e2c9a-5b1d").status_code == 403


def test_a_bad_progress_id_does_not_stop_the_answer(browser, providers, primary):
    response = send(browser, {"messages": HELLO, "progress_id": {"not": "a string"}})
    assert response.status_code == 200
    assert lines(response)[0]["provider"] == "primary"
