"""Operator actions in the admin: each one leaves the state it names, a `manual`
FailoverEvent with the acting user, and an entry in the admin history."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse
from django.utils import timezone

from providers_app.engine.breaker import breaker_open_for_health
from providers_app.engine.routing import routing_snapshot
from providers_app.models import BreakerState, FailoverEvent, HealthCheckResult, Provider

State = BreakerState.State
CHANGELIST = "admin:providers_app_provider_changelist"


def _operate_url(provider, action: str) -> str:
    return reverse("admin:providers_app_provider_operate", args=[provider.pk, action])


def _state(provider) -> BreakerState:
    return BreakerState.objects.get(pk=provider.pk)


def _manual_event(provider, reason: str) -> FailoverEvent:
    return FailoverEvent.objects.get(
        provider=provider, kind=FailoverEvent.Kind.MANUAL, reason=reason
    )


def _history(provider) -> list[str]:
    return [
        entry.get_change_message()
        for entry in LogEntry.objects.filter(object_id=str(provider.pk), action_flag=CHANGE)
    ]


def _list_action(client, action: str, *providers, **extra):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [p.pk for p in providers], "index": 0, **extra},
        follow=True,
    )


@pytest.fixture
def opened(make_provider):
    provider = make_provider(name="flaky")
    breaker_open_for_health(provider_id=provider.pk, detail="down")
    return provider


def test_reset_closes_an_open_breaker_and_records_who_did_it(
    operator_client, operator_user, opened
):
    response = operator_client.post(_operate_url(opened, "reset"), follow=True)

    assert response.status_code == 200
    state = _state(opened)
    assert (state.state, state.consecutive_failures, state.open_until) == (State.CLOSED, 0, None)
    event = _manual_event(opened, "reset")
    assert event.actor == operator_user
    assert "open -> closed" in event.detail
    assert any("Reset breaker" in message for message in _history(opened))
    assert "Flaky: breaker reset to closed." in response.content.decode()  # capfirst


def test_force_closed_from_the_list(operator_client, operator_user, opened):
    _list_action(operator_client, "action_force_closed", opened)

    assert _state(opened).state == State.CLOSED
    assert _manual_event(opened, "force_closed").actor == operator_user
    assert any("Force breaker closed" in message for message in _history(opened))


def test_never_trip_sets_the_never_trip_breaker_state(
    operator_client, operator_user, make_provider
):
    provider = make_provider()
    operator_client.post(_operate_url(provider, "never_trip"))

    assert _state(provider).state == State.NEVER_TRIP
    assert _manual_event(provider, "never_trip").actor == operator_user
    assert Provider.objects.get(pk=provider.pk).enabled  # still routed to: not "disabled"


def test_force_open_asks_until_when_and_defaults_to_an_hour(operator_client, make_provider):
    provider = make_provider()
    url = reverse("admin:providers_app_provider_force_open", args=[provider.pk])

    page = operator_client.get(url)

    assert page.status_code == 200
    default = page.context["form"].initial["until"]
    assert timedelta(minutes=59) < default - timezone.now() <= timedelta(hours=1)
    assert _state(provider).state == State.CLOSED  # a GET changes nothing


def test_force_open_until_a_chosen_time_drains_the_provider(
    operator_client, operator_user, make_provider
):
    provider = make_provider()
    url = reverse("admin:providers_app_provider_force_open", args=[provider.pk])
    until = (timezone.now() + timedelta(hours=3)).replace(second=0, microsecond=0)

    response = operator_client.post(url, {"until": until.strftime("%Y-%m-%dT%H:%M"), "apply": "1"})

    assert response.status_code == 302
    state = _state(provider)
    assert (state.state, state.open_until) == (State.FORCED_OPEN, until)
    assert _manual_event(provider, "force_open").actor == operator_user
    assert any("forced open until" in message for message in _history(provider))
    assert provider.name not in [e.name for e in routing_snapshot() if e.state == State.CLOSED]


def test_force_open_refuses_a_time_in_the_past(operator_client, make_provider):
    provider = make_provider()
    url = reverse("admin:providers_app_provider_force_open", args=[provider.pk])
    past = datetime(2020, 1, 1, tzinfo=UTC)

    response = operator_client.post(url, {"until": past.strftime("%Y-%m-%dT%H:%M"), "apply": "1"})

    assert response.status_code == 200
    assert "Choose a time in the future." in response.content.decode()
    assert _state(provider).state == State.CLOSED
    assert not FailoverEvent.objects.exists()


def test_force_open_from_the_list_goes_through_the_intermediate_page(
    operator_client, make_provider
):
    first, second = make_provider(), make_provider()

    page = _list_action(operator_client, "action_force_open", first, second)
    assert "Force breaker open (maintenance drain)" in page.content.decode()
    assert _state(first).state == State.CLOSED

    operator_client.post(
        reverse(CHANGELIST),
        {"action": "action_force_open", "_selected_action": [first.pk, second.pk],
         "no_expiry": "on", "apply": "1"},
    )  # fmt: skip

    for provider in (first, second):
        state = _state(provider)
        assert (state.state, state.open_until) == (State.FORCED_OPEN, None)
        assert _manual_event(provider, "force_open")


def test_disable_and_enable_change_routing_and_write_events(
    operator_client, operator_user, make_provider
):
    provider = make_provider(name="toggled")

    _list_action(operator_client, "action_provider_disable", provider)

    assert Provider.objects.get(pk=provider.pk).enabled is False
    assert "toggled" not in [e.name for e in routing_snapshot()]
    assert _state(provider).state == State.CLOSED  # the breaker is not "never trip"
    assert _manual_event(provider, "provider_disabled").actor == operator_user

    operator_client.post(_operate_url(provider, "provider_enable"))

    assert Provider.objects.get(pk=provider.pk).enabled is True
    assert "toggled" in [e.name for e in routing_snapshot()]
    assert _manual_event(provider, "provider_enabled").actor == operator_user
    assert len(_history(provider)) == 2


def test_enabling_an_enabled_provider_writes_no_event(operator_client, make_provider):
    provider = make_provider()
    response = operator_client.post(_operate_url(provider, "provider_enable"), follow=True)
    assert "provider was already enabled" in response.content.decode()
    assert not FailoverEvent.objects.exists()


def test_health_check_now_records_a_result_and_a_manual_event(
    operator_client, operator_user, alpha, on_upstream
):
    provider = on_upstream(alpha)

    response = operator_client.post(_operate_url(provider, "health_check"), follow=True)

    assert alpha.health_count == 1
    assert HealthCheckResult.objects.get(provider=provider).ok
    event = _manual_event(provider, "health_check_now")
    assert event.actor == operator_user
    assert event.detail.startswith("health check passed")
    assert "health check passed" in response.content.decode()
    assert any("Health check" in message for message in _history(provider))


def test_health_check_now_from_the_list_reports_a_failure(operator_client, alpha, on_upstream):
    provider = on_upstream(alpha)
    alpha.set_fault("error", status=502)

    response = _list_action(operator_client, "action_health_check", provider)

    assert "health check failed: server_error 502" in response.content.decode()
    assert not HealthCheckResult.objects.get(provider=provider).ok


def _offered(client, provider) -> set[str]:
    content = client.get(
        reverse("admin:providers_app_provider_change", args=[provider.pk])
    ).content.decode()
    offered = {
        action
        for action in (
            "health_check",
            "reset",
            "force_closed",
            "never_trip",
            "provider_enable",
            "provider_disable",
        )
        if _operate_url(provider, action) in content
    }
    if reverse("admin:providers_app_provider_force_open", args=[provider.pk]) in content:
        offered.add("force_open")
    return offered


def test_a_healthy_provider_page_offers_only_what_would_change_something(
    operator_client, make_provider
):
    provider = make_provider()
    assert _offered(operator_client, provider) == {
        "health_check", "never_trip", "provider_disable", "force_open"
    }  # fmt: skip


def test_an_open_breaker_offers_reset_and_force_closed(operator_client, opened):
    assert _offered(operator_client, opened) == {
        "health_check", "reset", "force_closed", "never_trip", "provider_disable", "force_open"
    }  # fmt: skip


def test_a_disabled_provider_offers_enable_not_disable(operator_client, make_provider):
    provider = make_provider(enabled=False)
    offered = _offered(operator_client, provider)
    assert "provider_enable" in offered
    assert "provider_disable" not in offered


def test_a_forced_open_breaker_offers_reset_and_close_not_another_drain(
    operator_client, make_provider
):
    provider = make_provider()
    operator_client.post(
        reverse("admin:providers_app_provider_force_open", args=[provider.pk]),
        {"no_expiry": "on"},
    )
    assert _state(provider).state == State.FORCED_OPEN
    offered = _offered(operator_client, provider)
    assert {"reset", "force_closed"} <= offered
    assert not {"force_open", "never_trip"} & offered


def test_actions_need_the_operate_permission(client, django_user_model, make_provider):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_provider"))
    client.force_login(viewer)
    provider = make_provider()

    assert client.post(_operate_url(provider, "provider_disable")).status_code == 403
    assert (
        client.get(
            reverse("admin:providers_app_provider_force_open", args=[provider.pk])
        ).status_code
        == 403
    )
    assert Provider.objects.get(pk=provider.pk).enabled
    assert not FailoverEvent.objects.exists()


def test_operate_refuses_get_and_unknown_actions(operator_client, make_provider):
    provider = make_provider()
    assert operator_client.get(_operate_url(provider, "reset")).status_code == 405
    assert operator_client.post(_operate_url(provider, "explode")).status_code == 404
