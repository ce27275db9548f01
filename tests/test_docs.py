"""The documentation keeps up with the code: docs/configuration.md has a row for every
setting and every provider, route and client-key field, its failure table agrees
with the policy, its example import file imports, and the README starts with the
two commands."""

import json
import re
from pathlib import Path

import pytest
from django.apps import apps

from providers_app.adapters.errors import POLICY, Category
from providers_app.conf import DEFAULTS
from providers_app.models import ClientKey, Provider

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
EXAMPLE_IMPORT = ROOT / "docs" / "examples" / "providers.json"


def _sections(text: str) -> dict[str, str]:
    """Level-2 heading -> its body (up to the next level-2 heading)."""
    parts = re.split(r"^## +(.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def _first_cells(text: str) -> set[str]:
    """The code-formatted names in the first cell of each table row."""
    names = set()
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([^`]+)`", first))
    return names


def _rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells
    return rows


def _env_example_names() -> list[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return [line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line)]


def _documented_fields(model) -> list[str]:
    """Every field an admin or an import file sets or sees, forward relations included."""
    return [
        field.name
        for field in model._meta.get_fields()
        if not field.auto_created and (field.concrete or field.many_to_many)
    ]


def _section(title_start: str) -> str:
    sections = _sections(CONFIGURATION.read_text())
    matches = [body for title, body in sections.items() if title.startswith(title_start)]
    assert matches, f"docs/configuration.md has no section starting {title_start!r}"
    return matches[0]


def test_every_fallback_setting_has_a_row():
    documented = _first_cells(_section("Settings"))
    missing = [f"FALLBACK_{name}" for name in DEFAULTS if f"FALLBACK_{name}" not in documented]
    assert missing == []


def test_every_variable_in_env_example_has_a_row():
    documented = _first_cells(CONFIGURATION.read_text())
    missing = [name for name in _env_example_names() if name not in documented]
    assert missing == []


@pytest.mark.parametrize(
    ("model_name", "section"),
    [
        ("Provider", "Provider fields"),
        ("ClientKey", "Client key fields"),
        ("Route", "Route fields"),
    ],
)
def test_every_model_field_has_a_row(model_name, section):
    try:
        model = apps.get_model("providers_app", model_name)
    except LookupError:
        pytest.skip(f"no {model_name} model yet")
    documented = _first_cells(_section(section))
    missing = [name for name in _documented_fields(model) if name not in documented]
    assert missing == []


def test_the_checks_see_a_missing_row(tmp_path, monkeypatch):
    """A setting or field without a row is reported (the rule can fail)."""
    text = CONFIGURATION.read_text()
    trimmed = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith("| `FALLBACK_DEADLINE_S`") and not line.startswith("| `prefix`")
    )
    copy = tmp_path / "configuration.md"
    copy.write_text(trimmed)
    monkeypatch.setattr(f"{__name__}.CONFIGURATION", copy)
    assert "FALLBACK_DEADLINE_S" not in _first_cells(_section("Settings"))
    assert "prefix" not in _first_cells(_section("Client key fields"))
    assert "prefix" in _documented_fields(ClientKey)
    assert "FALLBACK_DEADLINE_S" in _env_example_names()


def test_the_failure_table_agrees_with_the_policy():
    """One row per category; its retry, failover and breaker cells say what POLICY does."""
    rows = _rows(_section("How each failure is treated"))
    breaker_words = {
        "failure": "failure",
        "cooldown": "cooldown",
        "open_long": "open",
        "ignore": "ignored",
    }
    for category in Category:
        assert category.value in rows, f"no row for {category.value}"
        _, _, retry, failover, breaker = rows[category.value][:5]
        policy = POLICY[category]
        conditional_retry = policy.retry_only_if_hint_fits
        assert retry.startswith(
            "only" if conditional_retry else "yes" if policy.retry_same else "no"
        )
        conditional_failover = policy.failover_only_to_larger_window
        expected = "only" if conditional_failover else "yes" if policy.failover else "no"
        assert failover.startswith(expected), category
        assert breaker_words[policy.breaker] in breaker, category


@pytest.mark.django_db
def test_the_example_import_file_imports_one_provider_of_each_real_kind():
    from providers_app.services.providers import provider_import

    data = json.loads(EXAMPLE_IMPORT.read_text())
    summary = provider_import(data=data)

    kinds = set(Provider.objects.values_list("kind", flat=True))
    assert kinds == set(Provider.Kind.values) - {Provider.Kind.SIMULATED}
    assert len(summary.created) == len(data["providers"])
    assert "docs/examples/providers.json" in CONFIGURATION.read_text()


def test_the_readme_shows_the_two_commands_first_and_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"^## (.+)$", readme, flags=re.MULTILINE)[0] == "Two commands"
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    assert [block.strip() for block in blocks[:2]] == ["make run", "make test"]
    for page in ("configuration", "architecture", "operations"):
        assert f"docs/{page}.md" in readme


# -- the defaults the docs print are the code's ------------------------------------


def _same_default(printed: str, default) -> bool:
    """Whether a table cell or an .env.example value states `default`: numbers by
    value (`30` is 30.0), yes/no as true/false, lists comma-separated, nothing as
    "empty" or blank."""
    text = printed.split(" (")[0].strip().strip("`").strip()  # "empty (any host)"
    if isinstance(default, bool):
        return text.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(text.replace(",", "")) == float(default)
        except ValueError:
            return False
    if isinstance(default, list):
        default = ",".join(default)
    return text == default or (default == "" and text.lower() in {"", "empty"})


def _env_example_values() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line))


def test_every_setting_default_in_the_docs_and_env_example_is_the_code_default():
    rows = _rows(_section("Settings"))
    env_values = _env_example_values()
    wrong = []
    for name, default in DEFAULTS.items():
        setting = f"FALLBACK_{name}"
        if setting in rows and not _same_default(rows[setting][1], default):
            wrong.append(f"docs/configuration.md {setting}: {rows[setting][1]!r} != {default!r}")
        if setting in env_values and not _same_default(env_values[setting], default):
            wrong.append(f".env.example {setting}={env_values[setting]} != {default!r}")
    assert wrong == []


@pytest.mark.parametrize(
    ("model_name", "section"),
    [
        ("Provider", "Provider fields"),
        ("ClientKey", "Client key fields"),
        ("Route", "Route fields"),
    ],
)
def test_every_field_default_in_the_docs_is_the_model_default(model_name, section):
    from django.db.models import NOT_PROVIDED

    model = apps.get_model("providers_app", model_name)
    rows = _rows(_section(section))
    wrong = []
    for field in model._meta.concrete_fields:
        default = field.default
        plain = isinstance(default, bool | int | float | str) and default is not NOT_PROVIDED
        if not plain or field.name not in rows or len(rows[field.name]) < 2:
            continue
        cell = rows[field.name][1]
        if not _same_default(cell, default):
            wrong.append(f"{model_name}.{field.name}: docs say {cell!r}, the model {default!r}")
    assert wrong == []


def test_the_default_check_sees_a_wrong_value():
    assert _same_default("30", 10.0) is False
    assert _same_default("10", 10.0) is True
    assert _same_default("`*_API_KEY,*_KEY,*_TOKEN`", ["*_API_KEY", "*_KEY", "*_TOKEN"])
    assert _same_default("empty", "")
    assert not _same_default("empty", "x")
    assert _same_default("false", False)
    assert not _same_default("true", False)
