"""One order per route, as an admin of the demo finds it: every drag and every
keyboard move in the admin steers the very next API chat of the printed curl.

The demo's configuration is seeded by `manage.py demo_setup`'s own code (routes
`chat`, the default, and `chat-fast`); only the upstreams' addresses are this
test's simulators. The screenshots of each reorder screen after its move go to
var/screenshots/route-order-*.png.
"""

import io
import json

import pytest
from django.urls import reverse

from providers_app.management.commands.demo_setup import Command as DemoSetup
from providers_app.management.demo import CURL_BODY
from providers_app.models import Provider, Route
from providers_app.services.client_keys import client_key_create

LIST = reverse("admin:providers_app_provider_changelist")
CURL_MODEL = json.loads(CURL_BODY)["model"]  # what the printed curl sends as `model`


@pytest.fixture
def demo(transactional_db, primary, secondary, tertiary):
    """The demo's providers and routes, on this test's upstreams; a client key."""
    seeding = DemoSetup(stdout=io.StringIO())
    seeding._providers(sim_port=18101)
    seeding._routes()
    for simulator in (primary, secondary, tertiary):
        Provider.objects.filter(name=simulator.name).update(base_url=simulator.base_url)
    return client_key_create(name="browser-demo").raw_key


def _api_chat(screen, key: str, model: str) -> str:
    """One chat as the printed curl sends it (its body, `model` as given): who answered."""
    body = {**json.loads(CURL_BODY), "model": model}
    response = screen.context.request.post(
        f"{screen.base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        data=json.dumps(body),
    )
    assert response.status == 200, response.text()
    return response.headers["x-fallback-provider"]


def _row(page, name: str):
    return page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )


def _names_in_list(page) -> list[str]:
    return page.locator("#result_list tbody th.field-name a").all_inner_texts()


def _success(page) -> str:
    return page.locator("ul.messagelist li.success").inner_text()


def test_the_providers_page_drag_and_keyboard_steer_the_default_route(screen_for, admin_user, demo):
    screen = screen_for(admin_user)
    page = screen.go(LIST)
    assert page.locator("#route-switcher option:checked").inner_text() == "chat (default)"
    assert _names_in_list(page) == ["primary", "secondary", "tertiary"]
    assert _api_chat(screen, demo, CURL_MODEL) == "primary"

    with page.expect_navigation():  # the list reloads once the new order is saved
        _row(page, "tertiary").locator(".drag.handle").drag_to(
            _row(page, "primary").locator(".drag.handle")
        )

    assert _success(page) == (
        "New order of route chat saved: 1. tertiary, 2. primary, 3. secondary."
    )
    assert _names_in_list(page) == ["tertiary", "primary", "secondary"]
    screen.shot("route-order-providers-page-after-drag")
    assert _api_chat(screen, demo, CURL_MODEL) == "tertiary"

    # The keyboard: secondary up twice, to the top.
    _row(page, "secondary").get_by_role("button", name="Move secondary up").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{LIST}?route=chat#move-*")
    page.keyboard.press("Enter")  # the focus came back to the same button
    page.locator("ul.messagelist li.success").filter(has_text="1. secondary").wait_for()

    assert _names_in_list(page) == ["secondary", "tertiary", "primary"]
    screen.shot("route-order-providers-page-after-keyboard")
    assert _api_chat(screen, demo, CURL_MODEL) == "secondary"
    assert _api_chat(screen, demo, "chat-fast") == "secondary"  # the other route: untouched


def test_a_non_default_route_s_page_and_its_providers_view_steer_that_route(
    screen_for, admin_user, demo
):
    fast = Route.objects.get(name="chat-fast")
    screen = screen_for(admin_user)
    assert _api_chat(screen, demo, "chat-fast") == "secondary"

    # The route's own page: drag tertiary above secondary, save.
    page = screen.go(reverse("admin:providers_app_route_change", args=[fast.pk]))
    rows = page.locator("fieldset.sortable tbody tr.has_original")
    assert rows.count() == 2
    rows.nth(1).locator("td.original p").drag_to(rows.nth(0).locator("td.original p"))
    page.get_by_role("button", name="Save and continue editing").click()
    assert "was changed successfully" in _success(page)
    members = page.locator("fieldset.sortable tbody tr.has_original select option:checked")
    assert members.all_inner_texts() == ["tertiary", "secondary"]
    screen.shot("route-order-route-page-after-drag")
    assert _api_chat(screen, demo, "chat-fast") == "tertiary"
    assert _api_chat(screen, demo, CURL_MODEL) == "primary"  # the default route: untouched

    # The Providers page, switched to chat-fast: the keyboard moves secondary back up.
    page = screen.go(LIST)
    with page.expect_navigation():
        page.locator("#route-switcher").select_option("chat-fast")
    assert _names_in_list(page)[:2] == ["tertiary", "secondary"]
    assert _row(page, "primary").locator(".position").inner_text() == "not in route"
    _row(page, "secondary").get_by_role("button", name="Move secondary up").press("Enter")
    page.locator("ul.messagelist li.success").filter(has_text="route chat-fast").wait_for()

    assert _success(page) == "New order of route chat-fast saved: 1. secondary, 2. tertiary."
    screen.shot("route-order-providers-page-chat-fast-after-keyboard")
    assert _api_chat(screen, demo, "chat-fast") == "secondary"
    assert _api_chat(screen, demo, CURL_MODEL) == "primary"
