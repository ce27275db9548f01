"""`manage.py providers export|import`: configuration as JSON, all or nothing."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers_app.models import Provider


def _export(capsys) -> dict:
    capsys.readouterr()  # drop what earlier commands printed
    call_command("providers", "export")
    return json.loads(capsys.readouterr().out)


def _import(tmp_path, data) -> None:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(data))
    call_command("providers", "import", str(path))


def test_export_then_import_round_trips(make_provider, capsys, tmp_path):
    make_provider(
        name="azure",
        kind="azure_openai",
        base_url="https://x.openai.azure.com",
        api_key_env="AZURE_OPENAI_API_KEY",
        extra={"params": {"api-version": "2024-10-21"}},
        failure_rate_threshold=40,
    )
    make_provider(name="local", kind="ollama", base_url="http://127.0.0.1:11434")
    exported = _export(capsys)
    Provider.objects.all().delete()

    _import(tmp_path, exported)

    assert _export(capsys) == exported
    assert [p.name for p in Provider.objects.order_by("id")] == ["azure", "local"]


def test_import_updates_by_name_and_reorders_only_through_a_route(make_provider, capsys, tmp_path):
    make_provider(name="a")
    make_provider(name="b")
    data = _export(capsys)
    assert "priority" not in data["providers"][0]  # a provider has no order of its own
    data["providers"][0]["model"] = "changed"
    data["providers"].append(
        {"name": "c", "kind": "ollama", "base_url": "http://127.0.0.1:11434", "model": "llama3.2"}
    )
    data["routes"] = [{"name": "chat", "is_default": True, "providers": ["b", "c", "a"]}]

    _import(tmp_path, data)

    assert Provider.objects.get(name="a").model == "changed"
    assert _export(capsys)["routes"][0]["providers"] == ["b", "c", "a"]
    assert fallback_route_names() == ["b", "c", "a"]


def fallback_route_names() -> list[str]:
    from providers_app.engine.routing import routing_table

    return [entry.name for entry in routing_table().resolve(None).entries]


def test_import_with_one_bad_entry_changes_nothing(make_provider, capsys, tmp_path):
    make_provider(name="keep", model="original")
    before = _export(capsys)
    bad = {
        "providers": [
            {"name": "keep", "model": "should-not-apply"},
            {
                "name": "new",
                "kind": "openai",
                "base_url": "ftp://nope",
                "model": "m",
                "api_key_env": "OPENAI_API_KEY",
            },
        ]
    }
    with pytest.raises(CommandError, match="nothing was changed"):
        _import(tmp_path, bad)

    assert "entry 2 (new): base_url:" in capsys.readouterr().err
    assert _export(capsys) == before


def test_import_reports_each_problem_with_name_and_field(db, capsys, tmp_path):
    data = [
        {
            "name": "x",
            "kind": "openai",
            "base_url": "https://a",
            "model": "m",
            "api_key_env": "1BAD",
        },
        {"name": "y", "kind": "ollama", "model": "m", "colour": "red"},
        {
            "name": "z",
            "kind": "ollama",
            "base_url": "http://ollama:11434",
            "model": "m",
        },
        {
            "name": "w",
            "kind": "ollama",
            "base_url": "http://ollama:11434",
            "model": "m",
            "priority": 4,  # a file from before routes: the order is a route's now
        },
        "not an object",
    ]
    with pytest.raises(CommandError):
        _import(tmp_path, data)
    err = capsys.readouterr().err
    assert "entry 1 (x): api_key_env:" in err
    assert "entry 2 (y): colour: Unknown field." in err
    assert "entry 4 (w): priority: Providers have no order of their own" in err
    assert "entry 5 (no name): entry: Expected a JSON object." in err
    assert not Provider.objects.exists()


def test_import_of_unreadable_or_invalid_json_fails_clearly(db, tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("providers", "import", str(tmp_path / "missing.json"))
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("providers", "import", str(path))


def test_export_never_contains_a_secret_value(make_provider, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-SECRET-1234567890")
    make_provider(kind="openai", api_key_env="OPENAI_API_KEY", base_url="https://api.openai.com/v1")
    out = json.dumps(_export(capsys))
    assert "sk-proj-SECRET-1234567890" not in out
    assert "OPENAI_API_KEY" in out
