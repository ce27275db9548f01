"""Migrations `routes` and `routes_from_priority` on a database that already holds
providers, breaker rows, events and a client key: the global order becomes the
default route `fallback`, and every existing client keeps its answers."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from providers_app.engine import fallback
from providers_app.models import FailoverEvent, Provider, Route
from providers_app.services.client_keys import client_key_digest
from providers_app.testing import process_state_reset

APP = "providers_app"
BEFORE = [(APP, "0011_continuation_event")]
AFTER = [(APP, "0013_routes_from_priority")]
HELLO = [{"role": "user", "content": "Say hello."}]
RAW_KEY = "fb-existing-client-key-0123456789abcdef"


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_database(transactional_db, primary, secondary):
    """Providers as the release before routes stored them: `secondary` answers first."""
    old = _migrate(BEFORE)
    Provider = old.get_model(APP, "Provider")
    BreakerState = old.get_model(APP, "BreakerState")
    rows = {}
    for name, simulator, priority, enabled in (
        ("primary", primary, 20, True),
        ("secondary", secondary, 10, True),
        ("spare", secondary, 30, False),
    ):
        provider = Provider.objects.create(
            name=name, kind="openai_compatible", base_url=simulator.base_url, model=f"m-{name}",
            priority=priority, enabled=enabled, max_attempts=1, timeout_s=5,
        )  # fmt: skip
        BreakerState.objects.create(provider=provider)
        rows[name] = provider.pk
    old.get_model(APP, "FailoverEvent").objects.create(
        kind="failover", provider_id=rows["secondary"], to_provider_id=rows["primary"],
        reason="server_error", request_id="before-routes",
    )  # fmt: skip
    old.get_model(APP, "ClientKey").objects.create(
        name="existing", prefix=RAW_KEY[:12], key_hash=client_key_digest(RAW_KEY)
    )
    yield rows
    _migrate(executor_leaf())
    process_state_reset()


def executor_leaf():
    return MigrationExecutor(connection).loader.graph.leaf_nodes(APP)


def test_the_global_order_becomes_the_default_route(old_database):
    _migrate(executor_leaf())
    process_state_reset()

    (route,) = Route.objects.all()
    assert (route.name, route.is_default) == ("fallback", True)
    members = route.members.order_by("order").values_list("provider__name", flat=True)
    assert list(members) == ["secondary", "primary", "spare"]  # disabled ones keep their place
    event = FailoverEvent.objects.get(request_id="before-routes")
    assert (event.reason, event.route) == ("server_error", "")


@pytest.mark.parametrize("model", ["fallback", "gpt-4o-mini", "secondary"])
def test_existing_clients_get_the_same_answers_after_the_migration(
    old_database, client, primary, secondary, model
):
    _migrate(executor_leaf())  # the newest: the code under test reads today's schema
    process_state_reset()
    headers = {"Authorization": f"Bearer {RAW_KEY}"}

    response = client.post(
        "/v1/chat/completions",
        data={"model": model, "messages": HELLO},
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code == 200, response.content
    assert response["X-Fallback-Provider"] == "secondary"  # the lowest priority, as before
    assert response["X-Fallback-Route"] == "fallback"
    assert fallback.complete(HELLO).provider == "secondary"
    secondary.set_fault("error", status=500)
    assert fallback.complete(HELLO).provider == "primary"  # the order's next, not "spare"


def test_the_migration_is_reversible_and_an_empty_database_gets_no_route(transactional_db):
    _migrate(BEFORE)
    _migrate(executor_leaf())
    assert not Route.objects.exists()  # no providers: every name follows the global order
    _migrate(executor_leaf())


@pytest.fixture
def installed_after_routes(transactional_db, primary, secondary):
    """An installation that migrated with no provider (so got no route) and then
    had providers added with priorities against the order they were added in."""
    state = _migrate(AFTER)
    Provider = state.get_model(APP, "Provider")
    BreakerState = state.get_model(APP, "BreakerState")
    for name, simulator, priority in (("primary", primary, 20), ("secondary", secondary, 10)):
        provider = Provider.objects.create(
            name=name, kind="openai_compatible", base_url=simulator.base_url, model=f"m-{name}",
            priority=priority, max_attempts=1, timeout_s=5,
        )  # fmt: skip
        BreakerState.objects.create(provider=provider)
    state.get_model(APP, "ClientKey").objects.create(
        name="existing", prefix=RAW_KEY[:12], key_hash=client_key_digest(RAW_KEY)
    )
    yield
    _migrate(executor_leaf())
    process_state_reset()


def test_one_order_keeps_the_answering_provider_of_an_installation_without_routes(
    installed_after_routes, client, secondary
):
    _migrate(executor_leaf())
    process_state_reset()

    (route,) = Route.objects.all()
    assert (route.name, route.is_default) == ("fallback", True)
    assert list(route.members.values_list("provider__name", flat=True)) == ["secondary", "primary"]
    response = client.post(
        "/v1/chat/completions",
        data={"model": "anything", "messages": HELLO},
        content_type="application/json",
        headers={"Authorization": f"Bearer {RAW_KEY}"},
    )
    assert response.status_code == 200, response.content
    assert response["X-Fallback-Provider"] == "secondary"  # priority 10 answered before, too
    secondary.set_fault("error", status=500)
    assert fallback.complete(HELLO).provider == "primary"


def test_whoever_could_reorder_providers_may_reorder_routes(installed_after_routes):
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    provider_type = ContentType.objects.get_for_model(Provider)
    old, _ = Permission.objects.get_or_create(
        content_type=provider_type, codename="reorder_provider",
        defaults={"name": "Can reorder providers"},
    )  # fmt: skip
    operators = Group.objects.create(name="operators")
    operators.permissions.add(old)

    _migrate(executor_leaf())

    assert list(operators.permissions.values_list("codename", flat=True)) == ["reorder_route"]
    assert not Permission.objects.filter(codename="reorder_provider").exists()
