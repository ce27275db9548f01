"""Issue 23 item 5: every request can be traced, through HTTP with real local
upstreams: its route and each attempt (provider, start, duration, time to first
token, outcome, reason, the decision taken and why), reachable from the event
log, from the X-Request-Id the response carries, and by searching for the id.
Sampling and retention are settings."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from providers_app.engine.tracing import flush_traces
from providers_app.models import FailoverEvent, RequestTrace
from providers_app.services.housekeeping import history_prune
from tests.factories import provider_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]
Outcome = RequestTrace.Outcome


def _post(client, auth, **extra):
    body = {"model": "fallback", "messages": HELLO, **extra}
    return client.post(URL, json.dumps(body), content_type="application/json", headers=auth)


@pytest.fixture
def staff(client, django_user_model):
    def login():
        user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
        from django.contrib.auth.models import Permission

        user.user_permissions.set(
            Permission.objects.filter(codename__in=["view_requesttrace", "view_failoverevent"])
        )
        client.force_login(user)
        return client

    return login


def test_a_failover_is_traced_attempt_by_attempt(client, auth, providers, primary, secondary):
    primary.set_fault("error", status=500)
    secondary.set_fault("ok", text="hi")

    response = _post(client, auth)

    assert response.status_code == 200
    trace = RequestTrace.objects.get(request_id=response["X-Request-Id"])
    assert (trace.outcome, trace.provider, trace.route) == (
        Outcome.ANSWERED,
        "secondary",
        "fallback",
    )
    assert (trace.attempt_count, trace.failovers, trace.sampled) == (2, 1, False)
    failed, answered = trace.steps
    assert failed["provider"] == "primary"
    assert (failed["outcome"], failed["reason"], failed["status"]) == (
        "failure",
        "server_error",
        500,
    )
    assert failed["action"] == "fail_over"
    assert failed["why"]
    assert failed["duration_ms"] >= 0
    assert answered["provider"] == "secondary"
    assert (answered["outcome"], answered["action"]) == ("success", "answer")
    assert answered["started_ms"] >= failed["started_ms"] + failed["duration_ms"]
    assert answered["ttft_ms"] is None  # a whole completion has no first token of its own


def test_a_retry_on_the_same_provider_is_a_step_with_its_decision(
    client, auth, db, primary, secondary
):
    provider_create(name="primary", base_url=primary.base_url, max_attempts=2)
    primary.set_fault(
        "sequence", steps=[{"mode": "error", "options": {"status": 503}}, {"mode": "ok"}]
    )

    response = _post(client, auth)

    trace = RequestTrace.objects.get(request_id=response["X-Request-Id"])
    assert [(s["provider"], s["outcome"], s["action"]) for s in trace.steps] == [
        ("primary", "failure", "retry"),
        ("primary", "success", "answer"),
    ]
    assert trace.failovers == 0


def test_a_stream_records_time_to_first_token_and_its_whole_duration(
    client, auth, providers, primary, settings
):
    settings.FALLBACK_TRACE_SAMPLE_RATE = 1.0
    primary.set_fault("ok", text="one two three four", chunk_delay_s=0.05)

    response = _post(client, auth, stream=True)
    b"".join(response.streaming_content)
    flush_traces()

    trace = RequestTrace.objects.get(request_id=response["X-Request-Id"])
    (step,) = trace.steps
    assert trace.streamed
    assert trace.sampled
    assert 0 < step["ttft_ms"] < step["duration_ms"]
    assert step["duration_ms"] >= 100  # four chunks 50 ms apart: to the stream's end


def test_a_cut_stream_continued_elsewhere_shows_the_cut_and_the_continuation(
    client, auth, db, primary, secondary
):
    provider_create(name="primary", base_url=primary.base_url)
    provider_create(
        name="secondary", base_url=secondary.base_url, continuation="trailing_assistant"
    )
    text = " ".join(f"w{n}" for n in range(20))
    primary.set_fault("truncate_stream", chunks=10, text=text)
    secondary.set_fault("ok", text=text)

    response = _post(client, auth, stream=True)
    b"".join(response.streaming_content)

    trace = RequestTrace.objects.get(request_id=response["X-Request-Id"])
    cut, continued = trace.steps
    assert (cut["provider"], cut["outcome"], cut["reason"]) == (
        "primary",
        "interrupted",
        "transport",
    )
    assert cut["action"] == "continue"
    assert (continued["provider"], continued["outcome"]) == ("secondary", "success")
    assert (trace.outcome, trace.provider) == (Outcome.ANSWERED, "secondary")


def test_a_failed_request_carries_its_id_and_is_always_traced(
    client, auth, providers, primary, secondary, settings
):
    settings.FALLBACK_TRACE_SAMPLE_RATE = 0.0
    primary.set_fault("error", status=500)
    secondary.set_fault("error", status=502)

    response = _post(client, auth)

    assert response.status_code == 503  # all failed
    trace = RequestTrace.objects.get(request_id=response["X-Request-Id"])
    assert (trace.outcome, trace.reason) == (Outcome.FAILED, "all_failed")
    assert [s["action"] for s in trace.steps] == ["fail_over", "fail_over"]


def test_answers_at_the_first_try_are_sampled_at_the_operators_rate(
    client, auth, providers, primary, settings
):
    primary.set_fault("ok")
    settings.FALLBACK_TRACE_SAMPLE_RATE = 0.0
    dropped = _post(client, auth)["X-Request-Id"]
    settings.FALLBACK_TRACE_SAMPLE_RATE = 1.0
    kept = _post(client, auth)["X-Request-Id"]

    assert not RequestTrace.objects.exists()  # buffered off the request path
    flush_traces()

    assert list(RequestTrace.objects.values_list("request_id", flat=True)) == [kept]
    assert dropped != kept


def test_a_trace_is_reached_from_the_response_id_the_event_log_and_a_search(
    client, auth, providers, primary, secondary, staff
):
    primary.set_fault("error", status=500)
    request_id = _post(client, auth)["X-Request-Id"]
    trace = RequestTrace.objects.get(request_id=request_id)
    client = staff()
    trace_page = reverse("admin:providers_app_requesttrace_change", args=[trace.pk])

    by_id = client.get(reverse("admin:providers_app_requesttrace_by_request", args=[request_id]))
    assert by_id.status_code == 302
    assert by_id["Location"] == trace_page

    page = client.get(trace_page).content.decode()
    assert "server_error" in page
    assert "fail_over" in page

    events = client.get(reverse("admin:providers_app_failoverevent_changelist")).content.decode()
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.FAILOVER, request_id=request_id)
    assert event.request_id in events
    assert reverse("admin:providers_app_requesttrace_by_request", args=[request_id]) in events

    search = client.get(
        reverse("admin:providers_app_requesttrace_changelist"), {"q": request_id}
    ).content.decode()
    assert trace_page in search


def test_an_unknown_id_says_why_no_trace_is_found(client, db, staff):
    client = staff()
    response = client.get(
        reverse("admin:providers_app_requesttrace_by_request", args=["never-seen"]), follow=True
    )
    assert "No trace of request never-seen" in response.content.decode()


def test_traces_older_than_the_retention_are_pruned(db, settings):
    settings.FALLBACK_TRACE_RETENTION_DAYS = 2
    from django.utils import timezone

    now = timezone.now()
    for age, request_id in ((3, "old"), (1, "recent")):
        RequestTrace.objects.create(
            created_at=now - timedelta(days=age), request_id=request_id, outcome="answered"
        )

    summary = history_prune(now=now)

    assert summary.traces == 1
    assert list(RequestTrace.objects.values_list("request_id", flat=True)) == ["recent"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRACE_SAMPLE_RATE", 1.5, "between 0 and 1"),
        ("TRACE_SAMPLE_RATE", -0.1, "between 0 and 1"),
        ("TRACE_RETENTION_DAYS", 0, "at least 1"),
    ],
)
def test_trace_settings_are_checked(name, value, message):
    from django.core.exceptions import ImproperlyConfigured

    from providers_app.conf import DEFAULTS, settings_validate

    with pytest.raises(ImproperlyConfigured, match=message):
        settings_validate({**DEFAULTS, name: value})


def test_a_trace_the_database_refuses_never_fails_the_request(
    client, auth, providers, primary, secondary, monkeypatch, caplog
):
    from django.db import DatabaseError

    def refuse(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(RequestTrace.objects, "bulk_create", refuse)
    primary.set_fault("error", status=500)  # a failover: written at once

    response = _post(client, auth)

    assert response.status_code == 200
    assert not RequestTrace.objects.exists()
    assert "could not write 1 trace(s)" in caplog.text
