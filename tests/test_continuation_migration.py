"""Migration `continuation`: `supports_prefill` becomes a continuation dialect with
each provider's behaviour kept, and on SQLite the rebuilt tables keep the
routing-version triggers."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from providers_app.engine.routing import routing_version
from providers_app.models import Provider, Route

APP = "providers_app"
BEFORE = [(APP, "0013_routes_from_priority")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _leaf():
    return MigrationExecutor(connection).loader.graph.leaf_nodes(APP)


@pytest.fixture
def migrated(transactional_db):
    old = _migrate(BEFORE)
    Provider_ = old.get_model(APP, "Provider")
    rows = [
        ("yes", "openai_compatible", True),
        ("no", "anthropic", False),
        ("empty", "gemini", None),
        ("openai-yes", "openai", True),
    ]
    for priority, (name, kind, prefill) in enumerate(rows, start=1):
        Provider_.objects.create(
            name=name, kind=kind, base_url="http://127.0.0.1:9/v1", model="m",
            priority=priority, supports_prefill=prefill,
        )  # fmt: skip
    old.get_model(APP, "Route").objects.create(name="chat")
    _migrate(_leaf())
    yield
    _migrate(_leaf())


def test_each_provider_keeps_its_behaviour(migrated):
    dialects = dict(Provider.objects.values_list("name", "continuation"))
    assert dialects == {
        "yes": "trailing_assistant",  # what the adapter sent for "yes"
        "no": "none",
        "empty": "",  # still the default for the kind and model
        "openai-yes": "",  # OpenAI refused it before any call; its default is none
    }
    assert Route.objects.get(name="chat").auto_hold_back is False


def test_writes_still_bump_the_routing_version(migrated):
    before = routing_version()
    Provider.objects.filter(name="yes").update(timeout_s=7)
    after_provider = routing_version()
    Route.objects.filter(name="chat").update(hold_back=True)
    assert before < after_provider < routing_version()
