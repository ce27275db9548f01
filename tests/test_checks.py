"""System checks: missing key variables."""

from django.core.checks import run_checks


def _ids(**kwargs) -> list[str]:
    return [m.id for m in run_checks(**kwargs)]


def test_warns_when_enabled_provider_key_variable_is_unset(make_provider, monkeypatch):
    monkeypatch.delenv("FB_TEST_KEY", raising=False)
    make_provider(kind="openai", api_key_env="FB_TEST_KEY", base_url="https://api.openai.com/v1")
    messages = [m for m in run_checks() if m.id == "providers_app.W001"]
    assert len(messages) == 1
    assert "FB_TEST_KEY" in messages[0].msg
    monkeypatch.setenv("FB_TEST_KEY", "x")
    assert "providers_app.W001" not in _ids()


def test_disabled_provider_does_not_warn(make_provider, monkeypatch):
    monkeypatch.delenv("FB_TEST_KEY", raising=False)
    make_provider(
        kind="openai",
        api_key_env="FB_TEST_KEY",
        base_url="https://api.openai.com/v1",
        enabled=False,
    )
    assert "providers_app.W001" not in _ids()


def test_warns_when_one_key_could_hold_most_server_threads(db, settings, monkeypatch):
    monkeypatch.setenv("WEB_THREADS", "20")
    settings.FALLBACK_KEY_CONCURRENT_REQUESTS = 16
    assert "providers_app.W020" in _ids()
    settings.FALLBACK_KEY_CONCURRENT_REQUESTS = 8
    assert "providers_app.W020" not in _ids()
