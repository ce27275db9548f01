"""The operator's screens beyond the dashboard, in Chromium at 375, 1366 and
1920 px: the provider page starts with what matters, the force-open form reads
24-hour time, the route page's position labels are readable, a new key can be
copied with one click, and badge text has a 4.5:1 contrast."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from providers_app.models import BreakerState, FailoverEvent

WIDTHS = (375, 1366, 1920)

# WCAG contrast of an element's text colour on its (first non-transparent) background.
_CONTRAST = """(el) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let node = el, bg = null;
  while (node && !bg) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0)) bg = c;
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const fg = rgb(getComputedStyle(el).color);
  if (fg.length < 3) return 21;  // a colour syntax this check does not read
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


@pytest.mark.parametrize("width", WIDTHS)
def test_the_provider_page_starts_with_state_last_error_and_recent_events(
    screen_for, admin_user, three_providers, width
):
    primary = three_providers[0]
    BreakerState.objects.filter(pk=primary.pk).update(
        state="open", opened_at=timezone.now(), last_error="server_error HTTP 502: bad gateway",
        cooldown_until=timezone.now() - timedelta(minutes=4),  # expired: not shown
    )  # fmt: skip
    FailoverEvent.objects.create(kind="breaker_opened", provider=primary, reason="failure_rate")
    screen = screen_for(admin_user, width=width)
    page = screen.go(reverse("admin:providers_app_provider_change", args=[primary.pk]))

    status = page.locator(".provider-status")
    assert status.locator('[data-field="state"]').inner_text().endswith("Open")
    assert "bad gateway" in status.locator('[data-field="last_error"]').inner_text()
    assert status.locator('[data-field="cooldown_until"]').count() == 0
    assert status.locator("table.recent-events a").count() == 1
    # at the top: above the form, within the first screen at desktop widths
    assert (
        status.bounding_box()["y"]
        < page.locator("#provider_form fieldset").first.bounding_box()["y"]
    )
    if width >= 1366:
        assert status.bounding_box()["y"] < 500
    assert screen.layout_problems() == []
    screen.shot(f"provider-page-{width}")


def test_the_force_open_form_reads_24_hour_time(screen_for, admin_user, three_providers):
    primary = three_providers[0]
    screen = screen_for(admin_user)
    page = screen.go(reverse("admin:providers_app_provider_force_open", args=[primary.pk]))
    field = page.locator("#id_until")
    value = field.input_value()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", value), value  # 2026-12-07 14:45
    assert "24-hour time" in page.locator(".help").first.inner_text()
    later = (timezone.localtime() + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    field.fill(later)
    with page.expect_navigation():
        page.get_by_role("button", name="Force open").click()
    breaker = BreakerState.objects.get(pk=primary.pk)
    assert breaker.state == "forced_open"
    assert timezone.localtime(breaker.open_until).strftime("%Y-%m-%d %H:%M") == later
    screen.shot("provider-force-open-24h")


def test_the_route_page_position_labels_are_readable(screen_for, admin_user, three_providers):
    from providers_app.services.routes import route_create

    route = route_create(name="chat", providers=three_providers)
    screen = screen_for(admin_user)
    page = screen.go(reverse("admin:providers_app_route_change", args=[route.pk]))
    label = page.locator("td.original p").first
    assert label.inner_text().strip()  # the drag handle's label (h21: "drag to reorder")
    size = float(
        page.evaluate("(el) => getComputedStyle(el).fontSize", label.element_handle())[:-2]
    )
    assert size >= 11
    clipped = page.evaluate("(el) => el.scrollHeight > el.clientHeight + 1", label.element_handle())
    assert not clipped
    screen.shot("route-page-positions")


def test_a_new_key_is_copied_with_one_click(screen_for, admin_user, transactional_db):
    screen = screen_for(admin_user)
    screen.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = screen.go(reverse("admin:providers_app_clientkey_add"))
    page.locator("#id_name").fill("bot")
    with page.expect_navigation():
        page.locator('input[type="submit"][name="_save"]').click()
    key = page.locator("#client-key").inner_text()
    assert key.startswith("fbk_")
    page.get_by_role("button", name="Copy key").click()
    page.locator("#copy-status").filter(has_text="Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == key
    screen.shot("client-key-copy")


def test_the_failover_badge_has_enough_contrast(screen_for, chat_user, three_providers, primary):
    primary.set_fault("error", status=500)
    screen = screen_for(chat_user)
    page = screen.go("/chat/")
    page.get_by_label("Your message").fill("hello")
    page.keyboard.press("Enter")
    badge = page.locator(".msg.assistant:not(.pending) .badge.failover")
    badge.wait_for()
    assert page.evaluate(_CONTRAST, badge.element_handle()) >= 4.5
