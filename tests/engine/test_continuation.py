"""The mid-stream rescue and the engine's loose ends, with in-process adapters.

Scripted adapters stand in where the simulator cannot produce the shape
(half-sent tool calls, skipped events, a prefill echo); the routing, breaker,
decision and events are the production ones.
"""

import logging
from dataclasses import dataclass, field

import pytest
from prometheus_client import REGISTRY

from providers_app.adapters.errors import ProviderTransportError
from providers_app.adapters.schema import (
    ChatRequest,
    ImagePart,
    StreamDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
)
from providers_app.engine import counters, fallback, route_run, streams
from providers_app.models import BreakerState, FailoverEvent, Provider
from tests.factories import provider_create

HELLO = [{"role": "user", "content": "Say hello."}]


@dataclass
class ScriptedAdapter:
    """Streams `deltas`, then raises `error` (if any); records each request."""

    name: str
    deltas: list[StreamDelta]
    error: Exception | None = None
    requests: list[ChatRequest] = field(default_factory=list)
    continuation: str = "trailing_assistant"

    @property
    def config(self):
        return type("Config", (), {"provider": self.name, "continuation": self.continuation})()

    def stream(self, request, **limits):
        self.requests.append(request)
        yield from self.deltas
        if self.error is not None:
            raise self.error


def _cut(name: str) -> ProviderTransportError:
    error = ProviderTransportError("connection closed mid-stream", provider=name)
    error.output_produced = True
    return error


@pytest.fixture
def scripted(db, monkeypatch):
    """Providers `primary`, `secondary` (both with prefill) served by scripted adapters."""
    adapters: dict[str, ScriptedAdapter] = {}
    for name in ("primary", "secondary"):
        provider_create(name=name, max_attempts=1, continuation="trailing_assistant")
    monkeypatch.setattr(route_run, "adapter_for_entry", lambda entry: adapters[entry.name])
    return adapters


def _run(stream) -> str:
    return "".join(chunk.text for chunk in stream)


def test_a_cut_stream_is_continued_with_the_delivered_text_as_prefill(scripted):
    scripted["primary"] = ScriptedAdapter(
        "primary", [StreamDelta(text="Hello"), StreamDelta(text=" there")], _cut("primary")
    )
    scripted["secondary"] = ScriptedAdapter(
        "secondary", [StreamDelta(text=", friend."), StreamDelta(finish_reason="stop")]
    )

    stream = fallback.stream(HELLO)
    assert _run(stream) == "Hello there, friend."

    request = scripted["secondary"].requests[0]
    assert request.continue_final
    assert (request.messages[-1].role, request.messages[-1].text) == ("assistant", "Hello there")
    assert (stream.provider, stream.finished_by, stream.continued_from) == (
        "primary",
        "secondary",
        ["primary"],
    )


def test_whitespace_held_back_from_a_prefill_is_not_repeated(scripted):
    """Anthropic's adapter strips the prefill's trailing space; the model writes it again."""
    scripted["primary"] = ScriptedAdapter("primary", [StreamDelta(text="Hello ")], _cut("primary"))
    scripted["secondary"] = ScriptedAdapter(
        "secondary", [StreamDelta(text=" world."), StreamDelta(finish_reason="stop")]
    )

    assert _run(fallback.stream(HELLO)) == "Hello world."


def test_a_stream_that_sent_tool_call_fragments_is_not_continued(scripted):
    scripted["primary"] = ScriptedAdapter(
        "primary",
        [StreamDelta(tool_calls=(ToolCallDelta(index=0, id="call_1", name="f", arguments='{"a'),))],
        _cut("primary"),
    )
    scripted["secondary"] = ScriptedAdapter("secondary", [StreamDelta(text="never")])

    stream = fallback.stream(HELLO)
    with pytest.raises(fallback.StreamInterrupted) as raised:
        _run(stream)

    assert raised.value.provider == "primary"
    assert scripted["secondary"].requests == []
    assert not FailoverEvent.objects.filter(kind=FailoverEvent.Kind.CONTINUATION).exists()


def test_an_empty_continuation_finishes_an_answer_that_lacked_only_its_end(scripted):
    scripted["primary"] = ScriptedAdapter("primary", [StreamDelta(text="Done.")], _cut("primary"))
    scripted["secondary"] = ScriptedAdapter("secondary", [StreamDelta(finish_reason="stop")])

    stream = fallback.stream(HELLO)
    chunks = list(stream)

    assert "".join(c.text for c in chunks) == "Done."
    assert chunks[-1].finish_reason == "stop"
    assert stream.finished_by == "secondary"
    state = BreakerState.objects.get(provider__name="secondary")
    assert state.consecutive_failures == 0


def test_skipped_stream_events_are_counted_and_logged(scripted, caplog):
    scripted["primary"] = ScriptedAdapter(
        "primary", [StreamDelta(text="Hi."), StreamDelta(finish_reason="stop", skipped_events=2)]
    )
    labels = {"provider": "primary"}
    before = REGISTRY.get_sample_value("fallback_stream_skipped_events_total", labels) or 0.0

    with caplog.at_level(logging.WARNING, logger="providers_app.fallback"):
        assert _run(fallback.stream(HELLO)) == "Hi."

    after = REGISTRY.get_sample_value("fallback_stream_skipped_events_total", labels)
    assert after == before + 2
    assert any("skipped 2 undecodable" in r.getMessage() for r in caplog.records)


# --- a bug in the engine's own code --------------------------------------------


def test_a_bug_in_a_per_provider_step_is_logged_and_the_next_provider_answers(
    providers, primary, monkeypatch, caplog
):
    first, _ = providers()
    real_count = counters.count

    def buggy_count(provider_id, **counts):
        if provider_id == first.id:
            raise KeyError("a bug of ours")
        return real_count(provider_id, **counts)

    monkeypatch.setattr(counters, "count", buggy_count)
    with caplog.at_level(logging.ERROR, logger="providers_app.fallback"):
        result = fallback.complete(HELLO)

    assert result.provider == "secondary"
    assert primary.request_count == 0  # the bug came before the call
    assert result.failures[0].reason == "internal_error"
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert logged
    assert logged[0].exc_info[0] is KeyError  # with its traceback


def test_a_bug_while_acquiring_the_breaker_moves_on_to_the_next_provider(
    providers, primary, monkeypatch
):
    first, _ = providers()
    real_acquire = route_run.breaker_acquire

    def buggy_acquire(*, entry, attempt_timeout_s):
        if entry.id == first.id:
            raise AttributeError("a bug of ours")
        return real_acquire(entry=entry, attempt_timeout_s=attempt_timeout_s)

    monkeypatch.setattr(route_run, "breaker_acquire", buggy_acquire)
    stream = fallback.stream(HELLO)

    assert stream.provider == "secondary"
    assert "secondary" in _run(stream)


# --- fallback.complete(messages=[dict, ...]) ------------------------------------


def test_plain_dict_messages_keep_their_tool_fields_and_parts():
    request = fallback.build_request(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "look", "content": "a cat"},
        ]
    )

    user, assistant, tool = request.messages
    assert user.content == (TextPart("What is this?"), ImagePart(url="https://x.test/a.png"))
    assert assistant.tool_calls == (ToolCall("call_1", "look", '{"q": 1}'),)
    assert (tool.role, tool.tool_call_id, tool.name, tool.text) == (
        "tool",
        "call_1",
        "look",
        "a cat",
    )
    assert "tools" in request.required_capabilities


def test_a_bug_in_the_rescue_ends_the_stream_with_the_original_cut(scripted, monkeypatch):
    scripted["primary"] = ScriptedAdapter("primary", [StreamDelta(text="Hi")], _cut("primary"))
    scripted["secondary"] = ScriptedAdapter("secondary", [StreamDelta(text=" there.")])

    def broken(request, delivered):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(streams, "continuation_request", broken)
    stream = fallback.stream(HELLO)
    with pytest.raises(fallback.StreamInterrupted) as raised:
        _run(stream)

    assert (raised.value.provider, raised.value.category) == ("primary", "transport")
    assert scripted["secondary"].requests == []


# -- the splice: echoes and restarted answers (engine/continuation.py) ---------------

PARTIAL = "The fjords of Norway are long, deep and narrow inlets"  # 54 characters


def _partial_then(scripted, continuation_deltas, *, dialect="trailing_assistant"):
    scripted["primary"] = ScriptedAdapter(
        "primary", [StreamDelta(text=PARTIAL[:20]), StreamDelta(text=PARTIAL[20:])],
        _cut("primary"),
    )  # fmt: skip
    scripted["secondary"] = ScriptedAdapter(
        "secondary", [*continuation_deltas, StreamDelta(finish_reason="stop")],
        continuation=dialect,
    )  # fmt: skip


def test_a_prefix_server_echoing_the_partial_answer_has_the_echo_cut(scripted):
    """Mistral's prefix "forces the model to start its answer" with it: cut, once."""
    echo = [StreamDelta(text=PARTIAL[:30], model="m"), StreamDelta(text=PARTIAL[30:] + " carved")]
    _partial_then(scripted, [*echo, StreamDelta(text=" by ice.")], dialect="prefix")

    assert _run(fallback.stream(HELLO)) == PARTIAL + " carved by ice."


def test_a_continuation_sharing_a_few_characters_with_the_start_is_passed_on(scripted):
    _partial_then(scripted, [StreamDelta(text=" The"), StreamDelta(text=" end.")])
    assert _run(fallback.stream(HELLO)) == PARTIAL + " The end."


@pytest.mark.parametrize(
    "restart",
    [
        [StreamDelta(text=PARTIAL[:30]), StreamDelta(text=" something else entirely")],
        [StreamDelta(text=PARTIAL), StreamDelta(text=" carved by ice.")],  # not prefix
        [StreamDelta(text=PARTIAL[:40])],  # a shorter new answer, then the end
    ],
)
def test_a_restarted_answer_is_never_spliced_and_switches_the_dialect_off(scripted, restart):
    _partial_then(scripted, restart)

    stream = fallback.stream(HELLO)
    with pytest.raises(fallback.StreamInterrupted):
        _run(stream)  # the only fallback started over: the honest cut

    assert Provider.objects.get(name="secondary").continuation == "none"
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.CONTINUATION_OFF)
    assert "started the answer over" in event.detail
