"""Line splitting and the SSE parser: line endings, comments, events, multi-line data.

Then whole streams from a real local server: undecodable events are skipped one
at a time and fail the stream in a run, in every vendor's framing.
"""

from __future__ import annotations

import itertools
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers_app.adapters import Category, ChatRequest, Message, ProviderError, StreamDelta
from providers_app.adapters.sse import (
    LineTooLongError,
    SSEEvent,
    SSEParser,
    UnterminatedLine,
    iter_lines,
)
from providers_app.adapters.streaming import MAX_UNDECODABLE_IN_A_ROW

from .fault_server import Exchange


def _events(text: str, *, accept_bare_json: bool = False) -> list[SSEEvent]:
    lines = iter_lines([text.encode()])
    return list(SSEParser(accept_bare_json=accept_bare_json).events(lines))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_ending_splits_lines(newline: str) -> None:
    assert list(iter_lines([f"a{newline}b{newline}{newline}c{newline}".encode()])) == [
        "a",
        "b",
        "",
        "c",
    ]


def test_crlf_split_across_two_chunks_is_one_line_break() -> None:
    assert list(iter_lines([b"data: 1\r", b"\ndata: 2\r\n"])) == ["data: 1", "data: 2"]


def test_utf8_character_split_across_chunks_survives() -> None:
    raw = "data: Jalapeño\n".encode()
    cut = raw.index(b"\xc3") + 1
    assert list(iter_lines([raw[:cut], raw[cut:]])) == ["data: Jalapeño"]


def test_last_line_without_a_line_break_is_marked_unterminated() -> None:
    lines = list(iter_lines([b"one\ntwo"]))
    assert lines == ["one", "two"]
    assert not isinstance(lines[0], UnterminatedLine)
    assert isinstance(lines[1], UnterminatedLine)


def test_a_line_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(LineTooLongError):
        list(iter_lines([b"x" * 100], max_line_bytes=10))


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_how_the_network_chunks_the_bytes_does_not_change_the_lines(data, cuts) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert list(iter_lines(chunks)) == list(iter_lines([data]))


def test_comments_are_ignored_and_counted() -> None:
    parser = SSEParser()
    events = list(parser.events([": keep-alive", "", ": OPENROUTER PROCESSING", "", "data: x", ""]))
    assert events == [SSEEvent(data="x")]
    assert parser.comments == 2


def test_named_events_and_default_name() -> None:
    events = _events("event: ping\ndata: {}\n\ndata: plain\n\n")
    assert [(e.event, e.data) for e in events] == [("ping", "{}"), ("message", "plain")]


def test_multi_line_data_joins_with_newlines() -> None:
    events = _events('data: {"a":\ndata:  1}\ndata\n\n')
    # One leading space is removed per line; a bare "data" line adds an empty line.
    assert events == [SSEEvent(data='{"a":\n 1}\n')]


def test_unknown_fields_retry_and_id() -> None:
    events = _events("retry: 1000\nfoo: bar\nid: 7\ndata: x\n\n")
    assert events == [SSEEvent(data="x", id="7")]


def test_event_without_data_is_not_dispatched() -> None:
    assert _events("event: ping\n\n\n\ndata: after\n\n") == [SSEEvent(data="after")]


def test_event_name_does_not_leak_into_the_next_event() -> None:
    events = _events("event: error\ndata: 1\n\ndata: 2\n\n")
    assert [e.event for e in events] == ["error", "message"]


def test_crlf_stream_parses_like_lf() -> None:
    lf = "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"
    assert _events(lf.replace("\n", "\r\n")) == _events(lf)


def test_event_pending_at_end_of_stream_is_dispatched_as_unterminated() -> None:
    events = _events("data: complete\n\ndata: cut sho")
    assert events == [SSEEvent(data="complete"), SSEEvent(data="cut sho", terminated=False)]


def test_bare_multi_line_json_is_one_event_when_accepted() -> None:
    text = (
        '{\n  "error": {\n    "message": "a } in a string",\n    "code": 503\n  }\n}\ndata: {}\n\n'
    )
    events = _events(text, accept_bare_json=True)
    assert events[0].data.startswith("{")
    assert events[0].data.endswith("}")
    assert '"a } in a string"' in events[0].data
    assert events[1] == SSEEvent(data="{}")


def test_bare_json_is_just_unknown_fields_by_default() -> None:
    assert _events('{"error": {"code": 503}}\n\n') == []


# -- undecodable events in a real stream ------------------------------------------
# A real local server (tests/adapters/fault_server.py) writes each vendor's framing
# with garbage events spliced in; the adapter must skip a lone one and fail a run.

_WORDS = [f"w{index} " for index in range(20)]
_SPLICE_AT = 10  # garbage goes after this many good output events


def _openai_events(words: list[str]) -> tuple[list[str], str]:
    def chunk(choice: dict) -> str:
        return "data: " + json.dumps({"model": "m", "choices": [choice]}) + "\n\n"

    events = [chunk({"index": 0, "delta": {"content": word}}) for word in words]
    end = chunk({"index": 0, "delta": {}, "finish_reason": "stop"}) + "data: [DONE]\n\n"
    return events, end


def _anthropic_events(words: list[str]) -> tuple[list[str], str]:
    def event(name: str, payload: dict) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n"

    start = event("message_start", {"message": {"model": "m", "usage": {"input_tokens": 3}}})
    deltas = [
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}})
        for w in words
    ]
    end = event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {}})
    return [start + deltas[0], *deltas[1:]], end + event("message_stop", {})


def _gemini_events(words: list[str]) -> tuple[list[str], str]:
    def event(text: str, finish: str | None = None) -> str:
        candidate: dict = {"content": {"parts": [{"text": text}], "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
        return f"data: {json.dumps({'candidates': [candidate]})}\r\n\r\n"

    return [event(word) for word in words], event("", "STOP")


def _ollama_lines(words: list[str]) -> tuple[list[str], str]:
    def line(payload: dict) -> str:
        return json.dumps({"model": "m", **payload}) + "\n"

    lines = [line({"message": {"role": "assistant", "content": w}, "done": False}) for w in words]
    return lines, line({"message": {"content": ""}, "done": True, "done_reason": "stop"})


_KINDS = {
    # kind: (event builder, one undecodable event in that framing, content type, url suffix)
    "openai_compatible": (
        _openai_events,
        'data: {"choices": [{"delta": {"content": "lost"\n\n',
        "text/event-stream",
        "/v1",
    ),
    "anthropic": (
        _anthropic_events,
        "event: content_block_delta\ndata: <html>502 from a proxy</html>\n\n",
        "text/event-stream",
        "",
    ),
    "gemini": (_gemini_events, "data: [1, 2\r\n\r\n", "text/event-stream", ""),
    "ollama": (_ollama_lines, '{"message": {"content": "lost"\n', "application/x-ndjson", ""),
}


def _serve_stream(fault_server, kind: str, *, garbage: int) -> None:
    build, bad, content_type, _ = _KINDS[kind]
    events, end = build(_WORDS)
    body = "".join(events[:_SPLICE_AT]) + bad * garbage + "".join(events[_SPLICE_AT:]) + end

    def behaviour(exchange: Exchange) -> None:
        exchange.send_head(200, headers={"Content-Type": content_type})
        exchange.send(body)

    fault_server.serve(behaviour)


def _stream(make_adapter, fault_server, kind: str) -> list[StreamDelta]:
    adapter = make_adapter(kind, base_url=fault_server.url + _KINDS[kind][3])
    request = ChatRequest(messages=(Message("user", "Count to twenty."),))
    return list(adapter.stream(request, timeout=5, first_token_timeout=5, idle_timeout=5))


@pytest.mark.parametrize("kind", sorted(_KINDS))
@pytest.mark.parametrize("garbage", [1, MAX_UNDECODABLE_IN_A_ROW - 1])
def test_undecodable_events_are_skipped_and_the_whole_answer_delivered(
    kind: str, garbage: int, make_adapter, fault_server, caplog
) -> None:
    _serve_stream(fault_server, kind, garbage=garbage)
    with caplog.at_level(logging.WARNING, logger="providers_app.adapters.streaming"):
        deltas = _stream(make_adapter, fault_server, kind)

    assert "".join(delta.text for delta in deltas) == "".join(_WORDS)
    final = deltas[-1]
    assert final.finish_reason == "stop"
    assert final.skipped_events == garbage
    skips = [r.getMessage() for r in caplog.records if "skipped an undecodable" in r.getMessage()]
    assert len(skips) == garbage
    assert all(f"provider=test-{kind}" in message for message in skips)
    assert "lost" not in " ".join(skips)  # the event's data is never logged


@pytest.mark.parametrize("kind", sorted(_KINDS))
def test_undecodable_events_in_a_row_fail_the_stream_as_malformed(
    kind: str, make_adapter, fault_server
) -> None:
    _serve_stream(fault_server, kind, garbage=MAX_UNDECODABLE_IN_A_ROW)
    with pytest.raises(ProviderError) as caught:
        _stream(make_adapter, fault_server, kind)

    error = caught.value
    assert error.category is Category.MALFORMED_RESPONSE
    assert f"{MAX_UNDECODABLE_IN_A_ROW} undecodable stream events in a row" in error.message
    assert error.output_produced is True
    assert error.partial_text == "".join(_WORDS[:_SPLICE_AT])


def test_a_clean_stream_reports_no_skipped_events(make_adapter, fault_server) -> None:
    _serve_stream(fault_server, "openai_compatible", garbage=0)
    assert _stream(make_adapter, fault_server, "openai_compatible")[-1].skipped_events == 0


def test_good_events_between_bad_ones_reset_the_run(make_adapter, fault_server) -> None:
    """Bad events that are never consecutive are all skipped, however many there are."""
    events, end = _openai_events(_WORDS)
    bad = _KINDS["openai_compatible"][1]
    body = "".join(event + bad for event in events) + end
    fault_server.serve(
        lambda exchange: (
            exchange.send_head(200, headers={"Content-Type": "text/event-stream"}),
            exchange.send(body),
        )
    )
    deltas = _stream(make_adapter, fault_server, "openai_compatible")
    assert "".join(delta.text for delta in deltas) == "".join(_WORDS)
    assert deltas[-1].skipped_events == len(_WORDS)


@pytest.mark.parametrize(
    ("kind", "tail"),
    [
        # The last event is cut off mid-JSON with no blank line after it.
        ("openai_compatible", 'data: {"choices": [{"delta": {"content": "cu'),
        # NDJSON: the last line is cut off without its newline.
        ("ollama", '{"message": {"content": "cu'),
        # A bare JSON object that never closes swallows the rest of the stream.
        ("gemini", '{"candidates": [\r\n'),
    ],
)
def test_an_event_that_breaks_the_framing_still_fails_the_stream(
    kind: str, tail: str, make_adapter, fault_server
) -> None:
    build, _, content_type, _ = _KINDS[kind]
    events, end = build(_WORDS)
    body = "".join(events[:_SPLICE_AT]) + tail
    if kind == "gemini":
        body += "".join(events[_SPLICE_AT:]) + end  # all of it lost inside the open object

    def behaviour(exchange: Exchange) -> None:
        exchange.send_head(200, headers={"Content-Type": content_type})
        exchange.send(body)

    fault_server.serve(behaviour)
    with pytest.raises(ProviderError) as caught:
        _stream(make_adapter, fault_server, kind)

    assert caught.value.category is Category.TRANSPORT
    assert "truncated" in caught.value.message
    assert caught.value.partial_text == "".join(_WORDS[:_SPLICE_AT])


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        ("openai_compatible", "data: [1, 2]\n\n"),  # JSON, but not an object
        ("openai_compatible", 'data: "a string"\n\n'),
        ("anthropic", "event: content_block_delta\ndata: null\n\n"),
        ("gemini", "data: 42\r\n\r\n"),
        ("ollama", '["not", "an", "object"]\n'),
    ],
)
def test_an_event_that_is_json_but_not_an_object_is_skipped_too(
    kind: str, bad: str, make_adapter, fault_server
) -> None:
    build, _, content_type, _ = _KINDS[kind]
    events, end = build(_WORDS)
    body = "".join(events[:_SPLICE_AT]) + bad + "".join(events[_SPLICE_AT:]) + end
    fault_server.serve(
        lambda exchange: (
            exchange.send_head(200, headers={"Content-Type": content_type}),
            exchange.send(body),
        )
    )
    deltas = _stream(make_adapter, fault_server, kind)
    assert "".join(delta.text for delta in deltas) == "".join(_WORDS)
    assert deltas[-1].skipped_events == 1
