"""Past one machine: two web servers share PostgreSQL through PgBouncer in
transaction pooling (issue 25, item 5).

Each server is a gunicorn of its own (its own environment, processes and
connection pool, as two machines would have) whose DATABASE_URL points at
PgBouncer with DJANGO_DB_PGBOUNCER=true. LISTEN/NOTIFY does not pass
transaction pooling, so routing follows the version row: a reorder made
through one server's admin is followed by the very next chat on the other; a
breaker opened by one server's chats is skipped by the other's; the counters
of both servers' chats add up in the shared database.

PgBouncer is started by `.ci/run` (FALLBACK_PGBOUNCER_URL names it, e.g.
postgres://postgres@127.0.0.1:6432/); without it these tests are skipped with
the reason.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from providers_app.models import BreakerState, CallBucket
from providers_app.services.client_keys import client_key_create
from providers_app.simulator.server import UpstreamSimulator
from tests.factories import provider_create

from .procs import database_url
from .test_overload import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.pgbouncer]

ROOT = Path(__file__).resolve().parents[2]
PGBOUNCER_URL = os.environ.get("FALLBACK_PGBOUNCER_URL", "")
PASSWORD = "pgbouncer-test-Password-1"
FAILURE_THRESHOLD = 5  # FALLBACK_BREAKER_FAILURE_THRESHOLD's default


@pytest.fixture(scope="module")
def through_pgbouncer(django_db_setup, django_db_blocker):
    """DATABASE_URL of the test database, reached through PgBouncer."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL to point at PostgreSQL")
    if not PGBOUNCER_URL:
        pytest.skip("no PgBouncer: set FALLBACK_PGBOUNCER_URL (.ci/run starts one)")
    direct = urlsplit(database_url(connection.settings_dict))
    bouncer = urlsplit(PGBOUNCER_URL)
    yield urlunsplit(direct._replace(netloc=bouncer.netloc))
    with django_db_blocker.unblock():
        _release_pgbouncer_connections()


class Server:
    """One 'machine': a gunicorn with its own environment, through PgBouncer."""

    def __init__(self, name: str, database: str, tmp_path: Path) -> None:
        self.name, self.port = name, _free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.local",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "pgbouncer-test-" + "x" * 50,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_LOG_LEVEL": "WARNING",
            "DATABASE_URL": database,
            "DJANGO_DB_PGBOUNCER": "true",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "HEALTH_BIND": "off",
            "WEB_CONCURRENCY": "1",
            "WEB_THREADS": "4",
            "FALLBACK_COUNTER_FLUSH_S": "0.5",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{name}"),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "fallbackproject/gunicorn.conf.py",
             "--access-logfile", "/dev/null", "fallbackproject.wsgi"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.cookies: dict[str, str] = {}

    def wait_ready(self) -> None:
        give_up = time.monotonic() + 60
        while True:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > give_up:
                raise AssertionError(f"{self.name} did not start: {self.process.stderr.read()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def request(self, method, path, body=None, headers=None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = dict(headers or {})
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            for value in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    self.cookies[name] = morsel.value
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def chat(self, key: str) -> tuple[int, str | None]:
        body = json.dumps({"messages": [{"role": "user", "content": "Say hello."}]})
        status, headers, _ = self.request(
            "POST", "/v1/chat/completions", body,
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )  # fmt: skip
        return status, headers.get("X-Fallback-Provider")

    def admin_post(self, path: str) -> int:
        """A signed-in admin's form post (the login first, once)."""
        if "sessionid" not in self.cookies:
            self.request("GET", "/admin/login/")
            form = {"username": "ops", "password": PASSWORD, "next": "/admin/"}
            status = self._post_form("/admin/login/", form)
            assert "sessionid" in self.cookies, f"admin login failed ({status})"
        page = self.request("GET", "/admin/providers_app/provider/")[2].decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        return self._post_form(path, {"csrfmiddlewaretoken": token})

    def _post_form(self, path: str, form: dict) -> int:
        if "csrfmiddlewaretoken" not in form:
            page = self.request("GET", path)[2].decode()
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
            form = {**form, "csrfmiddlewaretoken": token}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", path, urlencode(form), headers)[0]


@pytest.fixture
def upstreams():
    with UpstreamSimulator("first-up") as first, UpstreamSimulator("second-up") as second:
        yield first, second


@pytest.fixture
def machines(through_pgbouncer, transactional_db, upstreams, tmp_path):
    """Two servers, two providers (first, second) and a client key, committed."""
    first_up, second_up = upstreams
    first = provider_create(name="first", base_url=first_up.base_url, max_attempts=1)
    second = provider_create(name="second", base_url=second_up.base_url)
    # Hashed for the servers' settings (the test settings hash with MD5 only).
    password = PBKDF2PasswordHasher().encode(PASSWORD, "pgbouncertest", iterations=1000)
    get_user_model().objects.create_superuser("ops", "ops@example.com", password=None)
    get_user_model().objects.filter(username="ops").update(password=password)
    key = client_key_create(name="two-machines").raw_key
    servers = [Server(name, through_pgbouncer, tmp_path) for name in ("one", "two")]
    try:
        for server in servers:
            server.wait_ready()
        yield servers, key, first, second
    finally:
        for server in servers:
            server.stop()
        _release_pgbouncer_connections()


def _release_pgbouncer_connections() -> None:
    """PgBouncer keeps server connections to the test database open: end them,
    so that pytest-django can drop the database at the end of the session."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_a_reorder_on_one_server_is_followed_by_the_next_chat_on_the_other(machines):
    (one, two), key, first, _ = machines
    assert two.chat(key) == (200, "first")  # server two now holds a snapshot

    status = one.admin_post(f"/admin/providers_app/provider/{first.pk}/move/down/")

    assert status == 302
    assert two.chat(key) == (200, "second")
    assert one.chat(key) == (200, "second")


def test_breaker_state_and_counters_are_shared_by_both_servers(machines, upstreams):
    (one, two), key, first, second = machines
    first_up, _ = upstreams
    assert two.chat(key) == (200, "first")
    first_up.set_fault("error", status=500)

    answered = [one.chat(key) for _ in range(FAILURE_THRESHOLD)]

    assert answered == [(200, "second")] * FAILURE_THRESHOLD
    assert BreakerState.objects.get(pk=first.pk).state == BreakerState.State.OPEN
    calls_to_first = first_up.request_count
    # Server two skips the breaker server one opened, without calling it.
    assert two.chat(key) == (200, "second")
    assert first_up.request_count == calls_to_first

    # Both servers' successes reach the shared counters (flushed every 0.5 s).
    expected = FAILURE_THRESHOLD + 1
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        rows = CallBucket.objects.filter(provider_id=second.pk)
        if sum(row.successes for row in rows) >= expected:
            break
        time.sleep(0.2)
    assert sum(row.successes for row in CallBucket.objects.filter(provider_id=second.pk)) == (
        expected
    )


def test_a_listener_behind_pgbouncer_notices_and_leaves_routing_to_the_version_row(
    through_pgbouncer, monkeypatch
):
    """Without DJANGO_DB_PGBOUNCER, the LISTEN thread would hear nothing through
    transaction pooling and routing would go stale: it notices the pooler and
    stops, so epoch() stays None and each request reads the version row."""
    from providers_app.engine import routing

    target = urlsplit(through_pgbouncer)
    params = {
        "host": target.hostname, "port": target.port, "user": target.username,
        "dbname": target.path.lstrip("/"),
    }  # fmt: skip
    monkeypatch.setattr(routing, "_listener_params", lambda: params)
    listener = routing.ChangeListener()
    try:
        assert listener.epoch() is None  # starts the thread
        give_up = time.monotonic() + 20
        while not listener.pooler_detected and time.monotonic() < give_up:
            time.sleep(0.05)
        assert listener.pooler_detected
        assert listener.epoch() is None
    finally:
        listener.stop()
