"""Shared fixtures."""

import pytest
from django.core.cache import cache

from tests.factories import provider_create


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_provider(db):
    return provider_create
