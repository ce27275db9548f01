"""The chat page in Chromium, as a chat user: streamed answers that name their
provider, a failover shown as such, what is happening while the first word is
slow, the newest answer never behind the composer, and a way out (in plain
words, at 375, 1366 and 1920 px) when every provider fails."""

import pytest

ANSWER = ".msg.assistant:not(.pending)"


def _send(page, text: str):
    page.get_by_label("Your message").fill(text)
    page.keyboard.press("Enter")


def _last_answer(page):
    answer = page.locator(ANSWER).last
    answer.wait_for()
    return answer


@pytest.fixture
def chat(screen_for, chat_user, three_providers):
    screen = screen_for(chat_user)
    screen.go("/chat/")
    return screen


def test_an_answer_streams_in_and_names_its_provider(chat, primary):
    page = chat.page
    primary.set_fault("ok", text="one two three four five six", chunk_delay_s=0.08)
    _send(page, "Say hello.")

    # Text shows while the answer is still arriving: it streams.
    page.locator(".msg.assistant.pending .text").filter(has_text="one").wait_for()
    # "no failover" is said of a finished answer only, not while it streams
    assert page.locator(".msg.assistant.pending .badge.ok").count() == 0
    answer = _last_answer(page)
    assert answer.locator(".text").inner_text() == "one two three four five six"
    assert answer.locator(".provider").inner_text() == "primary"
    assert answer.locator(".badge").inner_text() == "no failover"
    chat.shot("chat-answer")


def test_a_failover_shows_who_failed_and_who_answered(chat, primary):
    page = chat.page
    primary.set_fault("error", status=500)
    _send(page, "Are you there?")

    answer = _last_answer(page)
    assert answer.locator(".provider").inner_text() == "secondary"
    assert answer.locator(".text").inner_text() == "Hello from secondary."
    assert answer.locator(".badge").inner_text() == "switched to secondary"
    assert "from primary (had an error)" in answer.locator(".meta").inner_text()
    chat.shot("chat-failover")


def test_an_answer_continued_after_a_cut_names_who_finished_it(
    chat, primary, secondary, three_providers
):
    from providers_app.models import Provider

    Provider.objects.filter(name="secondary").update(continuation="trailing_assistant")
    page = chat.page
    text = "one two three four five six"
    primary.set_fault("truncate_stream", chunks=3, text=text)
    secondary.set_fault("ok", text=text)
    _send(page, "Tell me.")

    answer = _last_answer(page)
    assert answer.locator(".text").inner_text() == text  # one answer, seamless
    assert answer.locator(".provider").inner_text() == "primary"  # who started it
    assert "finished by secondary after primary was cut" in answer.locator(".meta").inner_text()
    assert not chat.layout_problems()


def test_the_newest_answer_is_above_the_composer_once_the_page_is_full(
    screen_for, chat_user, three_providers, primary
):
    screen = screen_for(chat_user, height=600)
    page = screen.go("/chat/")
    primary.set_fault("ok", text="A long answer. " * 30)
    for number in range(1, 6):
        _send(page, f"Question {number}")
        page.locator(ANSWER).nth(number - 1).wait_for()

    composer = page.locator("#composer").bounding_box()
    newest = page.locator(ANSWER).last.bounding_box()
    assert page.evaluate("document.documentElement.scrollHeight") > 600 * 2  # it scrolled
    assert newest["y"] + newest["height"] <= composer["y"], (newest, composer)
    assert newest["y"] + newest["height"] > 0  # on screen, not scrolled past
    assert not screen.layout_problems()
    screen.shot("chat-full-conversation")


@pytest.mark.parametrize("width", [375, 1366, 1920])
def test_when_every_provider_fails_the_bubble_explains_and_offers_to_try_again(
    screen_for, chat_user, three_providers, primary, secondary, tertiary, width
):
    chat = screen_for(chat_user, width=width)
    page = chat.go("/chat/")
    chat.expect_failed_request("/chat/send")  # the 503 this test is about
    for upstream in (primary, secondary, tertiary):
        upstream.set_fault("error", status=500)
    _send(page, "Anyone?")

    failed = page.locator(".msg.assistant.error").last
    failed.wait_for()
    assert failed.locator(".alert").inner_text() == "No provider could answer just now."
    reasons = failed.locator("ul.reasons li").all_inner_texts()
    assert "primary had an error." in reasons  # one line each, no breaker words
    assert not any(word in failed.inner_text() for word in ("open", "cooldown", "breaker"))
    assert "Traceback" not in failed.inner_text()
    assert chat.layout_problems() == []
    chat.shot(f"chat-all-failed-{width}")

    for upstream in (primary, secondary, tertiary):
        upstream.reset()
    failed.get_by_role("button", name="Try again").click()

    answer = _last_answer(page)
    assert answer.locator(".text").inner_text().startswith("Hello from ")
    assert page.locator(".msg.error").count() == 0  # the failed turn made way
    assert page.locator(".msg.user").count() == 1


def test_the_page_has_a_heading_a_labelled_composer_and_a_focus_ring(chat):
    page = chat.page
    assert page.get_by_role("heading", level=1).inner_text() == "Chat"
    textarea = page.get_by_label("Your message")
    textarea.focus()
    ring = page.evaluate("getComputedStyle(document.getElementById('composer')).boxShadow")
    assert ring != "none"


def test_a_slow_first_token_says_who_it_waits_for_then_who_answered(chat, primary, secondary):
    """primary takes 2.5 s to its first word: the bubble counts "waiting for
    primary… N s"; when the secondary answers instead, it says "switched to"."""
    from providers_app.models import Provider

    page = chat.page
    primary.set_fault("slow_first_token", delay_s=2.5, text="slow but sure")
    _send(page, "Take your time.")
    waiting = page.locator(".msg.assistant.pending .waiting")
    waiting.filter(has_text="1 s").wait_for()
    assert waiting.inner_text().startswith("waiting for primary\u2026")
    chat.shot("chat-waiting-for-primary")
    answer = _last_answer(page)
    assert answer.locator(".waiting").count() == 0
    assert answer.locator(".text").inner_text() == "slow but sure"

    # The primary times out and the secondary is slow too: while still waiting,
    # the bubble says it switched; then the answer's footer says so.
    Provider.objects.filter(name="primary").update(timeout_s=0.5)
    primary.set_fault("slow_first_token", delay_s=3, text="too late")
    secondary.set_fault("slow_first_token", delay_s=2.5, text="here I am")
    _send(page, "Again?")
    waiting = page.locator(".msg.assistant.pending .waiting")
    waiting.filter(has_text="switched to secondary").wait_for()
    chat.shot("chat-waiting-switched")
    answer = page.locator(ANSWER).nth(1)
    answer.wait_for()
    assert answer.locator(".badge").inner_text() == "switched to secondary"
    assert "primary (took too long)" in answer.locator(".meta").inner_text()
    chat.shot("chat-switched-to-secondary")
