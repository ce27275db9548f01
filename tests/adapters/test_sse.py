"""Line splitting and the SSE parser: line endings, comments, events, multi-line data."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers_app.adapters.sse import (
    LineTooLongError,
    SSEEvent,
    SSEParser,
    UnterminatedLine,
    iter_lines,
)


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
