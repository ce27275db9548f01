"""Undecodable events inside an upstream stream, through the HTTP API with default settings.

The primary simulator writes a well-formed answer with undecodable events spliced
in (fault ``malformed_events``). One of them is skipped and logged and the caller
gets the whole answer from the primary; three in a row fail that provider like
any malformed response: before the first token the secondary answers instead,
after it the stream ends with a partial error.
"""

import json
import logging

from providers_app.adapters.streaming import MAX_UNDECODABLE_IN_A_ROW

from .test_chat_completions import HELLO, post


def _events(response) -> list[str]:
    return b"".join(response.streaming_content).decode().strip().split("\n\n")


def _content(events: list[str]) -> str:
    chunks = [json.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]
    return "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in chunks
        if chunk.get("choices")
    )


def _healthy_answer(client, auth, simulator) -> str:
    """What ``simulator`` streams with no fault, asked the same question."""
    events = _events(post(client, {"messages": HELLO, "stream": True}, headers=auth))
    simulator.reset()
    return _content(events)


def test_one_undecodable_event_is_skipped_and_the_whole_answer_arrives(
    client, auth, providers, primary, secondary, caplog
):
    healthy = _healthy_answer(client, auth, primary)
    primary.set_fault("malformed_events", chunks_before=2, count=1)

    with caplog.at_level(logging.WARNING, logger="providers_app.adapters.streaming"):
        response = post(client, {"messages": HELLO, "stream": True}, headers=auth)
        events = _events(response)

    assert response["X-Fallback-Provider"] == "primary"
    assert events[-1] == "data: [DONE]"
    assert _content(events) == healthy
    assert (primary.request_count, secondary.request_count) == (1, 0)
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "provider=primary skipped an undecodable stream event" in logged


def test_undecodable_events_in_a_row_before_any_output_fail_over(
    client, auth, providers, primary, secondary
):
    providers[0].enabled = False
    providers[0].save()
    healthy_secondary = _healthy_answer(client, auth, secondary)
    providers[0].enabled = True
    providers[0].save()
    primary.set_fault("malformed_events", chunks_before=0, count=MAX_UNDECODABLE_IN_A_ROW)

    response = post(client, {"messages": HELLO, "stream": True}, headers=auth)
    events = _events(response)

    assert response["X-Fallback-Provider"] == "secondary"
    assert _content(events) == healthy_secondary
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_undecodable_events_in_a_row_after_output_end_with_a_partial_error(
    client, auth, providers, primary, secondary
):
    healthy = _healthy_answer(client, auth, primary)
    primary.set_fault("malformed_events", chunks_before=2, count=MAX_UNDECODABLE_IN_A_ROW)

    events = _events(post(client, {"messages": HELLO, "stream": True}, headers=auth))

    assert "data: [DONE]" not in events
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["partial"] is True
    assert error["provider"] == "primary"
    assert error["code"] == "malformed_response"
    delivered = _content(events[:-1])
    assert delivered
    assert delivered != healthy
    assert healthy.startswith(delivered)  # the words before the bad run, nothing after
    assert secondary.request_count == 0
