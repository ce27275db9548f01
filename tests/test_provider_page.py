"""The provider page starts with what matters: breaker state, last error, a
cooldown only while it lasts, the recent calls and events, above the form."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from providers_app.models import BreakerState, CallBucket, FailoverEvent, Provider, RequestTrace


def _page(client, provider) -> str:
    response = client.get(reverse("admin:providers_app_provider_change", args=[provider.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_state_last_error_recent_calls_and_events_come_before_the_form(admin_client, make_provider):
    provider = make_provider(name="primary")
    BreakerState.objects.filter(pk=provider.pk).update(
        state="open", opened_at=timezone.now(), last_error="server_error HTTP 502: bad gateway"
    )
    CallBucket.objects.create(
        provider=provider, bucket_start=timezone.now(), successes=3, failures=2, not_permitted=4
    )
    event = FailoverEvent.objects.create(kind="breaker_opened", provider=provider, reason="x")

    content = _page(admin_client, provider)

    top = content.index('class="provider-status"')
    assert top < content.index('id="provider_form"')
    status = content[top : content.index("</section>", top)]
    assert "Open" in status
    assert "server_error HTTP 502: bad gateway" in status
    assert "5 attempts, 3 answered, 2 failed, 4 skipped" in status
    assert reverse("admin:providers_app_failoverevent_change", args=[event.pk]) in status


def test_a_cooldown_is_shown_only_while_it_lasts(admin_client, make_provider):
    provider = make_provider(name="primary")
    BreakerState.objects.filter(pk=provider.pk).update(
        cooldown_until=timezone.now() + timedelta(seconds=40)
    )
    assert "cooling down until" in _page(admin_client, provider)

    BreakerState.objects.filter(pk=provider.pk).update(
        cooldown_until=timezone.now() - timedelta(minutes=4)
    )
    content = _page(admin_client, provider)
    assert 'data-field="cooldown_until"' not in content
    assert "min ago" not in content.split('class="breaker-summary"')[1].split("</dl>")[0]


def test_read_only_times_read_24_hour_iso_like_every_other_screen(admin_client, make_provider):
    provider = make_provider(name="primary")
    content = _page(admin_client, provider)
    created = timezone.localtime(provider.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert created in content
    assert "midnight" not in content
    assert "a.m." not in content
    assert "p.m." not in content


def test_recent_attempts_come_from_the_traces_and_link_to_them(admin_client, make_provider):
    """The provider's last attempts, newest first, from the kept traces' steps:
    time, outcome, reason and the request id linking to its trace; skips are not attempts."""
    provider = make_provider(name="primary")
    make_provider(name="secondary")
    now = timezone.now()
    RequestTrace.objects.create(
        created_at=now - timedelta(minutes=2),
        request_id="req-older",
        outcome="answered",
        provider="secondary",
        steps=[
            {"provider": "primary", "started_ms": 0, "outcome": "failure",
             "reason": "timeout", "status": None, "action": "fail_over"},
            {"provider": "secondary", "started_ms": 900, "outcome": "success"},
        ],
    )  # fmt: skip
    RequestTrace.objects.create(
        created_at=now - timedelta(minutes=1),
        request_id="req-newer",
        outcome="failed",
        steps=[
            {"provider": "primary", "started_ms": 0, "outcome": "failure",
             "reason": "server_error", "status": 502, "action": "retry"},
            {"provider": "primary", "started_ms": 300, "outcome": "failure",
             "reason": "server_error", "status": 503, "action": "fail_over"},
            {"provider": "secondary", "started_ms": 400, "outcome": "skipped", "reason": "open"},
        ],
    )  # fmt: skip

    content = _page(admin_client, provider)

    top = content.index('class="provider-status"')
    assert top < content.index('id="provider_form"')
    status = content[top : content.index("</section>", top)]
    table = status[
        status.index("recent-attempts") : status.index("</table>", status.index("recent-attempts"))
    ]
    rows = table.split("<tr data-outcome=")[1:]
    assert [row.split('"')[1] for row in rows] == ["failure", "failure", "failure"]
    assert "Server error" in rows[0]
    assert "503" in rows[0]
    assert "req-newer" in rows[0]
    assert "502" in rows[1]
    assert "Timed out" in rows[2]
    assert "req-older" in rows[2]
    assert reverse("admin:providers_app_requesttrace_by_request", args=["req-newer"]) in rows[0]

    secondary = _page(admin_client, Provider.objects.get(name="secondary"))
    attempts = secondary[secondary.index("recent-attempts") :]
    attempts = attempts[: attempts.index("</table>")]
    assert attempts.count("<tr data-outcome=") == 1  # its skip is not an attempt
    assert 'data-outcome="success"' in attempts
