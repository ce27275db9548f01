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
