"""Fixtures for the upstream simulator tests; they need no database and no Django."""

from collections.abc import Iterator

import pytest

from providers_app.simulator import UpstreamSimulator


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Shadow the project-wide cache fixture: these tests may run with Django disabled."""


@pytest.fixture
def sim() -> Iterator[UpstreamSimulator]:
    with UpstreamSimulator("alpha") as simulator:
        yield simulator
