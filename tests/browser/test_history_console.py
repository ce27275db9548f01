"""The console's history screens in Chromium at 375, 1366 and 1920 px, as a member
of staff: a request's trace reached from the event log and by searching its id
(issue 23 item 5), a cut stream found in the event log by its kind (item 6), and
an alert channel added and tested from its list (item 7). Each failover or cut is
real: the API is called with the local simulators as upstreams. Nothing here
reads the hour, the date or the time zone."""

import itertools
import json
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from providers_app.models import AlertChannel, FailoverEvent, RequestTrace
from tests.factories import provider_create

WIDTHS = (375, 1366, 1920)
URL = "/v1/chat/completions"
WORDS = [f"word{n}" for n in range(1, 61)]
ANSWER = " ".join(WORDS)
EVENTS = reverse("admin:providers_app_failoverevent_changelist")
TRACES = reverse("admin:providers_app_requesttrace_changelist")
_KEY_NUMBERS = itertools.count(1)
CHANNELS = reverse("admin:providers_app_alertchannel_changelist")


def _staff(django_user_model, name: str, codenames: list[str]):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(name, password="pw-staff-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def history_staff(transactional_db, django_user_model):
    return _staff(django_user_model, "hana", ["view_requesttrace", "view_failoverevent"])


@pytest.fixture
def alerts_staff(transactional_db, django_user_model):
    return _staff(
        django_user_model, "otto", ["view_alertchannel", "add_alertchannel", "change_alertchannel"]
    )


def _chat(*, stream: bool = False):
    """One request through the API, the way a client makes it; its X-Request-Id."""
    from providers_app.services.client_keys import client_key_create

    key = client_key_create(name=f"browser-bot-{next(_KEY_NUMBERS)}").raw_key
    body = {"model": "fallback", "messages": [{"role": "user", "content": "Hi."}]}
    response = Client().post(
        URL, json.dumps({**body, "stream": stream}), content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    if stream:
        b"".join(response.streaming_content)
    return response


def _cells(row) -> list[str]:
    return [cell.strip() for cell in row.locator("td").all_inner_texts()]


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_follow_a_failover_from_the_event_log_to_its_trace(
    screen_for, history_staff, primary, secondary, width
):
    provider_create(name="primary", base_url=primary.base_url, max_attempts=1)
    provider_create(name="secondary", base_url=secondary.base_url, max_attempts=1)
    primary.set_fault("error", status=500)
    secondary.set_fault("ok", text="hi")
    response = _chat()
    assert response.status_code == 200
    request_id = response["X-Request-Id"]
    trace = RequestTrace.objects.get(request_id=request_id)

    screen = screen_for(history_staff, width=width)
    page = screen.go(EVENTS)
    link = page.locator("#result_list a.request-id", has_text=request_id)
    assert link.count() == 1
    with page.expect_navigation():
        link.click()
    assert urlsplit(page.url).path == reverse(
        "admin:providers_app_requesttrace_change", args=[trace.pk]
    )

    assert request_id in page.locator(".field-request_id .readonly").inner_text()
    steps = page.locator("table.trace-steps tr")
    heads = [h.strip() for h in steps.first.locator("th").all_inner_texts()]
    assert heads == [
        "provider", "start", "duration", "first token", "outcome", "reason", "status",
        "decision", "why",
    ]  # fmt: skip
    assert steps.count() == 3  # the head and two attempts, in order
    failed, answered = (dict(zip(heads, _cells(steps.nth(n)), strict=True)) for n in (1, 2))
    assert (failed["provider"], failed["outcome"], failed["reason"], failed["status"]) == (
        "primary", "failure", "server_error", "500",
    )  # fmt: skip
    assert failed["decision"] == "fail_over"
    assert failed["why"] not in ("", "-")
    assert (answered["provider"], answered["outcome"], answered["decision"]) == (
        "secondary", "success", "answer",
    )  # fmt: skip
    assert screen.layout_problems() == []
    screen.shot(f"history-trace-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_find_a_trace_by_searching_its_request_id(
    screen_for, history_staff, primary, secondary, width
):
    provider_create(name="primary", base_url=primary.base_url, max_attempts=1)
    provider_create(name="secondary", base_url=secondary.base_url, max_attempts=1)
    primary.set_fault("error", status=500)
    request_ids = [_chat()["X-Request-Id"] for _ in range(2)]  # two traces: the search picks one
    wanted = request_ids[1]
    trace = RequestTrace.objects.get(request_id=wanted)

    screen = screen_for(history_staff, width=width)
    page = screen.go(TRACES)
    assert page.locator("#result_list tbody tr").count() == 2
    page.locator("#searchbar").fill(wanted)
    with page.expect_navigation():
        page.locator("#searchbar").press("Enter")

    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert wanted in rows.first.inner_text()
    assert request_ids[0] not in page.locator("#result_list").inner_text()
    assert screen.layout_problems() == []
    screen.shot(f"history-trace-search-{width}")
    with page.expect_navigation():
        rows.first.locator("a").first.click()
    assert urlsplit(page.url).path == reverse(
        "admin:providers_app_requesttrace_change", args=[trace.pk]
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_filter_the_event_log_by_a_cut_stream_and_read_what_was_delivered(
    screen_for, history_staff, primary, secondary, width
):
    provider_create(name="primary", base_url=primary.base_url)
    provider_create(name="secondary", base_url=secondary.base_url, continuation="none")
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    _chat(stream=True)
    interrupted = FailoverEvent.objects.get(kind=FailoverEvent.Kind.STREAM_INTERRUPTED)
    delivered = len(" ".join(WORDS[:40]))
    assert interrupted.delivered_chars == delivered
    FailoverEvent.objects.create(
        kind=FailoverEvent.Kind.FAILOVER, reason="timeout", request_id="another-request"
    )

    screen = screen_for(history_staff, width=width)
    page = screen.go(EVENTS)
    assert page.locator("#result_list tbody tr").count() == 2
    choice = page.locator("#changelist-filter a", has_text="Stream interrupted, not continued")
    with page.expect_navigation():
        choice.click()
    assert "kind__exact=stream_interrupted" in page.url
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert interrupted.request_id in rows.first.inner_text()
    assert "another-request" not in page.locator("#result_list").inner_text()
    assert screen.layout_problems() == []
    screen.shot(f"history-events-interrupted-{width}")

    with page.expect_navigation():
        rows.first.locator("th a, td a").first.click()
    assert urlsplit(page.url).path == reverse(
        "admin:providers_app_failoverevent_change", args=[interrupted.pk]
    )
    assert page.locator(".field-provider .readonly").inner_text().strip() == "primary"
    label = page.locator(".field-delivered_chars label").inner_text()
    assert "delivered (characters)" in label.lower()
    assert page.locator(".field-delivered_chars .readonly").inner_text().strip() == str(delivered)
    detail = page.locator(".field-detail .readonly").inner_text()
    assert f"{delivered} characters delivered" in detail
    assert screen.layout_problems() == []
    screen.shot(f"history-event-interrupted-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_add_an_email_channel_and_send_it_a_test_alert(
    screen_for, alerts_staff, mailoutbox, width
):
    screen = screen_for(alerts_staff, width=width)
    page = screen.go(reverse("admin:providers_app_alertchannel_add"))
    page.locator("#id_name").fill("ops-mail")
    page.locator("#id_kind").select_option("email")
    page.locator("#id_emails").fill("oncall@example.com")
    with page.expect_navigation():
        page.locator('input[type="submit"][name="_save"]').click()
    channel = AlertChannel.objects.get(name="ops-mail")
    assert (channel.kind, channel.emails) == ("email", "oncall@example.com")
    assert urlsplit(page.url).path == CHANNELS

    row = page.locator("#result_list tbody tr", has_text="ops-mail")
    row.locator("input.action-select").check()
    page.locator('select[name="action"]').select_option("send_test_alert")
    with page.expect_navigation():
        page.locator('button[name="index"]').click()

    success = page.locator(".messagelist .success")
    assert "Test alert sent to ops-mail." in success.inner_text()
    assert page.locator(".messagelist .error").count() == 0
    assert [m.to for m in mail.outbox] == [["oncall@example.com"]]
    assert mail.outbox[0].body == (
        "[LLM fallback] test alert from channel ops-mail: delivery works."
    )
    assert screen.layout_problems() == []
    screen.shot(f"history-alert-test-sent-{width}")
