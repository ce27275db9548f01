"""Every screen at 1366 px: nothing overlaps, nothing runs off sideways, no JS errors."""

from datetime import timedelta

import pytest
from django.urls import reverse

from providers_app.engine.clock import get_clock
from providers_app.models import BreakerState, FailoverEvent
from providers_app.services import operator
from providers_app.services.routes import route_create
from providers_app.testing import breaker_state_set
from tests.factories import provider_create

# The widest names an admin may give (40 characters, one without a break opportunity).
LONG_NAMES = (
    "anthropicclaudesonnetfourfiveeuwest1prod",
    "azure-openai-gpt4o-mini-eastus2-fallback",
)


def _admin_pages(providers, actor) -> dict[str, str]:
    """The admin's screens, with the widest content they show: a provider in every
    state (drained with an expiry on another day, open, cooling down, disabled),
    40-character names, a failover with a long request id and a long reason."""
    first = providers[0]
    now = get_clock().now()
    opened, disabled = (
        provider_create(name=name, model=f"model-{name}", base_url=providers[0].base_url)
        for name in LONG_NAMES
    )
    breaker_state_set(
        opened, state=BreakerState.State.OPEN, opened_at=now, open_until=now + timedelta(days=1),
        last_error="HTTP 529 overloaded_error: " + "The API is temporarily overloaded. " * 4,
    )  # fmt: skip
    operator.operator_provider_disable(provider_id=disabled.pk, actor=actor)
    providers = [*providers, opened, disabled]
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
    FailoverEvent.objects.create(
        kind=FailoverEvent.Kind.FAILOVER, provider=opened, to_provider=disabled,
        reason="overloaded", status_code=529, attempt=2, latency_ms=10023.5,
        request_id="chatcmpl-" + "9" * 40, detail="HTTP 529 " + "overloaded_error " * 20,
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
