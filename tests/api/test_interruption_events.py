"""Issue 23 item 6: a stream cut, a stall or a refused prefill is history.

Each is injected with the real local simulators through the HTTP API; the event
names the provider, how much had been delivered and whether (and by whom) the
answer was continued, and staff find it in the event log by its kind.
"""

import json

import pytest
from django.urls import reverse

from providers_app.models import FailoverEvent
from tests.factories import provider_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Tell me a long story."}]
WORDS = [f"word{n}" for n in range(1, 61)]
ANSWER = " ".join(WORDS)
Kind = FailoverEvent.Kind


@pytest.fixture
def chain(db, primary, secondary):
    def make(*others):
        first = provider_create(name="primary", base_url=primary.base_url)
        rest = [
            provider_create(name=name, base_url=secondary.base_url, **fields)
            for name, fields in others
        ]
        return first, *rest

    return make


def _stream(client, auth) -> list[str]:
    body = {"model": "fallback", "messages": HELLO, "stream": True}
    response = client.post(URL, json.dumps(body), content_type="application/json", headers=auth)
    lines = b"".join(response.streaming_content).decode().splitlines()
    return [line[6:] for line in lines if line.startswith("data: ")]


def test_a_cut_nobody_continues_is_an_interrupted_event_with_what_was_delivered(
    client, auth, chain, primary
):
    first, _ = chain(("secondary", {"continuation": "none"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)

    events = _stream(client, auth)

    assert json.loads(events[-1])["error"]["partial"] is True
    event = FailoverEvent.objects.get(kind=Kind.STREAM_INTERRUPTED)
    delivered = len(" ".join(WORDS[:40]))
    assert (event.provider, event.to_provider, event.reason) == (first, None, "transport")
    assert event.delivered_chars == delivered
    assert f"{delivered} characters delivered; not continued" in event.detail
    assert event.request_id
    assert event.route == "fallback"


def test_a_cut_that_is_continued_names_who_continued_and_what_was_delivered(
    client, auth, chain, primary, secondary
):
    first, second = chain(("secondary", {"continuation": "trailing_assistant"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    _stream(client, auth)

    event = FailoverEvent.objects.get(kind=Kind.CONTINUATION)
    assert (event.provider, event.to_provider) == (first, second)
    assert event.delivered_chars == len(" ".join(WORDS[:40]))
    assert not FailoverEvent.objects.filter(kind=Kind.STREAM_INTERRUPTED).exists()


def test_a_stall_nobody_continues_is_an_interrupted_event_with_reason_timeout(
    client, auth, chain, primary, settings
):
    settings.FALLBACK_STREAM_IDLE_S = 0.5
    first, _ = chain(("secondary", {"continuation": "none"}))
    primary.set_fault("stall_stream", chunks=20, seconds=5, text=ANSWER)

    _stream(client, auth)

    event = FailoverEvent.objects.get(kind=Kind.STREAM_INTERRUPTED)
    assert (event.provider, event.reason) == (first, "timeout")
    assert event.delivered_chars == len(" ".join(WORDS[:20]))


def test_a_refused_prefill_is_its_own_event_naming_the_next_provider(
    client, auth, chain, primary, secondary
):
    _, refusing, finishing = chain(
        ("claude-4-6", {"continuation": "trailing_assistant"}),
        ("continuer", {"continuation": "trailing_assistant"}),
    )
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault(
        "sequence", steps=[{"mode": "reject_prefill"}, {"mode": "ok", "options": {"text": ANSWER}}]
    )

    _stream(client, auth)

    refused = FailoverEvent.objects.get(kind=Kind.PREFILL_REFUSED)
    assert (refused.provider, refused.to_provider) == (refusing, finishing)
    assert (refused.reason, refused.status_code) == ("invalid_request", 400)
    assert refused.delivered_chars == len(" ".join(WORDS[:40]))


def test_a_refused_prefill_with_nobody_left_ends_interrupted(
    client, auth, chain, primary, secondary
):
    first, refusing = chain(("claude-4-6", {"continuation": "trailing_assistant"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("reject_prefill")

    _stream(client, auth)

    refused = FailoverEvent.objects.get(kind=Kind.PREFILL_REFUSED)
    assert (refused.provider, refused.to_provider) == (refusing, None)
    interrupted = FailoverEvent.objects.get(kind=Kind.STREAM_INTERRUPTED)
    assert interrupted.provider == first


def test_staff_filter_the_event_log_by_interruption_kind(
    client, auth, chain, primary, django_user_model
):
    chain(("secondary", {"continuation": "none"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    _stream(client, auth)
    FailoverEvent.objects.create(kind=Kind.FAILOVER, reason="timeout", request_id="other-request")
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(*_view_events_permission())
    client.force_login(staff)
    url = reverse("admin:providers_app_failoverevent_changelist")

    page = client.get(url, {"kind": Kind.STREAM_INTERRUPTED}).content.decode()

    interrupted = FailoverEvent.objects.get(kind=Kind.STREAM_INTERRUPTED)
    assert interrupted.request_id in page
    assert "other-request" not in page
    assert "Stream interrupted, not continued" in page  # offered as a filter choice
    detail = client.get(
        reverse("admin:providers_app_failoverevent_change", args=[interrupted.pk])
    ).content.decode()
    assert "delivered (characters)" in detail.lower()


def _view_events_permission():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename="view_failoverevent")
