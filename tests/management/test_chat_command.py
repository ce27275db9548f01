"""`manage.py chat "prompt"`: the answer, who gave it, and a clear failure."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

# The simulated upstreams, providers on them and a fresh engine state per test.
from tests.api.fixtures import *  # noqa: F403


def chat(*args: str) -> str:
    out = io.StringIO()
    call_command("chat", *args, stdout=out, no_color=True)
    return out.getvalue()


def test_prints_the_answer_the_provider_and_the_attempts(providers, primary, secondary):
    primary.set_fault("error", status=500)

    out = chat("Say hello.")

    assert out.startswith("Hello from secondary.\n")
    assert "provider: secondary (model gpt-secondary)" in out
    assert "attempts: 2" in out
    assert "failovers: 1" in out
    assert "failed: primary (server_error HTTP 500)" in out


def test_stream_prints_the_answer_as_it_comes(providers, primary):
    out = chat("Say hello.", "--stream", "--system", "Be brief.")

    assert out.startswith("Hello from primary.\n")
    assert "provider: primary" in out
    assert "attempts: 1" in out
    assert primary.last_request["json"]["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }
    assert primary.last_request["json"]["stream"] is True


def test_all_providers_failing_exits_non_zero_with_each_reason(providers, primary, secondary):
    primary.set_fault("error", status=500)
    secondary.set_fault("rate_limit", retry_after="9")

    with pytest.raises(CommandError) as raised:
        chat("Say hello.")

    message = str(raised.value)
    assert message.startswith("All providers failed: ")
    assert "primary (server_error HTTP 500)" in message
    assert "secondary (rate_limit HTTP 429)" in message
    assert raised.value.returncode == 1


def test_all_providers_failing_a_stream_exits_non_zero(providers, primary, secondary):
    primary.set_fault("error", status=500)
    secondary.set_fault("error", status=502)

    with pytest.raises(CommandError, match="All providers failed"):
        chat("Say hello.", "--stream")


def test_an_interrupted_stream_says_the_text_is_partial(providers, primary, secondary):
    primary.set_fault("midstream_error", chunks_before=1)

    with pytest.raises(CommandError, match=r"interrupted .*partial"):
        chat("Say hello.", "--stream")
    assert secondary.request_count == 0


def test_a_refused_prompt_names_the_provider_and_category(providers, primary):
    primary.set_fault("error", status=400, message="Bad prompt.", type="invalid_request_error")

    with pytest.raises(CommandError, match=r"primary refused the prompt \(invalid_request\)"):
        chat("Say hello.")


def test_an_empty_prompt_is_refused(db):
    with pytest.raises(CommandError, match="empty"):
        chat("   ")


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_are_printed_readably(providers, primary, tmp_path, stream):
    tools = tmp_path / "tools.json"
    tools.write_text(
        '[{"type": "function", "function": {"name": "get_weather", "parameters": '
        '{"type": "object", "properties": {"city": {"type": "string"}}}}}]'
    )

    out = chat("Weather in Oslo?", "--tools", str(tools), *(["--stream"] if stream else []))

    assert '-> tool call: get_weather({"city": "Oslo"})  [id call_' in out
    assert "provider: primary" in out
    assert primary.last_request["json"]["tools"][0]["function"]["name"] == "get_weather"


def test_json_answers_are_asked_for_with_json(providers, primary):
    out = chat("Greet me.", "--json")

    assert out.startswith('{"answer": "Hello from primary."}')
    assert primary.last_request["json"]["response_format"] == {"type": "json_object"}


def test_an_unreadable_tools_file_is_a_clear_error(providers, tmp_path):
    with pytest.raises(CommandError, match="Cannot read tools"):
        chat("Hi", "--tools", str(tmp_path / "missing.json"))


def test_a_stream_continued_after_a_cut_says_who_finished_it(providers, primary, secondary):
    _, second = providers
    second.continuation = "trailing_assistant"
    second.save()
    text = "one two three four five six"
    primary.set_fault("truncate_stream", chunks=3, text=text)
    secondary.set_fault("ok", text=text)

    out = chat("Tell me.", "--stream")

    assert out.startswith(text + "\n")
    assert "provider: primary" in out
    assert "finished by secondary (continued from primary)" in out


def test_route_picks_the_route_and_the_summary_names_it(providers, primary, secondary):
    from providers_app.services.routes import route_create

    route_create(name="large", providers=[providers[1], providers[0]])

    out = chat("Say hello.", "--route", "large")

    assert out.startswith("Hello from secondary.\n")
    assert "route: large · provider: secondary" in out
    assert primary.request_count == 0
    with pytest.raises(CommandError, match="'nonesuch' does not exist"):
        chat("Say hello.", "--route", "nonesuch")
