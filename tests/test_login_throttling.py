"""Sign-in: django-axes throttles /admin/login/ and /chat/login/, and passwords
must pass AUTH_PASSWORD_VALIDATORS. Production configuration, no test overrides."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

PASSWORD = "a-long-enough-passphrase-42"
LOGIN_URLS = {"admin": "/admin/login/", "chat": "/chat/login/"}


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)


def _login(client: Client, url: str, password: str, username: str = "ops"):
    return client.post(url, {"username": username, "password": password, "next": url})


@pytest.mark.parametrize("surface", sorted(LOGIN_URLS))
def test_repeated_wrong_passwords_lock_the_account_out_even_for_the_right_one(staff, surface):
    client = Client()
    url = LOGIN_URLS[surface]
    limit = settings.AXES_FAILURE_LIMIT

    statuses = [_login(client, url, f"wrong-{n}").status_code for n in range(limit - 1)]
    assert statuses == [200] * (limit - 1)  # the form again, with an error
    assert _login(client, url, "wrong-last").status_code == 429

    locked = _login(client, url, PASSWORD)

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_per_username_and_address_so_others_can_still_sign_in(staff):
    get_user_model().objects.create_user("other", password=PASSWORD, is_staff=True)
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(client, LOGIN_URLS["admin"], f"wrong-{n}")

    response = _login(client, LOGIN_URLS["admin"], PASSWORD, username="other")

    assert response.status_code == 302
    assert client.session["_auth_user_id"]


def test_a_successful_login_below_the_limit_resets_the_count(staff):
    client = Client()
    url = LOGIN_URLS["chat"]
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, url, f"wrong-{n}")
    assert _login(client, url, PASSWORD).status_code == 302
    client.logout()

    assert _login(client, url, "wrong-again").status_code == 200  # counting from zero


@pytest.mark.parametrize("password", ["short", "password1234", "123456789012", "ops-ops-ops"])
def test_weak_passwords_are_refused(staff, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=staff)


def test_a_long_passphrase_is_accepted(staff):
    validate_password(PASSWORD, user=staff)


def _login_from(client, forwarded_for: str, password: str, remote: str = "127.0.0.1"):
    return client.post(
        LOGIN_URLS["admin"],
        {"username": "ops", "password": password, "next": LOGIN_URLS["admin"]},
        HTTP_X_FORWARDED_FOR=forwarded_for,
        REMOTE_ADDR=remote,
    )


def test_behind_a_trusted_proxy_a_stranger_cannot_lock_the_admin_out(staff, settings):
    """Finding 7: every client reaches the server from the proxy's address."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    for n in range(settings.AXES_FAILURE_LIMIT + 2):
        _login_from(Client(), "203.0.113.9", f"wrong-{n}")
    assert _login_from(Client(), "203.0.113.9", PASSWORD).status_code == 429  # the stranger

    admin = Client()
    assert _login_from(admin, "198.51.100.7", PASSWORD).status_code == 302  # the real admin
    assert admin.session["_auth_user_id"]


def test_a_client_appending_to_x_forwarded_for_is_judged_by_the_proxys_entry(staff, settings):
    """The right-most untrusted entry is the one the proxy wrote; the client's own
    entries on its left cannot move it to a fresh address."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login_from(Client(), f"10.9.9.{n}, 203.0.113.9", f"wrong-{n}")
    assert _login_from(Client(), "10.1.1.1, 203.0.113.9", PASSWORD).status_code == 429


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(staff, settings):
    settings.TRUSTED_PROXIES = []
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login_from(Client(), f"192.0.2.{n}", f"wrong-{n}", remote="198.51.100.50")
    locked = _login_from(Client(), "192.0.2.200", PASSWORD, remote="198.51.100.50")
    assert locked.status_code == 429
