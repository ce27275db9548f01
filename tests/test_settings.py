"""Settings: production refuses weak secrets and passes the deploy checks; entry
points default to production; FALLBACK_ values are validated when settings load."""

import importlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from providers_app.conf import DEFAULTS, settings_problems

ROOT = Path(__file__).resolve().parent.parent
STRONG_SECRET = secrets.token_urlsafe(50)


def _manage(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py as CI does, with only the variables given (plus PATH)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FALLBACK_"))}
    base["DATABASE_URL"] = f"sqlite:///{tmp_path / 'deploy.sqlite3'}"
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.production",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
}


def test_deploy_check_passes_with_production_settings(tmp_path):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        tmp_path=tmp_path, DJANGO_SECRET_KEY=STRONG_SECRET, **PRODUCTION,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("a" * 5 + secrets.token_hex(8)[:15], "too weak"),  # 20 characters
        # Long enough, but repeated: no real entropy (finding 8).
        ("abcde" * 10, "too weak"),
        ("password" * 7, "too weak"),
        ("local-dev-only-not-a-secret" * 2, "too weak"),
        ("abcde" * 10 + "xyz", "too weak"),
        ("local-dev-only-not-a-secret", "published default"),
        ("", "not set"),
    ],
)
def test_deploy_check_fails_with_a_short_or_default_secret(tmp_path, secret, message):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        tmp_path=tmp_path, DJANGO_SECRET_KEY=secret, **PRODUCTION,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
    assert secret == "" or secret not in result.stderr  # the secret is never echoed


def test_manage_py_without_a_settings_module_refuses_to_start_in_debug(tmp_path):
    """Defaults to production: no secret, no start; the message says how to run locally."""
    result = _manage("check", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "fallbackproject.settings.local" in result.stderr

    local = _manage(
        "check", tmp_path=tmp_path, DJANGO_SETTINGS_MODULE="fallbackproject.settings.local"
    )
    assert local.returncode == 0, local.stderr


def test_celery_app_defaults_to_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FALLBACK_"))}
    script = (
        "import os, fallbackproject.celery as c\n"
        "print(os.environ['DJANGO_SETTINGS_MODULE'])\n"
        "from django.conf import settings\n"
        "settings.DEBUG\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT,
        check=False,
    )  # fmt: skip
    assert result.stdout.strip() == "fallbackproject.settings.production"
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_invalid_fallback_settings_refuse_to_start(tmp_path):
    result = _manage(
        "check", tmp_path=tmp_path, DJANGO_SETTINGS_MODULE="fallbackproject.settings.local",
        FALLBACK_EVENT_RETENTION_DAYS="0", FALLBACK_DEADLINE_S="-1",
    )  # fmt: skip
    assert result.returncode != 0
    assert "FALLBACK_EVENT_RETENTION_DAYS must be at least 1" in result.stderr
    assert "FALLBACK_DEADLINE_S must be above 0" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVENT_RETENTION_DAYS", 0),
        ("DEADLINE_S", 0),
        ("HEALTH_TIMEOUT_S", -1),
        ("STREAM_IDLE_S", 0),
        ("BREAKER_FAILURE_RATE", 150),
        ("BACKOFF_BASE_S", -0.1),
    ],
)
def test_settings_problems_names_each_bad_value(name, value):
    problems = settings_problems({**DEFAULTS, name: value})
    assert problems
    assert f"FALLBACK_{name}" in problems[0]
    assert settings_problems(dict(DEFAULTS)) == []


@pytest.fixture
def production(monkeypatch):
    """The production settings module as loaded from an environment."""
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "chat.example.com")

    def load(**env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        module = importlib.import_module("fallbackproject.settings.production")
        return importlib.reload(module)

    return load


def test_hsts_preload_and_subdomains_are_opt_in(production):
    default = production()
    assert default.SECURE_HSTS_SECONDS > 0
    assert default.SECURE_HSTS_PRELOAD is False
    assert default.SECURE_HSTS_INCLUDE_SUBDOMAINS is False
    asked = production(DJANGO_SECURE_HSTS_PRELOAD="1", DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="1")
    assert asked.SECURE_HSTS_PRELOAD is True
    assert asked.SECURE_HSTS_INCLUDE_SUBDOMAINS is True
    assert asked.SILENCED_SYSTEM_CHECKS == []


@pytest.mark.django_db
def test_healthz_and_metrics_are_exempt_from_the_https_redirect(client, production):
    exempt = production().SECURE_REDIRECT_EXEMPT
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_REDIRECT_EXEMPT=exempt):
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        chat = client.get("/chat/")
        assert chat.status_code == 301
        assert chat["Location"].startswith("https://")
