"""Every screen at 1366 px: nothing overlaps, nothing runs off sideways, no JS errors."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from providers_app.models import BreakerState, FailoverEvent
from providers_app.services import operator
from providers_app.services.routes import route_create


def _admin_pages(providers, actor) -> dict[str, str]:
    """The admin's screens, with the widest content they normally show: a drained
    provider (open until), one cooling down, a failover with a long request id."""
    first = providers[0]
    now = timezone.now()
    operator.operator_breaker_force_open(
        provider_id=providers[2].pk, until=now + timedelta(minutes=30), actor=actor
    )
    BreakerState.objects.filter(pk=providers[1].pk).update(
        cooldown_until=now + timedelta(seconds=40)
    )
    event = FailoverEvent.objects.create(
        kind=FailoverEvent.Kind.FAILOVER, provider=first, to_provider=providers[1],
        reason="server_error", status_code=502, attempt=1, latency_ms=23.642311000003247,
        request_id="5f0c2b8e9d7a4c1b8e2f3a4b5c6d7e8f-retry-2", detail="HTTP 502 from upstream",
    )  # fmt: skip
    route = route_create(
        name="chat-large-documents", providers=list(reversed(providers)), is_default=True,
        deadline_s=30,
    )  # fmt: skip
    route_create(name="chat", providers=providers[:2])
    return {
        "admin-index": reverse("admin:index"),
        "provider-list": reverse("admin:providers_app_provider_changelist"),
        "provider-page": reverse("admin:providers_app_provider_change", args=[first.pk]),
        "provider-force-open": reverse("admin:providers_app_provider_force_open", args=[first.pk]),
        "event-log": reverse("admin:providers_app_failoverevent_changelist"),
        "event-page": reverse("admin:providers_app_failoverevent_change", args=[event.pk]),
        "health-results": reverse("admin:providers_app_healthcheckresult_changelist"),
        "client-keys": reverse("admin:providers_app_clientkey_changelist"),
        "route-list": reverse("admin:providers_app_route_changelist"),
        "route-page": reverse("admin:providers_app_route_change", args=[route.pk]),
    }


def _problems_on(screen, pages: dict[str, str], width: int) -> str:
    """Visit each page, keep its screenshot, and list what is wrong with its layout."""
    found = []
    for name, url in pages.items():
        screen.go(url)
        screen.shot(f"{name}-{width}")
        found += [f"{name}: {problem}" for problem in screen.layout_problems()]
    return "\n".join(found)


@pytest.mark.parametrize("width", [1366, 1920])
def test_admin_pages_have_no_overlap_or_overflow(screen_for, admin_user, three_providers, width):
    screen = screen_for(admin_user, width=width)
    problems = _problems_on(screen, _admin_pages(three_providers, admin_user), width)
    assert not problems, problems


@pytest.mark.parametrize("width", [375, 1366])
def test_chat_pages_have_no_overlap_or_overflow(screen_for, admin_user, width):
    # A member of staff: the header then holds the most (name, Admin, Sign out).
    screen = screen_for(admin_user, width=width)
    problems = _problems_on(screen, {"chat": "/chat/"}, width)
    assert not problems, problems


def test_sign_in_pages_have_no_overlap_or_overflow(screen_for, transactional_db):
    screen = screen_for(None)
    pages = {"chat-login": "/chat/login/", "admin-login": reverse("admin:login")}
    problems = _problems_on(screen, pages, 1366)
    assert not problems, problems
