"""`manage.py demo_setup`: first run creates and prints, later runs reuse and say so,
and the raw key lives in a 0600 file, never in the database."""

import io
import json
import stat
from unittest import mock

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command

from providers_app.management.demo import banner, credentials_load
from providers_app.models import ClientKey, FailoverEvent, Provider
from providers_app.services.client_keys import client_key_authenticate, client_key_revoke
from providers_app.simulator.traffic import TOOL_CALL_EXAMPLE

pytestmark = pytest.mark.django_db


def _setup(path, *args) -> str:
    out = io.StringIO()
    call_command("demo_setup", "--credentials", str(path), *args, stdout=out)
    return out.getvalue()


def test_first_run_creates_and_prints_the_admin_the_key_and_the_providers(tmp_path):
    path = tmp_path / "var" / "credentials.json"
    printed = _setup(path)

    stored = credentials_load(path)
    assert f"password {stored.password}" in printed
    assert stored.client_key in printed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(stored.password)
    assert client_key_authenticate(raw_key=stored.client_key).name == "demo"
    assert list(Provider.objects.order_by("id").values_list("name", "base_url")) == [
        ("primary", "http://127.0.0.1:18101/v1"),
        ("secondary", "http://127.0.0.1:18102/v1"),
        ("tertiary", "http://127.0.0.1:18103/v1"),
    ]


def test_the_raw_key_and_password_never_reach_the_database(tmp_path):
    path = tmp_path / "credentials.json"
    _setup(path)
    stored = credentials_load(path)
    key = ClientKey.objects.get()
    assert stored.client_key not in json.dumps(list(ClientKey.objects.values()), default=str)
    assert key.key_hash != stored.client_key
    assert stored.password not in get_user_model().objects.get().password
    assert not FailoverEvent.objects.filter(detail__contains=stored.client_key).exists()


def test_a_second_run_reuses_everything_and_says_so(tmp_path):
    path = tmp_path / "credentials.json"
    _setup(path)
    first = credentials_load(path)

    printed = _setup(path)

    assert credentials_load(path) == first
    assert "Reusing the admin 'admin'" in printed
    assert f"Reusing the client key {first.client_key[:12]}" in printed
    assert "Reusing the 3 existing providers" in printed
    assert ClientKey.objects.count() == 1
    assert Provider.objects.count() == 3


def test_other_ports_move_the_demo_upstreams_only(tmp_path, make_provider):
    path = tmp_path / "credentials.json"
    _setup(path)
    own = make_provider(name="mine", base_url="http://10.0.0.5:8000/v1")

    printed = _setup(path, "--sim-port", "18201")

    assert Provider.objects.get(name="tertiary").base_url == "http://127.0.0.1:18203/v1"
    assert Provider.objects.get(pk=own.pk).base_url == "http://10.0.0.5:8000/v1"
    assert "3 demo upstream(s) moved to port 18201+" in printed


def test_a_revoked_demo_key_is_replaced_and_that_is_said(tmp_path):
    path = tmp_path / "credentials.json"
    _setup(path)
    old = credentials_load(path).client_key
    client_key_revoke(client_key=ClientKey.objects.get())

    printed = _setup(path)

    new = credentials_load(path).client_key
    assert new != old
    assert "The stored demo key is revoked: making a new one." in printed
    assert new in printed
    assert client_key_authenticate(raw_key=new).name.startswith("demo-")


def test_a_lost_credentials_file_gives_a_new_password_and_key(tmp_path):
    path = tmp_path / "credentials.json"
    _setup(path)
    path.unlink()

    printed = _setup(path)

    stored = credentials_load(path)
    assert "Reset the password of the admin 'admin'" in printed
    assert get_user_model().objects.get().check_password(stored.password)
    assert client_key_authenticate(raw_key=stored.client_key)


def test_a_password_the_admin_changed_is_kept_and_not_shown(tmp_path):
    path = tmp_path / "credentials.json"
    _setup(path)
    admin = get_user_model().objects.get()
    admin.set_password("chosen-by-the-admin")
    admin.save()

    printed = _setup(path)

    assert "changed its password since the first run" in printed
    assert get_user_model().objects.get().check_password("chosen-by-the-admin")
    assert credentials_load(path).password is None
    assert "(changed since; not shown)" in "\n".join(
        banner(web="127.0.0.1:8000", credentials=credentials_load(path))
    )


def test_the_tool_calling_example_is_seeded_next_to_the_credentials(tmp_path):
    path = tmp_path / "credentials.json"
    _setup(path)
    example = json.loads((tmp_path / "tool-call.json").read_text())
    assert example == TOOL_CALL_EXAMPLE
    text = "\n".join(
        banner(
            web="127.0.0.1:8000",
            credentials=credentials_load(path),
            tool_call_file=tmp_path / "tool-call.json",
        )
    )
    assert f"-d @{tmp_path / 'tool-call.json'}" in text


def test_the_banner_has_every_address_and_the_key_in_the_curl_and_the_sdk(tmp_path):
    path = tmp_path / "credentials.json"
    _setup(path)
    stored = credentials_load(path)
    text = "\n".join(banner(web="127.0.0.1:8123", credentials=stored))
    for address in (
        "/chat/",
        "/admin/",
        "/admin/providers_app/dashboard/",
        "/api/status",
        "/metrics",
    ):
        assert f"http://127.0.0.1:8123{address}" in text
    assert f"-H 'Authorization: Bearer {stored.client_key}'" in text
    assert f'api_key="{stored.client_key}"' in text


def test_routes_are_seeded_only_when_the_route_model_exists(tmp_path):
    path = tmp_path / "credentials.json"
    printed = _setup(path)
    try:
        route_model = apps.get_model("providers_app", "Route")
    except LookupError:
        assert "Seeded the routes" not in printed
        return
    assert set(route_model.objects.values_list("name", flat=True)) >= {"chat", "chat-fast"}
    assert route_model.objects.filter(is_default=True).count() == 1


class _FakeRoutes:
    """Stands in for the Route model (issue 14) until it lands: name, is_default."""

    def __init__(self, existing=()):
        self.rows = [mock.Mock(name=n, is_default=d) for n, d in existing]
        for row, (name, _) in zip(self.rows, existing, strict=True):
            row.name = name
        self.objects = self

    def filter(self, **lookup):
        rows = [r for r in self.rows if all(getattr(r, k) == v for k, v in lookup.items())]
        return mock.Mock(first=lambda: rows[0] if rows else None)

    def create(self, *, name, is_default):
        row = mock.Mock(is_default=is_default)
        row.name = name
        self.rows.append(row)
        return row


class _FakeMembership:
    def __init__(self, counts=None):
        self.added, self.counts = {}, counts or {}

    def count(self, route):
        return self.counts.get(route.name, 0)

    def add(self, route, providers):
        self.added[route.name] = [p.name for p in providers]


@pytest.mark.parametrize(
    ("existing", "counts", "expected"),
    [
        # No routes yet: the default chain and the fast one.
        (
            (),
            {},
            {"chat": ["primary", "secondary", "tertiary"], "chat-fast": ["secondary", "tertiary"]},
        ),
        # The migration made an empty default route: it gets the demo chain.
        (
            (("default", True),),
            {},
            {
                "default": ["primary", "secondary", "tertiary"],
                "chat-fast": ["secondary", "tertiary"],
            },
        ),
        # A default route with members and chat-fast exist: nothing is touched.
        ((("default", True), ("chat-fast", False)), {"default": 3}, {}),
    ],
)
def test_demo_routes_are_seeded_around_what_exists(
    tmp_path, monkeypatch, existing, counts, expected
):
    from providers_app.management.commands import demo_setup

    routes, membership = _FakeRoutes(existing), _FakeMembership(counts)
    monkeypatch.setattr(demo_setup, "_route_model", lambda: routes)
    monkeypatch.setattr(demo_setup, "_membership", lambda model: membership)

    printed = _setup(tmp_path / "credentials.json")

    assert membership.added == expected
    assert ("Seeded the routes" in printed) == bool(expected)
    defaults = [name for name, is_default in existing if is_default] or ["chat"]
    assert [r.name for r in routes.rows if r.is_default] == defaults
