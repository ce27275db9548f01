"""The authorisation matrix: every admin view and action of providers_app, for a
superuser, a staff user holding the permission, a staff user holding every other
permission of the app but not that one, and a non-staff user holding them all.

Allowed requests succeed; refused ones answer 403 (non-staff: the admin login)
and change nothing. docs/operations.md "Authorisation" is the same table in words.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from providers_app.admin import OPERATIONS, ClientKeyAdmin, ProviderAdmin
from providers_app.models import (
    AlertChannel,
    AlertIncident,
    BreakerState,
    CallBucket,
    ClientKey,
    FailoverEvent,
    HealthCheckResult,
    HealthCheckSchedule,
    ProbeLease,
    Provider,
    RequestTrace,
    Route,
    RouteMember,
)
from providers_app.services.client_keys import client_key_create
from providers_app.services.providers import provider_state_rows_create
from providers_app.services.routes import route_create
from tests.factories import provider_create

APP = "providers_app"
ROLES = ("superuser", "staff_with", "staff_without", "non_staff")


@dataclass
class World:
    first: Provider
    second: Provider
    event: FailoverEvent
    result: HealthCheckResult
    key: ClientKey
    route: Route
    trace: RequestTrace
    channel: AlertChannel
    incident: AlertIncident


@dataclass(frozen=True)
class Case:
    """One request. `needs`: the permissions a staff user is given to be allowed;
    `gate`: the ones taken away from "every permission" to be refused (default:
    the last of `needs`, the one that is specific to the request)."""

    id: str
    url_name: str
    url: Callable[[World], str]
    needs: tuple[str, ...]
    method: str = "get"
    data: Callable[[World], object] | None = None
    json_body: bool = False
    allowed_status: tuple[int, ...] = (200,)
    changes: bool = False  # an allowed request must change something
    gate: tuple[str, ...] = field(default=())
    nobody: bool = False  # refused even to superusers (read-only history)

    @property
    def gated_by(self) -> tuple[str, ...]:
        return self.gate or self.needs[-1:]


def _u(name: str, *args: Callable[[World], object]) -> Callable[[World], str]:
    return lambda w: reverse(f"admin:{name}", args=[a(w) for a in args])


def _pk(attr: str) -> Callable[[World], object]:
    return lambda w: getattr(w, attr).pk


# Django lets either permission look at a row.
VIEW_PROVIDER = ("view_provider", "change_provider")
SEE_EVENTS = ("view_failoverevent", "change_failoverevent")
SEE_HEALTH = ("view_healthcheckresult", "change_healthcheckresult")
SEE_KEYS = ("view_clientkey", "change_clientkey")
SEE_ROUTES = ("view_route", "change_route")
SEE_TRACES = ("view_requesttrace", "change_requesttrace")
SEE_CHANNELS = ("view_alertchannel", "change_alertchannel")
SEE_INCIDENTS = ("view_alertincident", "change_alertincident")


def _channel_form(w: World, **overrides) -> dict:
    return {
        "name": "matrix-channel",
        "kind": "email",
        "emails": "ops@example.com",
        "enabled": "on",
        "on_breaker": "on",
    } | overrides


def _route_form(w: World, order: tuple[int, int] = (1, 2), **overrides) -> dict:
    """The route page's POST; `order` gives the members (first, second) new positions."""
    members = list(w.route.members.order_by("order", "id"))
    data = {
        "name": w.route.name,
        "deadline_s": "",
        "failover_on_content_filter": "unknown",
        "members-TOTAL_FORMS": str(len(members)),
        "members-INITIAL_FORMS": str(len(members)),
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
    }
    for i, (member, position) in enumerate(zip(members, order, strict=True)):
        data |= {
            f"members-{i}-id": str(member.pk),
            f"members-{i}-route": str(w.route.pk),
            f"members-{i}-provider": str(member.provider_id),
            f"members-{i}-order": str(position),
        }
    return data | overrides


FUTURE = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


def _provider_version(provider) -> str:
    """The stale-form guard's token of the row as it is now (a fresh edit)."""
    from providers_app.admin_forms import provider_version

    provider.refresh_from_db()
    return provider_version(provider.updated_at)


def _provider_form(w: World, **overrides) -> dict:
    data = {
        "name": "matrix-new",
        "kind": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
        "api_key_env": "",
        "enabled": "on",
        "timeout_s": "5",
        "max_attempts": "2",
        "extra": "{}",
    }
    data.update(overrides)
    return data


def _action(name: str, model: str, *, needs: tuple[str, ...], extra=None, row="first") -> Case:
    def data(w: World) -> dict:
        selected = {"clientkey": w.key.pk, "route": w.route.pk}.get(model) or getattr(w, row).pk
        return {"action": name, "_selected_action": [selected], **(extra or {})}

    return Case(
        id=f"{model}-action-{name}",
        url_name=f"{APP}_{model}_changelist",
        url=_u(f"{APP}_{model}_changelist"),
        needs=needs,
        method="post",
        data=data,
        allowed_status=(302,),
        changes=True,
    )


def _provider_action_cases() -> list[Case]:
    cases = []
    for action in ProviderAdmin.actions:
        extra = {"apply": "1", "until": FUTURE} if action == "action_force_open" else None
        cases.append(
            _action(action, "provider", needs=("view_provider", "operate_provider"), extra=extra)
        )
    cases.append(
        _action(
            "delete_selected",
            "provider",
            needs=("view_provider", "delete_provider"),
            extra={"post": "yes"},
            row="second",  # the first has health results, which nobody may delete
        )
    )
    return cases


def _operate_cases() -> list[Case]:
    return [
        Case(
            id=f"provider-operate-{action}",
            url_name=f"{APP}_provider_operate",
            url=lambda w, a=action: reverse(f"admin:{APP}_provider_operate", args=[w.first.pk, a]),
            needs=("operate_provider",),
            method="post",
            allowed_status=(302,),
            changes=True,
        )
        for action in ("health_check", *OPERATIONS)
    ]


CASES: list[Case] = [
    # -- providers --------------------------------------------------------------
    Case("provider-changelist", f"{APP}_provider_changelist",
         _u(f"{APP}_provider_changelist"), ("view_provider",), gate=VIEW_PROVIDER),
    Case("provider-add-get", f"{APP}_provider_add", _u(f"{APP}_provider_add"), ("add_provider",)),
    Case("provider-add-post", f"{APP}_provider_add", _u(f"{APP}_provider_add"),
         ("view_provider", "add_provider"), method="post", data=_provider_form,
         allowed_status=(302,), changes=True),
    Case("provider-change-get", f"{APP}_provider_change",
         _u(f"{APP}_provider_change", _pk("first")), ("view_provider",), gate=VIEW_PROVIDER),
    Case("provider-change-post", f"{APP}_provider_change",
         _u(f"{APP}_provider_change", _pk("first")), ("view_provider", "change_provider"),
         method="post", allowed_status=(302,), changes=True,
         data=lambda w: _provider_form(
             w, name=w.first.name, model="edited", version=_provider_version(w.first)
         )),
    Case("provider-delete-get", f"{APP}_provider_delete",
         _u(f"{APP}_provider_delete", _pk("second")), ("view_provider", "delete_provider")),
    Case("provider-delete-post", f"{APP}_provider_delete",
         _u(f"{APP}_provider_delete", _pk("second")), ("view_provider", "delete_provider"),
         method="post", data=lambda w: {"post": "yes"}, allowed_status=(302,), changes=True),
    Case("provider-history", f"{APP}_provider_history",
         _u(f"{APP}_provider_history", _pk("first")), ("view_provider",), gate=VIEW_PROVIDER),
    Case("provider-reorder", f"{APP}_provider_sortable_update",
         _u(f"{APP}_provider_sortable_update"), ("reorder_route",), method="post",
         json_body=True, changes=True,
         data=lambda w: {"updatedItems": [[w.second.pk, 1], [w.first.pk, 2]]}),
    Case("provider-move", f"{APP}_provider_move",
         _u(f"{APP}_provider_move", _pk("second"), lambda w: "up"), ("reorder_route",),
         method="post", allowed_status=(302,), changes=True),
    Case("provider-force-open-get", f"{APP}_provider_force_open",
         _u(f"{APP}_provider_force_open", _pk("first")), ("operate_provider",)),
    Case("provider-force-open-post", f"{APP}_provider_force_open",
         _u(f"{APP}_provider_force_open", _pk("first")), ("operate_provider",), method="post",
         data=lambda w: {"until": FUTURE}, allowed_status=(302,), changes=True),
    *_operate_cases(),
    *_provider_action_cases(),
    # -- history: read-only for everyone --------------------------------------------
    Case("event-changelist", f"{APP}_failoverevent_changelist",
         _u(f"{APP}_failoverevent_changelist"), ("view_failoverevent",), gate=SEE_EVENTS),
    Case("event-change-get", f"{APP}_failoverevent_change",
         _u(f"{APP}_failoverevent_change", _pk("event")), ("view_failoverevent",), gate=SEE_EVENTS),
    Case("event-history", f"{APP}_failoverevent_history",
         _u(f"{APP}_failoverevent_history", _pk("event")), ("view_failoverevent",),
         gate=SEE_EVENTS),
    Case("event-add", f"{APP}_failoverevent_add", _u(f"{APP}_failoverevent_add"),
         ("view_failoverevent",), nobody=True),
    Case("event-change-post", f"{APP}_failoverevent_change",
         _u(f"{APP}_failoverevent_change", _pk("event")), ("view_failoverevent",),
         method="post", data=lambda w: {"reason": "forged"}, nobody=True),
    Case("event-delete", f"{APP}_failoverevent_delete",
         _u(f"{APP}_failoverevent_delete", _pk("event")), ("view_failoverevent",),
         method="post", data=lambda w: {"post": "yes"}, nobody=True),
    Case("dashboard", f"{APP}_dashboard_changelist", _u(f"{APP}_dashboard_changelist"),
         ("view_failoverevent",), gate=SEE_EVENTS),
    Case("dashboard-live", f"{APP}_dashboard_live", _u(f"{APP}_dashboard_live"),
         ("view_failoverevent",), gate=SEE_EVENTS),
    Case("usage", f"{APP}_usagereport_changelist", _u(f"{APP}_usagereport_changelist"),
         ("view_failoverevent",), gate=SEE_EVENTS),
    Case("health-changelist", f"{APP}_healthcheckresult_changelist",
         _u(f"{APP}_healthcheckresult_changelist"), ("view_healthcheckresult",), gate=SEE_HEALTH),
    Case("health-change-get", f"{APP}_healthcheckresult_change",
         _u(f"{APP}_healthcheckresult_change", _pk("result")), ("view_healthcheckresult",),
         gate=SEE_HEALTH),
    Case("health-history", f"{APP}_healthcheckresult_history",
         _u(f"{APP}_healthcheckresult_history", _pk("result")), ("view_healthcheckresult",),
         gate=SEE_HEALTH),
    Case("health-add", f"{APP}_healthcheckresult_add", _u(f"{APP}_healthcheckresult_add"),
         ("view_healthcheckresult",), nobody=True),
    Case("health-delete", f"{APP}_healthcheckresult_delete",
         _u(f"{APP}_healthcheckresult_delete", _pk("result")), ("view_healthcheckresult",),
         method="post", data=lambda w: {"post": "yes"}, nobody=True),
    # -- request traces: read-only for everyone -------------------------------------------
    Case("trace-changelist", f"{APP}_requesttrace_changelist",
         _u(f"{APP}_requesttrace_changelist"), ("view_requesttrace",), gate=SEE_TRACES),
    Case("trace-change-get", f"{APP}_requesttrace_change",
         _u(f"{APP}_requesttrace_change", _pk("trace")), ("view_requesttrace",),
         gate=SEE_TRACES),
    Case("trace-by-request", f"{APP}_requesttrace_by_request",
         lambda w: reverse(f"admin:{APP}_requesttrace_by_request", args=[w.trace.request_id]),
         ("view_requesttrace",), allowed_status=(302,), gate=SEE_TRACES),
    Case("trace-history", f"{APP}_requesttrace_history",
         _u(f"{APP}_requesttrace_history", _pk("trace")), ("view_requesttrace",),
         gate=SEE_TRACES),
    Case("trace-add", f"{APP}_requesttrace_add", _u(f"{APP}_requesttrace_add"),
         ("view_requesttrace",), nobody=True),
    Case("trace-change-post", f"{APP}_requesttrace_change",
         _u(f"{APP}_requesttrace_change", _pk("trace")), ("view_requesttrace",),
         method="post", data=lambda w: {"outcome": "failed"}, nobody=True),
    Case("trace-delete", f"{APP}_requesttrace_delete",
         _u(f"{APP}_requesttrace_delete", _pk("trace")), ("view_requesttrace",),
         method="post", data=lambda w: {"post": "yes"}, nobody=True),
    # -- alerts: channels (with "send a test alert") and incidents (read-only) ----------
    Case("channel-changelist", f"{APP}_alertchannel_changelist",
         _u(f"{APP}_alertchannel_changelist"), ("view_alertchannel",), gate=SEE_CHANNELS),
    Case("channel-add-get", f"{APP}_alertchannel_add", _u(f"{APP}_alertchannel_add"),
         ("add_alertchannel",)),
    Case("channel-add-post", f"{APP}_alertchannel_add", _u(f"{APP}_alertchannel_add"),
         ("view_alertchannel", "add_alertchannel"), method="post", data=_channel_form,
         allowed_status=(302,), changes=True),
    Case("channel-change-get", f"{APP}_alertchannel_change",
         _u(f"{APP}_alertchannel_change", _pk("channel")), ("view_alertchannel",),
         gate=SEE_CHANNELS),
    Case("channel-change-post", f"{APP}_alertchannel_change",
         _u(f"{APP}_alertchannel_change", _pk("channel")),
         ("view_alertchannel", "change_alertchannel"), method="post", allowed_status=(302,),
         changes=True, data=lambda w: _channel_form(w, name="renamed")),
    Case("channel-delete-get", f"{APP}_alertchannel_delete",
         _u(f"{APP}_alertchannel_delete", _pk("channel")),
         ("view_alertchannel", "delete_alertchannel")),
    Case("channel-delete-post", f"{APP}_alertchannel_delete",
         _u(f"{APP}_alertchannel_delete", _pk("channel")),
         ("view_alertchannel", "delete_alertchannel"), method="post",
         data=lambda w: {"post": "yes"}, allowed_status=(302,), changes=True),
    Case("channel-history", f"{APP}_alertchannel_history",
         _u(f"{APP}_alertchannel_history", _pk("channel")), ("view_alertchannel",),
         gate=SEE_CHANNELS),
    # Sending a test alert changes no row: it sends one email (checked in tests/services).
    Case("alertchannel-action-send_test_alert", f"{APP}_alertchannel_changelist",
         _u(f"{APP}_alertchannel_changelist"), ("view_alertchannel", "change_alertchannel"),
         method="post", allowed_status=(302,),
         data=lambda w: {"action": "send_test_alert", "_selected_action": [w.channel.pk]}),
    _action("delete_selected", "alertchannel", needs=("view_alertchannel", "delete_alertchannel"),
            extra={"post": "yes"}, row="channel"),
    Case("incident-changelist", f"{APP}_alertincident_changelist",
         _u(f"{APP}_alertincident_changelist"), ("view_alertincident",), gate=SEE_INCIDENTS),
    Case("incident-change-get", f"{APP}_alertincident_change",
         _u(f"{APP}_alertincident_change", _pk("incident")), ("view_alertincident",),
         gate=SEE_INCIDENTS),
    Case("incident-history", f"{APP}_alertincident_history",
         _u(f"{APP}_alertincident_history", _pk("incident")), ("view_alertincident",),
         gate=SEE_INCIDENTS),
    Case("incident-add", f"{APP}_alertincident_add", _u(f"{APP}_alertincident_add"),
         ("view_alertincident",), nobody=True),
    Case("incident-delete", f"{APP}_alertincident_delete",
         _u(f"{APP}_alertincident_delete", _pk("incident")), ("view_alertincident",),
         method="post", data=lambda w: {"post": "yes"}, nobody=True),
    # -- client keys ------------------------------------------------------------------
    Case("clientkey-changelist", f"{APP}_clientkey_changelist",
         _u(f"{APP}_clientkey_changelist"), ("view_clientkey",), gate=SEE_KEYS),
    Case("clientkey-add-get", f"{APP}_clientkey_add", _u(f"{APP}_clientkey_add"),
         ("add_clientkey",)),
    Case("clientkey-create", f"{APP}_clientkey_add", _u(f"{APP}_clientkey_add"),
         ("add_clientkey",), method="post", data=lambda w: {"name": "matrix-key"},
         changes=True),
    Case("clientkey-change-get", f"{APP}_clientkey_change",
         _u(f"{APP}_clientkey_change", _pk("key")), ("view_clientkey",), gate=SEE_KEYS),
    # Route limits are editable after creation (audited); the name and key are not.
    Case("clientkey-change-post", f"{APP}_clientkey_change",
         _u(f"{APP}_clientkey_change", _pk("key")), ("view_clientkey", "change_clientkey"),
         method="post", data=lambda w: {"name": "renamed", "routes": [w.route.pk],
                                        "max_concurrent_requests": "3",
                                        "requests_per_minute": "30"},
         allowed_status=(302,), changes=True),
    Case("clientkey-history", f"{APP}_clientkey_history",
         _u(f"{APP}_clientkey_history", _pk("key")), ("view_clientkey",), gate=SEE_KEYS),
    Case("clientkey-delete-post", f"{APP}_clientkey_delete",
         _u(f"{APP}_clientkey_delete", _pk("key")), ("view_clientkey", "delete_clientkey"),
         method="post", data=lambda w: {"post": "yes"}, allowed_status=(302,), changes=True),
    _action("revoke", "clientkey", needs=("view_clientkey", "revoke_clientkey")),
    _action("delete_selected", "clientkey", needs=("view_clientkey", "delete_clientkey"),
            extra={"post": "yes"}),
    # -- routes -------------------------------------------------------------------------
    Case("route-changelist", f"{APP}_route_changelist", _u(f"{APP}_route_changelist"),
         ("view_route",), gate=SEE_ROUTES),
    Case("route-add-get", f"{APP}_route_add", _u(f"{APP}_route_add"), ("add_route",)),
    Case("route-add-post", f"{APP}_route_add", _u(f"{APP}_route_add"),
         ("view_route", "add_route"), method="post", allowed_status=(302,), changes=True,
         data=lambda w: {"name": "matrix-route", "failover_on_content_filter": "unknown",
                         "members-TOTAL_FORMS": "1", "members-INITIAL_FORMS": "0",
                         "members-0-provider": str(w.second.pk), "members-0-order": "1"}),
    Case("route-change-get", f"{APP}_route_change", _u(f"{APP}_route_change", _pk("route")),
         ("view_route",), gate=SEE_ROUTES),
    Case("route-change-post", f"{APP}_route_change", _u(f"{APP}_route_change", _pk("route")),
         ("view_route", "change_route"), method="post", allowed_status=(302,), changes=True,
         data=lambda w: _route_form(w, deadline_s="20")),
    # Dragging the members into a new order: the route's change permission and the
    # reorder permission (refused without it: the form comes back with the reason).
    Case("route-reorder-post", f"{APP}_route_change",
         _u(f"{APP}_route_change", _pk("route")), ("view_route", "change_route", "reorder_route"),
         method="post", allowed_status=(302,), changes=True,
         data=lambda w: _route_form(w, order=(2, 1)), gate=("change_route",)),
    Case("route-history", f"{APP}_route_history", _u(f"{APP}_route_history", _pk("route")),
         ("view_route",), gate=SEE_ROUTES),
    Case("route-delete-post", f"{APP}_route_delete", _u(f"{APP}_route_delete", _pk("route")),
         ("view_route", "delete_route"), method="post", data=lambda w: {"post": "yes"},
         allowed_status=(302,), changes=True),
    _action("delete_selected", "route", needs=("view_route", "delete_route"),
            extra={"post": "yes"}),
]  # fmt: skip


@pytest.fixture
def world(db) -> World:
    first = provider_create()
    second = provider_create()
    for provider in (first, second):
        provider_state_rows_create(provider=provider)
    event = FailoverEvent.objects.create(kind="failover", provider=first, reason="server_error")
    result = HealthCheckResult.objects.create(provider=first, ok=True)
    key = client_key_create(name="existing").client_key
    route = route_create(name="matrix", providers=[first, second])
    trace = RequestTrace.objects.create(
        created_at=timezone.now(), request_id="matrix-request", outcome="failed"
    )
    channel = AlertChannel.objects.create(name="matrix", kind="email", emails="ops@example.com")
    incident = AlertIncident.objects.create(
        kind="breaker_open", subject=first.name, opened_at=timezone.now()
    )
    return World(first, second, event, result, key, route, trace, channel, incident)


def _user(django_user_model, role: str, case: Case):
    app_perms = Permission.objects.filter(content_type__app_label=APP)
    if role == "superuser":
        return django_user_model.objects.create_superuser("root", password="pw")
    user = django_user_model.objects.create_user(role, password="pw", is_staff=role != "non_staff")
    if role == "staff_with":
        user.user_permissions.set(app_perms.filter(codename__in=case.needs))
    elif role == "staff_without":
        user.user_permissions.set(app_perms.exclude(codename__in=case.gated_by))
    else:  # non_staff: every permission, still no admin
        user.user_permissions.set(app_perms)
    return user


def _state() -> list:
    """Everything an admin request could change, row by row."""
    models = (Provider, BreakerState, HealthCheckSchedule, ProbeLease, CallBucket,
              FailoverEvent, HealthCheckResult, ClientKey, Route, RouteMember,
              RequestTrace, AlertChannel, AlertIncident, LogEntry)  # fmt: skip
    return [list(m.objects.order_by("pk").values()) for m in models]


def _send(client, case: Case, world: World):
    url = case.url(world)
    if case.method == "get":
        return client.get(url)
    data = case.data(world) if case.data else {}
    if case.json_body:
        return client.post(url, json.dumps(data), content_type="application/json")
    return client.post(url, data)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_permission_matrix(client, django_user_model, world, case, role):
    client.force_login(_user(django_user_model, role, case))
    before = _state()

    response = _send(client, case, world)

    allowed = role in ("superuser", "staff_with") and not case.nobody
    if allowed:
        assert response.status_code in case.allowed_status, response.content[:500]
        if case.changes:
            assert _state() != before, "an allowed request changed nothing"
        return
    if role == "non_staff":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    else:
        assert response.status_code == 403, (response.status_code, response.content[:300])
    assert _state() == before


def test_the_matrix_covers_every_admin_url_and_action_of_the_app(db, django_user_model):
    """A new admin view or action fails here until the matrix (and the docs) list it."""
    covered_urls = {case.url_name for case in CASES}
    app_urls = {
        pattern.name
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == APP
        for pattern in model_admin.urls
        if pattern.name
    }
    assert app_urls - covered_urls == set()

    request = RequestFactory().get("/")
    request.user = django_user_model.objects.create_superuser("root", password="pw")
    covered_actions = {case.id for case in CASES}
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != APP:
            continue
        for name in model_admin.get_actions(request):
            assert f"{model._meta.model_name}-action-{name}" in covered_actions


@pytest.mark.parametrize("model_admin", [ProviderAdmin, ClientKeyAdmin])
def test_every_custom_action_declares_a_permission(model_admin):
    for name in model_admin.actions:
        action = getattr(model_admin, name)
        assert getattr(action, "allowed_permissions", None), f"{name} declares no permission"
