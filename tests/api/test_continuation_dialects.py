"""Issue 26's "done when": through the HTTP API with the official `openai` SDK, a
stream cut after 20 of 60 words, and a stall after 20 words, are each delivered
whole, word for word, by a fallback speaking each continuation dialect, and
after a fallback that refused the continuation (and is skipped the next time).

Every fallback is a local simulator speaking that dialect the way the real server
does (providers_app/simulator: vLLM answers afresh without its flags, Mistral
answers 400 without `prefix: true`, OpenAI starts over); each test asserts the
body the fallback received.
"""

import json

import openai
import pytest

from providers_app.models import FailoverEvent, Provider
from providers_app.simulator import UpstreamSimulator
from tests.factories import provider_create

WORDS = [f"word{n}" for n in range(1, 61)]
ANSWER = " ".join(WORDS)  # 60 stream chunks: "word1", " word2", ...
FIRST_20 = " ".join(WORDS[:20])
HELLO = [{"role": "user", "content": "Tell me a long story."}]
FALLBACK_MODEL = "m-fallback"


@pytest.fixture(scope="module")
def third():
    with UpstreamSimulator("third") as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _simulators_speak_trailing_assistant_again(primary, secondary, third):
    third.reset()
    yield
    for simulator in (primary, secondary, third):
        simulator.set_continuation("trailing_assistant")  # session-wide simulators
    third.reset()


@pytest.fixture
def sdk(live_server, api_key, settings):
    # A stall is noticed after the idle limit; 1 s instead of 10 s keeps the
    # suite quick, and the rule is the production one.
    settings.FALLBACK_STREAM_IDLE_S = 1.0
    with openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=api_key, max_retries=0, timeout=30
    ) as client:
        yield client


def _cut_or_stall(primary, fault: str) -> None:
    if fault == "cut":
        primary.set_fault("truncate_stream", chunks=20, text=ANSWER)
    else:
        primary.set_fault("stall_stream", chunks=20, seconds=30, text=ANSWER)


def _primary(primary) -> Provider:
    # An openai_compatible provider at its defaults, on 127.0.0.1: no dialect.
    return provider_create(name="primary", base_url=primary.base_url, max_attempts=1)


def _fallback(name, simulator, dialect) -> Provider:
    return provider_create(
        name=name,
        base_url=simulator.base_url,
        model=FALLBACK_MODEL,
        max_attempts=1,
        continuation=dialect,
    )


def _read(sdk) -> tuple[str, dict]:
    chunks = list(sdk.chat.completions.create(model="fallback", messages=HELLO, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finisher = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    return text, finisher.model_extra["x_fallback"]


def _continuation_body(last_message: dict, **flags) -> dict:
    """What an openai_compatible adapter sends to continue FIRST_20."""
    return {
        "model": FALLBACK_MODEL,
        "messages": [*HELLO, last_message],
        "stream": True,
        "stream_options": {"include_usage": True},
        **flags,
    }


PARTIAL = {"role": "assistant", "content": FIRST_20}
DIALECT_BODIES = {
    "vllm": _continuation_body(PARTIAL, continue_final_message=True, add_generation_prompt=False),
    "prefix": _continuation_body({**PARTIAL, "prefix": True}),
    "trailing_assistant": _continuation_body(PARTIAL),
}


@pytest.mark.parametrize("fault", ["cut", "stall"])
@pytest.mark.parametrize("dialect", ["vllm", "prefix", "trailing_assistant"])
def test_a_fallback_speaking_each_dialect_finishes_the_answer_word_for_word(
    sdk, db, primary, secondary, fault, dialect
):
    _primary(primary)
    _fallback("fallback", secondary, dialect)
    secondary.set_continuation(dialect)
    secondary.set_fault("ok", text=ANSWER)
    _cut_or_stall(primary, fault)

    text, finished = _read(sdk)

    assert text == ANSWER  # no duplicated and no missing words
    assert finished == {"provider": "fallback", "continued_from": ["primary"]}
    assert json.loads(secondary.last_request["body"]) == DIALECT_BODIES[dialect]
    assert (primary.request_count, secondary.request_count) == (1, 1)


@pytest.mark.parametrize("fault", ["cut", "stall"])
@pytest.mark.parametrize(
    ("refusal", "server_speaks", "wording"),
    [
        # Set to a plain trailing assistant message, the server is Mistral: 400.
        ("400", "prefix", "Expected last role User or Tool"),
        # Set to a plain trailing assistant message, the server starts over (OpenAI).
        ("starts_over", "none", "started the answer over"),
    ],
)
def test_a_fallback_that_refused_is_switched_off_and_skipped_the_next_time(
    sdk, db, primary, secondary, third, fault, refusal, server_speaks, wording
):
    _primary(primary)
    refuser = _fallback("refuser", secondary, "trailing_assistant")
    _fallback("continuer", third, "vllm")
    secondary.set_continuation(server_speaks)
    secondary.set_fault("ok", text=ANSWER)
    third.set_continuation("vllm")
    third.set_fault("ok", text=ANSWER)

    _cut_or_stall(primary, fault)
    first_text, first_finished = _read(sdk)
    _cut_or_stall(primary, fault)
    second_text, second_finished = _read(sdk)

    assert first_text == second_text == ANSWER
    assert (
        first_finished
        == second_finished
        == {
            "provider": "continuer",
            "continued_from": ["primary"],
        }
    )
    # The refuser was asked once, in its configured dialect; the second time it
    # was skipped (lacks_prefill) and the continuer was asked straight away.
    assert secondary.request_count == 1
    assert json.loads(secondary.last_request["body"]) == DIALECT_BODIES["trailing_assistant"]
    assert third.request_count == 2
    assert json.loads(third.last_request["body"]) == {
        **DIALECT_BODIES["vllm"],
        "model": FALLBACK_MODEL,
    }
    refuser.refresh_from_db()
    assert refuser.continuation == "none"
    switched = FailoverEvent.objects.get(kind=FailoverEvent.Kind.CONTINUATION_OFF)
    assert switched.provider_id == refuser.pk
    assert switched.reason == "trailing_assistant"
    assert wording in switched.detail
