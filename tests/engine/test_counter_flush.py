"""Buffered counters reach the database on a timer in serving processes (issue 15)."""

import time

import pytest
from django.db.models import Sum

from providers_app.engine import counters, fallback
from providers_app.models import CallBucket

from .conftest import HELLO

FLUSH_S = 0.2


@pytest.fixture
def background_flush(settings):
    settings.FALLBACK_COUNTER_FLUSH_S = FLUSH_S
    counters.flush_in_background()
    yield
    counters.stop_background_flush()


def _stored_successes() -> int:
    return CallBucket.objects.aggregate(n=Sum("successes"))["n"] or 0


@pytest.mark.django_db(transaction=True)
def test_three_answers_then_silence_are_counted_without_another_request(
    background_flush, providers
):
    """Three answers, then no request at all: within a few flush intervals the
    database holds all three successes (before, they waited for the next request)."""
    providers()
    for _ in range(3):
        assert fallback.complete(HELLO).provider == "primary"
    assert _stored_successes() < 3, "answers are buffered, not written per request"

    give_up = time.monotonic() + 30 * FLUSH_S
    while _stored_successes() < 3 and time.monotonic() < give_up:
        time.sleep(FLUSH_S / 4)
    assert _stored_successes() == 3


@pytest.mark.django_db(transaction=True)
def test_stopping_the_timer_flushes_what_is_left(background_flush, providers):
    first, _ = providers()
    counters.count(first.pk, successes=5)
    counters.stop_background_flush()
    assert _stored_successes() == 5
