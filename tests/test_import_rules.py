"""The layers point one way: each package imports only the layers below it.

    views, api, admin, dashboard, tasks, commands
        -> services -> engine -> selectors -> models / querysets / conf
                          \\-> adapters (no Django, nothing of the app)

A rule may name a module inside a layer (`dashboard.reads`): it applies on top
of its layer's rule.

Read from the source with `ast`, so a forbidden import fails here even when no
test happens to execute it (imports inside functions count too).
"""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "providers_app"

# layer -> layers (and third-party roots) it must never import
FORBIDDEN: dict[str, set[str]] = {
    "adapters": {"django", "*app"},  # "*app": every layer of the app but its own
    "simulator": {"django", "*app"},
    "models": {"engine", "services", "selectors", "adapters", "api", "admin", "dashboard"},
    "querysets": {"engine", "services", "selectors", "adapters", "api", "admin", "models"},
    "conf": {"engine", "services", "selectors", "adapters", "api", "admin", "models"},
    "selectors": {
        "engine", "services", "adapters", "api", "admin", "dashboard", "views", "ops_views",
        "tasks", "signals", "testing",
    },
    "engine": {
        "services", "api", "admin", "dashboard", "views", "ops_views", "tasks",
        "management", "signals", "testing",
    },
    "services": {
        "api", "admin", "dashboard", "views", "ops_views", "tasks", "management", "testing",
    },
    # The dashboard is a top-layer package; its reads are selectors in all but place.
    "dashboard": {"services", "adapters", "api", "admin", "tasks", "management", "testing"},
    "dashboard.reads": {"engine", "views", "ops_views", "signals"},
    "admin": {"adapters"},  # the admin never calls a provider: its actions call services
}  # fmt: skip
ROOTS_CHECKED = {"django"}


def _module_of(path: Path) -> tuple[str, str]:
    """(module, package) dotted names of a source file."""
    parts = path.relative_to(APP.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        module = ".".join(parts[:-1])
        return module, module
    module = ".".join(parts)
    return module, module.rsplit(".", 1)[0]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved."""
    _, package = _module_of(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base_name = ".".join(base)
            else:
                base_name = ""
            if node.module:
                found.add(".".join(filter(None, [base_name, node.module])))
            else:  # from . import a, b: the names are modules of the package
                found.update(f"{base_name}.{alias.name}" for alias in node.names)
    return found


def _layer(module: str) -> str | None:
    """The app layer of a module (`engine`, `models`, ...), or a third-party root."""
    parts = module.split(".")
    if parts[0] == "providers_app":
        return parts[1] if len(parts) > 1 else None
    return parts[0] if parts[0] in ROOTS_CHECKED else None


def _module_rules(module: str) -> set[str]:
    """The rules naming this module (or the package it is in) inside its layer."""
    parts = module.split(".")[1:]
    inner = (".".join(parts[:n]) for n in range(2, len(parts) + 1))
    return set().union(*(FORBIDDEN.get(name, set()) for name in inner))


def _sources():
    for path in sorted(APP.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def _violations() -> list[str]:
    problems = []
    for path in _sources():
        module, _ = _module_of(path)
        layer = _layer(module)
        rules = FORBIDDEN.get(layer or "", set()) | _module_rules(module)
        for imported in sorted(_imports(path)):
            target = _layer(imported)
            if target is None or target == layer:
                continue
            app_layer = imported.startswith("providers_app")
            if target in rules or ("*app" in rules and app_layer):
                problems.append(f"{module} imports {imported}")
    return problems


def test_layers_import_only_the_layers_below_them():
    assert _violations() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ..services import health\n", "providers_app.services"),
        ("from django.db import models\n", "django.db"),
        ("import providers_app.api.views\n", "providers_app.api.views"),
        ("def f():\n    from ..dashboard.charts import x\n", "providers_app.dashboard.charts"),
    ],
)
def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch, source, expected):
    """A selector importing any of these would be reported (the rule can fail)."""
    package = tmp_path / "providers_app" / "selectors"
    package.mkdir(parents=True)
    (package / "bad.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.APP", tmp_path / "providers_app")

    assert expected in _imports(package / "bad.py")
    if not expected.startswith("django"):  # selectors may use the ORM
        assert _violations() == [f"providers_app.selectors.bad imports {expected}"]
