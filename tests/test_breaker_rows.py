"""Every provider has its breaker row, so no reader needs a "no row means closed"
fallback; migration 0005 gives older providers theirs and renames the never-trip values."""

import importlib

import pytest
from django.apps import apps

from providers_app.models import BreakerState, FailoverEvent, Provider
from providers_app.testing import breaker_state_set

migration = importlib.import_module("providers_app.migrations.0005_breaker_rows_and_never_trip")


def test_a_new_provider_comes_with_a_closed_breaker(make_provider):
    provider = make_provider()

    assert BreakerState.objects.get(pk=provider.pk).state == BreakerState.State.CLOSED


def test_the_migration_gives_providers_without_a_breaker_row_theirs(make_provider):
    kept = make_provider()
    breaker_state_set(kept, state=BreakerState.State.OPEN)
    (bare,) = Provider.objects.bulk_create(  # bulk_create skips the signal, as raw imports did
        [Provider(name="bare", kind="simulated", base_url="http://127.0.0.1:9", model="m")]
    )
    assert not BreakerState.objects.filter(pk=bare.pk).exists()

    migration.forwards(apps, None)

    assert BreakerState.objects.get(pk=bare.pk).state == BreakerState.State.CLOSED
    assert BreakerState.objects.get(pk=kept.pk).state == BreakerState.State.OPEN  # untouched


def test_the_migration_renames_the_never_trip_state_and_its_manual_reason(make_provider):
    provider = make_provider()
    breaker_state_set(provider, state=BreakerState.State.NEVER_TRIP)
    FailoverEvent.objects.create(kind="manual", provider=provider, reason="never_trip")
    FailoverEvent.objects.create(kind="failover", provider=provider, reason="never_trip")

    migration.backwards(apps, None)  # the values as releases before 0005 wrote them

    assert BreakerState.objects.get(pk=provider.pk).state == "disabled"
    reasons = dict(FailoverEvent.objects.values_list("kind", "reason"))
    assert reasons == {"manual": "disable", "failover": "never_trip"}  # manual events only

    migration.forwards(apps, None)

    assert BreakerState.objects.get(pk=provider.pk).state == BreakerState.State.NEVER_TRIP
    reasons = dict(FailoverEvent.objects.values_list("kind", "reason"))
    assert reasons == {"manual": FailoverEvent.ManualReason.NEVER_TRIP, "failover": "never_trip"}


def test_breaker_state_set_refuses_unknown_states_and_missing_rows(make_provider):
    provider = make_provider()
    with pytest.raises(ValueError, match="unknown breaker state"):
        breaker_state_set(provider, state="disabled")
    BreakerState.objects.filter(pk=provider.pk).delete()
    with pytest.raises(LookupError):
        breaker_state_set(provider, state=BreakerState.State.OPEN)
