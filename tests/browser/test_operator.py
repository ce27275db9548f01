"""The admin in Chromium, as an operator: reorder by dragging and by keyboard,
drain a provider until a time, reset it; each change is what the next chat
answer follows, and /api/status says so."""

import re

from django.urls import reverse

from providers_app.models import FailoverEvent
from providers_app.services.routes import REORDER_REASON

LIST = reverse("admin:providers_app_provider_changelist")


def _row(page, name: str):
    return page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )


def _names_in_list(page) -> list[str]:
    return page.locator("#result_list tbody th.field-name a").all_inner_texts()


def _chat_answer(screen) -> dict[str, str]:
    """Ask on the chat page (in a tab of the same session): who answered, and the footer."""
    page = screen.open_page()
    page.goto("/chat/")
    page.get_by_label("Your message").fill("Who is answering?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant:not(.pending)").last
    answer.wait_for()
    result = {
        "provider": answer.locator(".provider").inner_text(),
        "meta": answer.locator(".meta").inner_text(),
    }
    page.close()
    return result


def _status(screen) -> dict[str, dict]:
    body = screen.context.request.get(f"{screen.base}/api/status").json()
    return {entry["name"]: entry for entry in body["providers"]}


def test_dragging_the_third_provider_to_the_top_routes_the_next_answer_to_it(
    screen_for, admin_user, three_providers
):
    screen = screen_for(admin_user)
    page = screen.go(LIST)
    assert _names_in_list(page) == ["primary", "secondary", "tertiary"]
    assert _chat_answer(screen)["provider"] == "primary"

    with page.expect_navigation():  # the list reloads once the new order is saved
        _row(page, "tertiary").locator(".drag.handle").drag_to(
            _row(page, "primary").locator(".drag.handle")
        )

    confirmation = page.locator("ul.messagelist li.success")
    # No route yet: the first reorder creates the default route in the new order.
    assert confirmation.inner_text() == (
        "New order of route fallback saved: 1. tertiary, 2. primary, 3. secondary."
    )
    assert _names_in_list(page) == ["tertiary", "primary", "secondary"]
    assert _row(page, "tertiary").locator(".position .number").inner_text() == "1"
    screen.shot("provider-list-after-drag")
    event = FailoverEvent.objects.get(reason=REORDER_REASON)
    assert event.actor == admin_user
    assert _chat_answer(screen)["provider"] == "tertiary"


def test_the_keyboard_moves_a_provider_up_and_keeps_the_focus(
    screen_for, admin_user, three_providers
):
    screen = screen_for(admin_user)
    page = screen.go(LIST)
    _row(page, "tertiary").get_by_role("button", name="Move tertiary up").focus()

    page.keyboard.press("Enter")
    page.wait_for_url(f"**{LIST}*#move-*")
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Move tertiary up"  # press Enter again to keep going
    page.keyboard.press("Enter")
    page.wait_for_load_state()

    page.locator("ul.messagelist li.success").filter(has_text="1. tertiary").wait_for()
    assert _names_in_list(page) == ["tertiary", "primary", "secondary"]
    assert FailoverEvent.objects.filter(reason=REORDER_REASON, actor=admin_user).count() == 2
    screen.shot("provider-list-keyboard-move")


def test_force_open_with_expiry_drains_then_reset_brings_it_back(
    screen_for, admin_user, three_providers
):
    screen = screen_for(admin_user)
    page = screen.go(reverse("admin:providers_app_provider_change", args=[three_providers[0].pk]))
    buttons = page.locator(".operator-buttons [data-action]")
    assert "Force breaker closed" not in buttons.all_inner_texts()  # closed already
    assert "Enable provider" not in buttons.all_inner_texts()  # enabled already

    page.get_by_role("link", name="Force open until…").click()
    page.get_by_role("button", name="Force open").click()  # default expiry: in an hour

    success = page.locator("ul.messagelist li.success")
    assert "breaker forced open until" in success.inner_text()
    summary = page.locator("dl.breaker-summary")
    assert "Forced open" in summary.inner_text()
    # The form's default is an hour ahead, to the minute: "in 58 min" or "in 59 min";
    # after 23:00 that is tomorrow, and the date is shown too.
    moment = r"(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d"
    assert re.search(rf"open until\s+{moment} \(in 5[89] min\)", summary.inner_text())
    screen.shot("provider-page-forced-open")
    status = _status(screen)["primary"]["breaker"]
    assert status["state"] == "forced_open"
    assert status["open_until"] is not None
    answer = _chat_answer(screen)
    assert answer["provider"] == "secondary"
    assert "passed by primary (switched off for maintenance)" in answer["meta"]

    page.locator(".operator-buttons").get_by_role("button", name="Reset breaker").click()

    assert "breaker reset to closed" in page.locator("ul.messagelist li.success").inner_text()
    assert _status(screen)["primary"]["breaker"]["state"] == "closed"
    assert _chat_answer(screen)["provider"] == "primary"
    screen.go(LIST)
    screen.shot("provider-list-1366-after-reset")
