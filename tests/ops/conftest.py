"""Fixtures for the operator surfaces: the task suite's upstreams and clock, and
signed-in admin users."""

import pytest

from tests.services.conftest import (  # noqa: F401  (fixtures, re-exported for pytest)
    _fresh_process_state,
    _upstreams,
    alpha,
    beta,
    on_upstream,
    upstreams,
)


@pytest.fixture
def operator_user(django_user_model):
    return django_user_model.objects.create_user(
        "operator", password="pw", is_staff=True, is_superuser=True
    )


@pytest.fixture
def operator_client(client, operator_user):
    client.force_login(operator_user)
    return client
