"""Fixtures of the API tests: see tests/api/fixtures.py."""

from tests.api.fixtures import *  # noqa: F403
