"""Issue 12's stream rows: a committed stream that fails is continued on the next
provider that can continue a partial answer, through the simulator and the HTTP
API with default FALLBACK_ settings (docs/engine.md, "Mid-stream rescue").

The simulators answer the same 60-word text, as two deployments of one model
would; a simulator asked with a trailing assistant message answers the rest of
that text after it.
"""

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from providers_app.conf import DEFAULTS
from providers_app.models import BreakerState, FailoverEvent
from tests.factories import provider_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Tell me a long story."}]
WORDS = [f"word{n}" for n in range(1, 61)]
ANSWER = " ".join(WORDS)  # 60 stream chunks: "word1", " word2", ...
FIRST_40 = " ".join(WORDS[:40])


@pytest.fixture(autouse=True)
def _production_backoff(settings):
    settings.FALLBACK_BACKOFF_BASE_S = DEFAULTS["BACKOFF_BASE_S"]
    settings.FALLBACK_BACKOFF_MAX_S = DEFAULTS["BACKOFF_MAX_S"]


@pytest.fixture
def chain(db, primary, secondary):
    """Primary on one simulator, then the given providers on the other one."""

    def make(*others):
        first = provider_create(name="primary", base_url=primary.base_url)
        rest = [
            provider_create(name=name, base_url=secondary.base_url, **fields)
            for n, (name, fields) in enumerate(others)
        ]
        return first, *rest

    return make


def _post(client, auth, **extra):
    body = {"model": "fallback", "messages": HELLO, "stream": True, **extra}
    return client.post(URL, json.dumps(body), content_type="application/json", headers=auth)


def _events(response) -> list:
    lines = b"".join(response.streaming_content).decode().splitlines()
    return [line[6:] for line in lines if line.startswith("data: ")]


def _content(events) -> str:
    text = []
    for event in events:
        if event.startswith("{"):
            for choice in json.loads(event).get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def _final_chunk(events) -> dict:
    return next(
        json.loads(e)
        for e in events
        if e.startswith("{") and any(c.get("finish_reason") for c in json.loads(e)["choices"])
    )


def _continuations(client, from_provider, to_provider) -> float:
    """fallback_continuations_total as GET /metrics reports it."""
    labels = {"from_provider": from_provider, "to_provider": to_provider, "reason": "transport"}
    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fallback_continuations_total" and sample.labels == labels:
                return sample.value
    return 0.0


def test_a_stream_cut_after_40_of_60_tokens_is_finished_by_the_next_provider(
    client, auth, chain, primary, secondary
):
    first, second = chain(("secondary", {"continuation": "trailing_assistant"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)
    before = _continuations(client, "primary", "secondary")

    response = _post(client, auth)
    events = _events(response)

    assert response["X-Fallback-Provider"] == "primary"  # sent before the cut
    assert _content(events) == ANSWER
    assert events[-1] == "[DONE]"
    assert _final_chunk(events)["x_fallback"] == {
        "provider": "secondary",
        "continued_from": ["primary"],
    }
    sent = secondary.last_request["json"]["messages"]
    assert sent[-1] == {"role": "assistant", "content": FIRST_40}  # the prefill
    assert sent[:-1] == HELLO
    assert (primary.request_count, secondary.request_count) == (1, 1)
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.CONTINUATION)
    assert (event.provider, event.to_provider, event.reason) == (first, second, "transport")
    assert "characters delivered" in event.detail
    assert BreakerState.objects.get(pk=first.pk).consecutive_failures == 1  # once
    assert _continuations(client, "primary", "secondary") == before + 1


def test_a_stream_stalled_for_30_s_after_20_tokens_is_finished_well_inside_30_s(
    client, auth, chain, primary, secondary
):
    chain(("secondary", {"continuation": "trailing_assistant"}))
    primary.set_fault("stall_stream", chunks=20, seconds=30, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)
    started = time.monotonic()

    events = _events(_post(client, auth))

    elapsed = time.monotonic() - started
    assert _content(events) == ANSWER
    assert secondary.last_request["json"]["messages"][-1]["content"] == " ".join(WORDS[:20])
    assert DEFAULTS["STREAM_IDLE_S"] <= elapsed < 15
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.CONTINUATION)
    assert event.reason == "timeout"


def test_an_upstream_error_event_mid_stream_is_continued(client, auth, chain, primary, secondary):
    chain(("secondary", {"continuation": "trailing_assistant"}))
    primary.set_fault("midstream_error", chunks_before=10, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    events = _events(_post(client, auth))

    assert _content(events) == ANSWER
    assert _final_chunk(events)["x_fallback"]["provider"] == "secondary"


def test_a_rejected_prefill_is_recorded_and_the_next_capable_provider_continues(
    client, auth, chain, primary, secondary
):
    """Row 9: the first fallback refuses the prefill (as Claude 4.6 does with a 400);
    the 400 is recorded and the next capable provider finishes the answer."""
    first, refusing, finishing = chain(
        ("claude-4-6", {"continuation": "trailing_assistant"}),
        ("continuer", {"continuation": "trailing_assistant"}),
    )
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault(
        "sequence", steps=[{"mode": "reject_prefill"}, {"mode": "ok", "options": {"text": ANSWER}}]
    )

    events = _events(_post(client, auth))

    assert _content(events) == ANSWER
    assert _final_chunk(events)["x_fallback"] == {
        "provider": "continuer",
        "continued_from": ["primary"],
    }
    rejected = FailoverEvent.objects.get(kind=FailoverEvent.Kind.FAILOVER)
    assert (rejected.provider, rejected.to_provider) == (refusing, finishing)
    assert (rejected.reason, rejected.status_code) == ("invalid_request", 400)
    continued = FailoverEvent.objects.get(kind=FailoverEvent.Kind.CONTINUATION)
    assert (continued.provider, continued.to_provider) == (first, finishing)
    assert BreakerState.objects.get(pk=refusing.pk).consecutive_failures == 0  # not its fault


def test_a_rejected_prefill_never_hides_the_real_failure(client, auth, chain, primary, secondary):
    """The only capable fallback refuses: the client's error names the cut, not the 400."""
    _, refusing = chain(("claude-4-6", {"continuation": "trailing_assistant"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("reject_prefill")

    events = _events(_post(client, auth))

    assert _content(events) == FIRST_40
    error = json.loads(events[-1])["error"]
    assert error["partial"] is True
    assert error["provider"] == "primary"
    assert "prefill" not in error["message"]
    assert "400" not in error["message"]
    rejected = FailoverEvent.objects.get(kind=FailoverEvent.Kind.FAILOVER, provider=refusing)
    assert (rejected.reason, rejected.status_code) == ("invalid_request", 400)
    assert not FailoverEvent.objects.filter(kind=FailoverEvent.Kind.CONTINUATION).exists()


def test_no_switch_of_providers_when_no_provider_can_continue(
    client, auth, chain, primary, secondary
):
    """The secondary lacks the capability: it is never asked; the stream ends honestly."""
    chain(("secondary", {"continuation": "none"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)

    events = _events(_post(client, auth))

    assert _content(events) == FIRST_40
    assert json.loads(events[-1])["error"]["partial"] is True
    assert "[DONE]" not in events
    assert secondary.request_count == 0
    assert not FailoverEvent.objects.filter(kind=FailoverEvent.Kind.CONTINUATION).exists()


def test_an_openai_provider_is_never_asked_to_continue(client, auth, chain, primary, secondary):
    """OpenAI has no continuation: its default capability keeps it out."""
    chain(("openai", {"kind": "openai", "api_key_env": "FB_TEST_OPENAI_KEY"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)

    events = _events(_post(client, auth))

    assert json.loads(events[-1])["error"]["partial"] is True
    assert secondary.request_count == 0


def test_the_chat_page_stream_names_who_finished_the_answer(chain, primary, secondary):
    from providers_app.api.streaming import chat_page_ndjson
    from providers_app.engine import fallback

    chain(("secondary", {"continuation": "trailing_assistant"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    lines = [
        json.loads(line)
        for line in b"".join(chat_page_ndjson(fallback.stream(HELLO))).split(b"\n")
        if line
    ]

    assert "".join(line.get("text", "") for line in lines) == ANSWER
    done = lines[-1]
    assert (done["type"], done["provider"], done["continued_from"]) == (
        "done",
        "secondary",
        ["primary"],
    )


# --- hold-back ------------------------------------------------------------------


def test_hold_back_restarts_a_cut_stream_cleanly_on_a_provider_that_cannot_continue(
    client, auth, chain, primary, secondary
):
    chain(("secondary", {"continuation": "none"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    response = _post(client, auth, x_fallback_hold_back=True)
    events = _events(response)

    assert response["X-Fallback-Provider"] == "secondary"
    assert _content(events) == ANSWER  # one clean answer, nothing of the cut one
    assert events[-1] == "[DONE]"
    assert _final_chunk(events)["x_fallback"] == {"provider": "secondary", "continued_from": []}
    assert secondary.last_request["json"]["messages"] == HELLO  # no prefill: a restart
    assert FailoverEvent.objects.get(kind=FailoverEvent.Kind.FAILOVER).reason == "transport"


def _auto_hold_back_route(*providers):
    from providers_app.services.routes import route_create

    route_create(name="chat", providers=providers, auto_hold_back=True)


def test_auto_hold_back_holds_back_when_nobody_behind_can_continue(
    client, auth, chain, primary, secondary
):
    first, second = chain(("secondary", {"continuation": "none"}))
    _auto_hold_back_route(first, second)
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    response = _post(client, auth, model="chat")
    events = _events(response)

    assert response["X-Fallback-Provider"] == "secondary"  # nothing of the cut one was sent
    assert _content(events) == ANSWER
    assert _final_chunk(events)["x_fallback"] == {"provider": "secondary", "continued_from": []}
    assert secondary.last_request["json"]["messages"] == HELLO  # a restart, no prefill


def test_auto_hold_back_streams_live_when_a_provider_behind_can_continue(
    client, auth, chain, primary, secondary
):
    first, second = chain(("secondary", {"continuation": "vllm"}))
    _auto_hold_back_route(first, second)
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    response = _post(client, auth, model="chat")
    events = _events(response)

    assert response["X-Fallback-Provider"] == "primary"  # live: committed at the first token
    assert _content(events) == ANSWER
    assert _final_chunk(events)["x_fallback"] == {
        "provider": "secondary",
        "continued_from": ["primary"],
    }
    assert primary.request_count == 1


def test_auto_hold_back_is_off_by_default(db):
    from providers_app.models import Route

    assert Route._meta.get_field("auto_hold_back").default is False


def test_hold_back_must_be_a_boolean(client, auth, chain):
    chain()
    response = _post(client, auth, x_fallback_hold_back="yes")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x_fallback_hold_back"


def test_a_cut_that_opens_the_breaker_writes_one_opened_event_and_is_still_continued(
    client, auth, chain, primary, secondary, settings
):
    settings.FALLBACK_BREAKER_FAILURE_THRESHOLD = 1
    first, _ = chain(("secondary", {"continuation": "trailing_assistant"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    assert _content(_events(_post(client, auth))) == ANSWER

    opened = FailoverEvent.objects.filter(kind=FailoverEvent.Kind.BREAKER_OPENED, provider=first)
    assert opened.count() == 1
    assert BreakerState.objects.get(pk=first.pk).state == BreakerState.State.OPEN


def test_with_usage_the_very_last_chunk_names_who_finished(client, auth, chain, primary, secondary):
    chain(("secondary", {"continuation": "trailing_assistant"}))
    primary.set_fault("truncate_stream", chunks=40, text=ANSWER)
    secondary.set_fault("ok", text=ANSWER)

    events = _events(_post(client, auth, stream_options={"include_usage": True}))

    last = json.loads(events[-2])  # before [DONE]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 20  # the continuation's
    assert last["x_fallback"] == {"provider": "secondary", "continued_from": ["primary"]}
