"""The outbound policy: key variables that can only name keys, base URLs without
credentials or query strings, no credentials in `extra`, an optional host list.

The rule lives in providers_app/outbound.py; these tests go through the model,
the admin form, `providers import`, the system check and the adapter pool.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.urls import reverse

from providers_app.adapters.errors import ProviderAuthError
from providers_app.engine.adapter_pool import adapter_for_entry
from providers_app.models import Provider
from providers_app.outbound import key_env_allowed, key_env_refusal
from providers_app.selectors import route_entry_for
from tests.factories import provider_admin_form, provider_create

SERVER_SECRETS = ["DJANGO_SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"]
MORE_SECRETS = [
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "CACHE_URL",
    "SENTRY_DSN",
    "FALLBACK_METRICS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GITHUB_TOKEN",
    "SSH_PRIVATE_KEY",
    "EMAIL_HOST_PASSWORD",
    "MY_SECRET_TOKEN",
]
KEY_NAMES = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_KEY", "HF_TOKEN"]
ROOT = Path(__file__).resolve().parent.parent


def _provider(**fields) -> Provider:
    values = {
        "name": "p",
        "kind": "openai",
        "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
    }
    values.update(fields)
    return Provider(**values)


def _errors(provider: Provider) -> dict[str, list[str]]:
    try:
        provider.full_clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


# -- key variables -----------------------------------------------------------------


@pytest.mark.parametrize("name", SERVER_SECRETS + MORE_SECRETS)
def test_server_secrets_are_refused_as_key_variables_naming_the_rule(db, name):
    errors = _errors(_provider(api_key_env=name))
    assert "deny pattern" in " ".join(errors["api_key_env"])
    assert not key_env_allowed(name)


@pytest.mark.parametrize("name", KEY_NAMES)
def test_key_names_are_allowed(db, name):
    # The name rule only: where each may be sent is tests/test_key_bindings.py.
    assert key_env_refusal(name) is None


def test_a_name_matching_no_allow_pattern_is_refused_unless_listed(db):
    assert "no allowed key-variable pattern" in " ".join(
        _errors(_provider(api_key_env="HOME"))["api_key_env"]
    )
    with override_settings(
        FALLBACK_KEY_ENV_ALLOW_NAMES=["VENDOR_CREDS"], FALLBACK_KEY_HOSTS=["*=api.openai.com"]
    ):
        assert _errors(_provider(api_key_env="VENDOR_CREDS")) == {}


def test_the_deny_list_wins_over_an_explicit_allow(db):
    with override_settings(FALLBACK_KEY_ENV_ALLOW_NAMES=["DJANGO_SECRET_KEY"]):
        assert "api_key_env" in _errors(_provider(api_key_env="DJANGO_SECRET_KEY"))
    with override_settings(FALLBACK_KEY_ENV_DENY=["OPENAI_*"]):
        assert "api_key_env" in _errors(_provider(api_key_env="OPENAI_API_KEY"))


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


@pytest.mark.parametrize("name", SERVER_SECRETS)
def test_the_admin_form_refuses_a_server_secret_as_key_variable(admin_client, name):
    response = admin_client.post(
        reverse("admin:providers_app_provider_add"), provider_admin_form(api_key_env=name)
    )
    assert response.status_code == 200
    assert "deny pattern" in response.content.decode()
    assert not Provider.objects.exists()


@pytest.mark.parametrize("name", SERVER_SECRETS)
def test_providers_import_refuses_a_server_secret_and_writes_nothing(db, tmp_path, capsys, name):
    path = tmp_path / "providers.json"
    good = {"name": "good", "kind": "ollama", "base_url": "http://127.0.0.1:11434", "model": "m"}
    bad = {"name": "bad", "kind": "openai", "base_url": "https://api.openai.com/v1",
           "model": "m", "api_key_env": name}  # fmt: skip
    path.write_text(json.dumps({"providers": [good, bad]}))

    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("providers", "import", str(path))

    err = capsys.readouterr().err
    assert f"entry 2 (bad): api_key_env: {name} matches the deny pattern" in err
    assert not Provider.objects.exists()


def test_providers_import_exits_non_zero_for_each_server_secret(tmp_path):
    """The real command line: exit status 1, each entry named with its rule, nothing written."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    openai = {"kind": "openai", "base_url": "https://api.openai.com/v1", "model": "m"}
    entries = [
        {**openai, "name": f"p{i}", "api_key_env": name} for i, name in enumerate(SERVER_SECRETS)
    ]
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"providers": entries}))

    result = subprocess.run(
        [*manage, "providers", "import", str(path)], env=env, capture_output=True, text=True,
        cwd=ROOT,
    )  # fmt: skip

    assert result.returncode == 1
    for name in SERVER_SECRETS:
        assert f"{name} matches the deny pattern" in result.stderr
    exported = subprocess.run(
        [*manage, "providers", "export"], env=env, capture_output=True, text=True, check=True,
        cwd=ROOT,
    )  # fmt: skip
    assert json.loads(exported.stdout)["providers"] == []


# -- base URL and extra --------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("https://user:pass@api.openai.com/v1", "credentials"),
        ("https://token@api.openai.com/v1", "credentials"),
        ("https://api.openai.com/v1?key=abc", "query string"),
        ("https://api.openai.com/v1#frag", "fragment"),
    ],
)
def test_base_urls_with_credentials_or_query_strings_are_refused(db, base_url, message):
    assert message in " ".join(_errors(_provider(base_url=base_url))["base_url"])


@pytest.mark.parametrize(
    "extra",
    [
        {"params": {"key": "AIza-something"}},
        {"params": {"access_token": "t"}},
        {"headers": {"Ocp-Apim-Subscription-Key": "k"}},
        {"headers": {"X-Goog-Api-Key": "k"}},
        {"headers": {"Authorization": "Bearer sk"}},
        {"headers": {"Cookie": "session=1"}},
    ],
)
def test_credential_names_in_extra_are_refused(db, extra):
    assert "carries a credential" in " ".join(_errors(_provider(extra=extra))["extra"])


def test_ordinary_extra_is_accepted(db):
    extra = {"headers": {"anthropic-beta": "x", "OpenAI-Project": "p"},
             "params": {"api-version": "2024-10-21"}}  # fmt: skip
    assert _errors(_provider(extra=extra)) == {}


def test_upstream_host_list_is_off_by_default_and_limits_hosts_when_set(db):
    local = _provider(kind="ollama", api_key_env="", base_url="http://ollama:11434")
    assert _errors(local) == {}
    with override_settings(FALLBACK_UPSTREAM_HOSTS=["api.openai.com", "*.openai.azure.com"]):
        assert "FALLBACK_UPSTREAM_HOSTS" in " ".join(_errors(local)["base_url"])
        assert _errors(_provider()) == {}
        assert _errors(_provider(kind="azure_openai", base_url="https://x.openai.azure.com",
                                 api_key_env="AZURE_OPENAI_API_KEY",
                                 extra={"params": {"api-version": "1"}})) == {}  # fmt: skip


# -- rows stored before the policy: the check names them, the engine never calls them


def _stored(**fields) -> Provider:
    """A row saved without validation, as before the policy existed."""
    provider = provider_create()
    Provider.objects.filter(pk=provider.pk).update(**fields)
    return Provider.objects.get(pk=provider.pk)


def test_system_check_flags_stored_rows_that_break_the_policy(db):
    _stored(name="leaky", kind="openai", api_key_env="DJANGO_SECRET_KEY")
    _stored(name="creds", base_url="https://u:p@example.com/v1")
    _stored(name="params", extra={"params": {"key": "x"}})

    messages = [m for m in run_checks() if m.id == "providers_app.W010"]

    assert sorted(m.obj.name for m in messages) == ["creds", "leaky", "params"]
    assert "deny pattern" in next(m.msg for m in messages if m.obj.name == "leaky")


def test_unset_check_does_not_reveal_whether_a_denied_variable_is_set(db):
    _stored(name="leaky", kind="openai", api_key_env="DJANGO_SECRET_KEY")
    assert "providers_app.W001" not in [m.id for m in run_checks()]


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "openai", "api_key_env": "DJANGO_SECRET_KEY"},
        {"base_url": "http://user:pw@127.0.0.1:9/v1"},
        {"extra": {"headers": {"X-Api-Token": "t"}}},
    ],
)
def test_the_adapter_pool_never_builds_an_adapter_for_a_row_that_breaks_the_policy(
    db, monkeypatch, fields
):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-server-secret")
    provider = _stored(**fields)
    entry = route_entry_for(provider.pk)

    with pytest.raises(ProviderAuthError) as caught:
        adapter_for_entry(entry)

    assert "outbound policy" in str(caught.value)
    assert "the-server-secret" not in str(caught.value)


def test_list_settings_from_the_environment_are_trimmed(db):
    """`FALLBACK_UPSTREAM_HOSTS=api.openai.com, ollama` reaches settings with a space."""
    local = _provider(kind="ollama", api_key_env="", base_url="http://ollama:11434")
    with override_settings(FALLBACK_UPSTREAM_HOSTS=["api.openai.com", " ollama", ""]):
        assert _errors(local) == {}
    with override_settings(FALLBACK_UPSTREAM_HOSTS=[""]):  # `FALLBACK_UPSTREAM_HOSTS=`: off
        assert _errors(local) == {}
