"""Buffered call counters: nothing written on the happy path until a flush."""

from unittest import mock

from django.db import OperationalError

from providers_app.engine import counters
from providers_app.models import CallBucket


def test_successes_are_buffered_until_flushed_at_exit(make_provider):
    provider = make_provider()
    counters.count(provider.pk, successes=1, first_attempts=1)
    assert not CallBucket.objects.exists()

    counters._flush_at_exit()  # what a short-lived command does as it ends

    bucket = CallBucket.objects.get(provider=provider)
    assert (bucket.successes, bucket.first_attempts) == (1, 1)


def test_a_failed_flush_keeps_the_counts_and_never_raises(make_provider):
    provider = make_provider()
    counters.count(provider.pk, successes=2)
    with mock.patch.object(counters, "_add_to_bucket", side_effect=OperationalError("down")):
        counters._flush_at_exit()
    assert not CallBucket.objects.exists()

    counters.flush_pending()

    assert CallBucket.objects.get(provider=provider).successes == 2
