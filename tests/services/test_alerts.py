"""Issue 23 item 7: alerts on a breaker opened or closed, a route with every
provider down, and a failover rate over the threshold; sent once per incident
(with a resolve message) by webhook, to a real HTTP receiver on 127.0.0.1, and
by email, to Django's mail outbox. Webhook URLs follow the providers' outbound
policy; their secrets come from the environment."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from providers_app.engine import fallback
from providers_app.engine.breaker import breaker_reset
from providers_app.engine.events import failover_event_record
from providers_app.models import AlertChannel, AlertIncident, CallBucket, FailoverEvent
from providers_app.services import alerts
from providers_app.tasks import evaluate_alerts
from tests.factories import provider_create

HELLO = [{"role": "user", "content": "Say hello."}]
Kind = AlertIncident.Kind


class Receiver:
    """A local webhook: records each POST; answers `status` (and `location`)."""

    def __init__(self):
        self.posts: list[dict] = []
        self.status, self.location = 200, None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [post["json"]["text"] for post in self.posts]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def channels(db, receiver):
    webhook = AlertChannel.objects.create(
        name="ops-slack", kind="webhook", url=f"{receiver.url}/hooks/ops"
    )
    email = AlertChannel.objects.create(name="ops-mail", kind="email", emails="oncall@example.com")
    return webhook, email


@pytest.fixture
def down_providers(db, primary, secondary, settings):
    """Two providers on the local simulators, both answering 500."""
    settings.FALLBACK_BREAKER_FAILURE_THRESHOLD = 1
    primary.set_fault("error", status=500)
    secondary.set_fault("error", status=500)
    return tuple(
        provider_create(name=name, base_url=sim.base_url, max_attempts=1)
        for name, sim in (("primary", primary), ("secondary", secondary))
    )


def _fail(n: int = 1) -> None:
    for _ in range(n):
        with pytest.raises(fallback.AllProvidersFailed):
            fallback.complete(HELLO)


def test_a_breaker_that_opens_is_alerted_once_and_its_close_resolves_it(
    channels, down_providers, receiver, django_capture_on_commit_callbacks
):
    first, _ = down_providers
    with django_capture_on_commit_callbacks(execute=True):
        _fail(3)  # opens both breakers, then fails fast while they are open

    breaker_texts = sorted(t for t in receiver.texts() if "breaker open" in t)
    assert len(breaker_texts) == 2  # one per provider, not one per failed request
    for text, name in zip(breaker_texts, ("primary", "secondary"), strict=True):
        assert text.startswith(f"[LLM fallback] provider {name}: breaker open. reason ")
        assert "HTTP 500" in text
    assert len([m for m in mail.outbox if "breaker open" in m.subject]) == 2
    assert next(m.to for m in mail.outbox) == ["oncall@example.com"]

    with django_capture_on_commit_callbacks(execute=True):
        breaker_reset(provider_id=first.pk)

    assert receiver.texts()[-1].startswith("[LLM fallback] RESOLVED provider primary: breaker open")
    incident = AlertIncident.objects.get(kind=Kind.BREAKER_OPEN, subject="primary")
    assert incident.resolved_at is not None
    assert (incident.open_sent, incident.resolve_sent) == (True, True)


def test_a_breaker_closed_event_resolves_and_a_second_open_is_a_new_incident(
    channels, make_provider, receiver, django_capture_on_commit_callbacks
):
    provider = make_provider(name="p1")
    with django_capture_on_commit_callbacks(execute=True):
        for kind in ("breaker_opened", "breaker_opened", "breaker_closed", "breaker_opened"):
            failover_event_record(kind=kind, provider_id=provider.pk, reason="failure_rate")

    assert [t.split(".")[0] for t in receiver.texts()] == [
        "[LLM fallback] provider p1: breaker open",
        "[LLM fallback] RESOLVED provider p1: breaker open (since "
        + AlertIncident.objects.order_by("pk").first().opened_at.strftime("%H:%M:%S UTC)"),
        "[LLM fallback] provider p1: breaker open",
    ]
    assert AlertIncident.objects.filter(resolved_at=None).count() == 1


def test_a_route_with_every_provider_down_is_alerted_once_and_resolved_after_the_window(
    channels, down_providers, receiver, settings, fake_clock, django_capture_on_commit_callbacks
):
    settings.FALLBACK_BREAKER_FAILURE_THRESHOLD = 100  # breakers stay closed: route alerts only
    with django_capture_on_commit_callbacks(execute=True):
        _fail(3)

    down = [t for t in receiver.texts() if "every provider down" in t]
    assert len(down) == 1
    assert down[0].startswith("[LLM fallback] route fallback: every provider down.")

    fake_clock.advance(settings.FALLBACK_ALERT_WINDOW_S - 1)
    assert evaluate_alerts() == 0  # still within the window of the last failure
    fake_clock.advance(2)
    FailoverEvent.objects.update(created_at=fake_clock.now() - timedelta(seconds=301))

    assert evaluate_alerts() == 1
    assert receiver.texts()[-1].startswith("[LLM fallback] RESOLVED route fallback")
    assert len([m for m in mail.outbox if "every provider down" in m.subject]) == 2


def test_a_failover_rate_over_the_threshold_is_alerted_once_then_resolved(
    channels, make_provider, receiver, settings, fake_clock
):
    settings.FALLBACK_ALERT_FAILOVER_RATE = 20
    provider = make_provider()
    now = fake_clock.now()
    CallBucket.objects.create(provider=provider, bucket_start=now, shard=0, first_attempts=130)
    failover_event_record(kind="failover", provider_id=provider.pk, reason="timeout", count=30)

    assert evaluate_alerts() == 1  # 30 of 100 requests failed over: 30 %
    assert evaluate_alerts() == 0  # still open: not alerted again
    assert receiver.texts() == [
        "[LLM fallback] failover rate over the threshold. 30 % of 100 requests failed over "
        "in the last 300 s (threshold 20 %)"
    ]

    CallBucket.objects.update(first_attempts=1030)  # 30 of 1000: 3 %
    assert evaluate_alerts() == 1
    assert receiver.texts()[-1].startswith("[LLM fallback] RESOLVED failover rate")


def test_too_few_requests_never_alert_a_rate(channels, make_provider, receiver, fake_clock):
    provider = make_provider()
    CallBucket.objects.create(
        provider=provider, bucket_start=fake_clock.now(), shard=0, first_attempts=6
    )
    failover_event_record(kind="failover", provider_id=provider.pk, reason="timeout", count=3)
    assert evaluate_alerts() == 0
    assert receiver.posts == []


def test_channels_take_only_the_alerts_they_asked_for(
    channels, make_provider, receiver, django_capture_on_commit_callbacks
):
    webhook, _email = channels
    AlertChannel.objects.filter(pk=webhook.pk).update(on_breaker=False)
    provider = make_provider()
    with django_capture_on_commit_callbacks(execute=True):
        failover_event_record(kind="breaker_opened", provider_id=provider.pk, reason="auth")
    assert receiver.posts == []
    assert len(mail.outbox) == 1


# --- the outbound policy and secrets ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:pw@127.0.0.1:9/hook", "credentials"),
        ("http://127.0.0.1:9/hook?token=abc", "query string"),
        ("https://evil.example.net/hook", "FALLBACK_UPSTREAM_HOSTS"),
    ],
)
def test_a_webhook_url_follows_the_providers_outbound_policy(db, settings, url, message):
    settings.FALLBACK_UPSTREAM_HOSTS = ["127.0.0.1", "hooks.slack.com"]
    channel = AlertChannel(name="x", kind="webhook", url=url)
    with pytest.raises(ValidationError, match=message):
        channel.full_clean()


def test_a_secret_variable_must_pass_the_key_variable_policy(db):
    channel = AlertChannel(
        name="x", kind="webhook", url="http://127.0.0.1:9/{secret}", secret_env="DJANGO_SECRET_KEY"
    )
    with pytest.raises(ValidationError, match="deny pattern"):
        channel.full_clean()


def test_the_secret_comes_from_the_environment_and_is_never_stored(
    db, receiver, monkeypatch, make_provider, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("OPS_WEBHOOK_TOKEN", "s3cr3t-path")
    monkeypatch.setenv("OPS_BEARER_TOKEN", "s3cr3t-bearer")
    in_path = AlertChannel(
        name="slack", kind="webhook", url=f"{receiver.url}/services/{{secret}}",
        secret_env="OPS_WEBHOOK_TOKEN",
    )  # fmt: skip
    in_path.full_clean()
    in_path.save()
    AlertChannel.objects.create(
        name="bearer", kind="webhook", url=f"{receiver.url}/hook", secret_env="OPS_BEARER_TOKEN"
    )
    provider = make_provider()

    with django_capture_on_commit_callbacks(execute=True):
        failover_event_record(kind="breaker_opened", provider_id=provider.pk, reason="auth")

    paths = {post["path"]: post["headers"].get("Authorization") for post in receiver.posts}
    assert paths == {"/services/s3cr3t-path": None, "/hook": "Bearer s3cr3t-bearer"}
    stored = json.dumps(list(AlertChannel.objects.values()), default=str)
    assert "s3cr3t" not in stored


def test_a_redirect_is_not_followed_and_the_delivery_fails_loudly(db, receiver, caplog):
    receiver.status, receiver.location = 302, f"{receiver.url}/elsewhere"
    channel = AlertChannel.objects.create(name="moved", kind="webhook", url=f"{receiver.url}/hook")
    with pytest.raises(alerts.AlertDeliveryError, match="302"):
        alerts.alert_test_send(channel)
    assert [post["path"] for post in receiver.posts] == ["/hook"]  # never /elsewhere


def test_a_missing_secret_variable_is_a_clear_delivery_error(db, receiver, monkeypatch):
    monkeypatch.delenv("OPS_MISSING_TOKEN", raising=False)
    channel = AlertChannel.objects.create(
        name="m", kind="webhook", url=f"{receiver.url}/x", secret_env="OPS_MISSING_TOKEN"
    )
    with pytest.raises(alerts.AlertDeliveryError, match="OPS_MISSING_TOKEN is not set"):
        alerts.alert_test_send(channel)
    assert receiver.posts == []


def test_one_unreachable_channel_does_not_stop_the_others(
    db, receiver, make_provider, django_capture_on_commit_callbacks
):
    AlertChannel.objects.create(name="dead", kind="webhook", url="http://127.0.0.1:9/hook")
    AlertChannel.objects.create(name="live", kind="webhook", url=f"{receiver.url}/hook")
    provider = make_provider()
    with django_capture_on_commit_callbacks(execute=True):
        failover_event_record(kind="breaker_opened", provider_id=provider.pk, reason="auth")
    assert len(receiver.posts) == 1


# --- the admin -------------------------------------------------------------------------------


def test_staff_send_a_test_alert_from_the_admin(client, django_user_model, channels, receiver):
    webhook, email = channels
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    url = reverse("admin:providers_app_alertchannel_changelist")

    response = client.post(
        url,
        {"action": "send_test_alert", "_selected_action": [webhook.pk, email.pk]},
        follow=True,
    )

    assert receiver.texts() == ["[LLM fallback] test alert from channel ops-slack: delivery works."]
    assert mail.outbox[0].body == "[LLM fallback] test alert from channel ops-mail: delivery works."
    page = response.content.decode()
    assert "Test alert sent to ops-slack." in page
    assert "Test alert sent to ops-mail." in page


def test_the_admin_form_refuses_a_webhook_without_a_url(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    response = client.post(
        reverse("admin:providers_app_alertchannel_add"),
        {"name": "w", "kind": "webhook", "url": "", "enabled": "on"},
    )
    assert response.status_code == 200
    assert "A webhook channel needs its URL." in response.content.decode()
    assert not AlertChannel.objects.exists()


def test_an_alerting_failure_never_fails_the_event_or_the_request(
    db, make_provider, monkeypatch, caplog
):
    from providers_app import signals

    def broken(event):
        raise RuntimeError("alerting bug")

    monkeypatch.setattr(signals, "incidents_from_event", broken)
    provider = make_provider()

    event = failover_event_record(kind="breaker_opened", provider_id=provider.pk, reason="auth")

    assert event is not None
    assert FailoverEvent.objects.filter(pk=event.pk).exists()
    assert "alert incident update failed" in caplog.text
