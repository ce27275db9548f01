"""The browser tests' own guards catch what they exist for: a JavaScript error,
a failed request, overlapping elements, sideways overflow."""

from tests.browser import layout

OVERLAPPING = """
<h1 style="margin:0">A title that is long enough</h1>
<button style="position:relative; top:-30px">A button on top of it</button>
"""
TOO_WIDE = '<div style="width:3000px">wide</div>'
CLIPPED = '<div style="width:200px; overflow-x:auto"><table style="width:900px"><tr><th>x</th></tr></table></div>'  # noqa: E501
TIDY = "<h1>Title</h1><p><button>One</button> <button>Two</button></p>"


def test_layout_check_finds_overlap_overflow_and_clipping(screen_for, chat_user):
    page = screen_for(chat_user).page
    page.set_content(OVERLAPPING)
    assert any("overlaps" in problem for problem in _problems(page))
    page.set_content(TOO_WIDE)
    assert any("page overflows sideways" in problem for problem in _problems(page))
    page.set_content(CLIPPED)
    assert any("cuts its content" in problem for problem in _problems(page))
    page.set_content(TIDY)
    assert _problems(page) == []


def test_a_javascript_error_or_a_failed_request_is_recorded(screen_for, chat_user):
    screen = screen_for(chat_user)
    screen.go("/chat/")
    with screen.page.expect_event("pageerror"):
        screen.page.evaluate("setTimeout(() => { throw new Error('boom'); })")
    with screen.page.expect_response("**/no-such-page/"):
        screen.page.evaluate("fetch('/no-such-page/')")

    recorded = list(screen.errors)
    screen.errors.clear()  # seen; the fixture would otherwise fail this test

    assert any("boom" in error for error in recorded)
    assert any(error.startswith("404 ") for error in recorded)


def _problems(page):
    return layout.problems(page)
