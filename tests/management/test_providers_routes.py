"""`providers export|import` carry routes and their order, validated all or nothing."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers_app.models import Provider, Route
from providers_app.services.routes import route_create


def _export(capsys) -> dict:
    capsys.readouterr()
    call_command("providers", "export")
    return json.loads(capsys.readouterr().out)


def _import(tmp_path, data) -> None:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(data))
    call_command("providers", "import", str(path))


def _members(name: str) -> list[str]:
    route = Route.objects.get(name=name)
    return list(route.members.order_by("order").values_list("provider__name", flat=True))


@pytest.fixture
def three(make_provider):
    a, b, c = (make_provider(name=n) for n, p in (("a", 1), ("b", 2), ("c", 3)))
    route_create(name="chat", providers=[c, a], is_default=True, deadline_s=20)
    route_create(
        name="docs",
        providers=[b],
        failover_on_content_filter=True,
        hold_back=True,
        auto_hold_back=True,
    )
    return a, b, c


def test_routes_round_trip_with_their_order_and_settings(three, capsys, tmp_path):
    exported = _export(capsys)
    assert exported["routes"] == [
        {"name": "chat", "is_default": True, "deadline_s": 20.0,
         "failover_on_content_filter": None, "hold_back": False,
         "auto_hold_back": False, "providers": ["c", "a"]},
        {"name": "docs", "is_default": False, "deadline_s": None,
         "failover_on_content_filter": True, "hold_back": True,
         "auto_hold_back": True, "providers": ["b"]},
    ]  # fmt: skip
    Route.objects.all().delete()
    Provider.objects.all().delete()

    _import(tmp_path, exported)

    assert _export(capsys) == exported


def test_import_reorders_a_route_and_moves_the_default(three, capsys, tmp_path):
    _import(
        tmp_path,
        {
            "providers": [],
            "routes": [
                {"name": "chat", "is_default": False, "providers": ["a", "b", "c"]},
                {"name": "docs", "is_default": True},
            ],
        },
    )

    assert _members("chat") == ["a", "b", "c"]
    assert _members("docs") == ["b"]  # no "providers": a known route keeps its members
    assert Route.objects.get(is_default=True).name == "docs"


@pytest.mark.parametrize(
    ("route", "field", "words"),
    [
        ({"name": "x", "providers": ["nobody"]}, "routes.providers", "No provider named"),
        ({"name": "x", "providers": ["a", "a"]}, "routes.providers", "appears twice"),
        ({"name": "x", "providers": "a"}, "routes.providers", "list of names"),
        ({"name": "x", "colour": "red"}, "routes.colour", "Unknown field"),
        ({"name": "bad name!"}, "routes.name", "Letters, digits"),
        ({"name": "x", "is_default": True}, "routes.is_default", "Only one default"),
        ({"name": "x", "deadline_s": 0}, "routes.deadline_s", "greater than or equal"),
    ],
)
def test_a_bad_route_changes_nothing_and_names_the_field(
    three, capsys, tmp_path, route, field, words
):
    before = _export(capsys)
    data = {"providers": [{"name": "d", "kind": "ollama", "base_url": "http://x:1", "model": "m"}]}
    data["routes"] = [{"name": "chat", "providers": ["a"]}, route]

    with pytest.raises(CommandError, match="nothing was changed"):
        _import(tmp_path, data)

    problems = capsys.readouterr().err
    assert field in problems, problems
    assert words in problems, problems
    assert _export(capsys) == before
