"""Browser tests: Playwright for Python driving Debian's Chromium against a live server.

Every test here is marked `browser`. When Chromium or Playwright is missing the
tests are skipped with a reason that `pytest -rs` prints in the summary (`make
test` passes -rs). Playwright's own browser download is never used: it cannot
reach its CDN from the build machines, so the system Chromium is launched
instead (`FALLBACK_BROWSER`, default /usr/bin/chromium).

Each page a test opens collects JavaScript errors and failed requests; a test
that saw any fails at teardown. Screenshots go to var/screenshots/ (CI keeps
that folder as an artefact).
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.browser import layout

CHROMIUM = os.environ.get("FALLBACK_BROWSER", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
DESKTOP = {"width": 1366, "height": 900}


def _missing_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need Playwright: .venv/bin/pip install -r requirements-dev.txt"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        return (
            f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium, "
            "or set FALLBACK_BROWSER); .ci/run installs it"
        )
    return None


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    reason = _missing_reason()
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def chromium():
    # Playwright's sync API runs an event loop in this thread; the ORM calls the
    # tests make around it are still synchronous and single-threaded.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def _tertiary():
    """A third upstream, so a reorder can move it to the top."""
    from providers_app.simulator.server import UpstreamSimulator

    with UpstreamSimulator("tertiary") as tertiary:
        yield tertiary


@pytest.fixture
def tertiary(_tertiary):
    _tertiary.reset()
    yield _tertiary
    _tertiary.reset()


@pytest.fixture(autouse=True)
def _fresh_engine_state(settings):
    from providers_app.testing import process_state_reset

    settings.FALLBACK_BACKOFF_BASE_S = 0.001
    settings.FALLBACK_BACKOFF_MAX_S = 0.001
    process_state_reset()
    yield
    process_state_reset()


@pytest.fixture
def three_providers(transactional_db, primary, secondary, tertiary):
    """primary, secondary, tertiary in that order, one attempt each."""
    from tests.factories import provider_create

    simulators = (primary, secondary, tertiary)
    return [
        provider_create(
            name=sim.name,
            base_url=sim.base_url,
            model=f"gpt-{sim.name}",
            max_attempts=1,
        )
        for sim in simulators
    ]


@pytest.fixture
def admin_user(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("ada", "ada@example.com", "pw-admin-1")


@pytest.fixture
def chat_user(transactional_db, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("carl", password="pw-chat-1")
    user.user_permissions.add(Permission.objects.get(codename="use_chat"))
    return user


class Screen:
    """Opens pages as one signed-in user and remembers what went wrong in them."""

    def __init__(self, browser, live_server, user, viewport):
        from django.conf import settings
        from django.test import Client

        self.base = live_server.url
        self.context = browser.new_context(viewport=viewport, base_url=self.base)
        if user is not None:  # None: a visitor who has not signed in
            client = Client()
            client.force_login(user)
            self.context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME,
                  "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                  "url": self.base}]
            )  # fmt: skip
        self.errors: list[str] = []
        self.expected_failures: set[str] = set()
        self.page = self.open_page()

    def expect_failed_request(self, path: str) -> None:
        """A test that provokes an error answer (a 503 on purpose) says so."""
        self.expected_failures.add(path)

    def _on_console(self, message) -> None:
        # Chromium logs every 4xx/5xx answer as a console error; _on_response
        # judges those, so a deliberate 503 is not a JavaScript error.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _on_response(self, response) -> None:
        expected = any(response.url.endswith(path) for path in self.expected_failures)
        if response.status >= 400 and not expected:
            self.errors.append(f"{response.status} {response.url}")

    def open_page(self):
        page = self.context.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", self._on_response)
        page.set_default_timeout(10_000)
        return page

    def go(self, path: str):
        self.page.goto(path)
        return self.page

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=True)
        return target

    def layout_problems(self) -> list[str]:
        return layout.problems(self.page)

    def close(self):
        self.context.close()


@pytest.fixture
def screen_for(chromium, live_server):
    """screen_for(user, width=1366): a browser tab signed in as `user` (None: signed
    out); a test fails if any of its tabs saw a JavaScript error or a failed request."""
    screens: list[Screen] = []

    def make(user, *, width: int = DESKTOP["width"], height: int = DESKTOP["height"]):
        screen = Screen(chromium, live_server, user, {"width": width, "height": height})
        screens.append(screen)
        return screen

    yield make
    errors = [error for screen in screens for error in screen.errors]
    for screen in screens:
        screen.close()
    assert not errors, f"JavaScript errors or failed requests: {errors}"
