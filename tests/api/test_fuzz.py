"""No body, however malformed, gets a 500 from /v1/chat/completions."""

import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

URL = "/v1/chat/completions"
ROLES = ["system", "developer", "user", "assistant", "tool", "function"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def either(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly plausible values, sometimes anything at all."""
    return st.one_of(valid, valid, json_values)


parts = st.fixed_dictionaries(
    {"type": either(st.sampled_from(["text", "text", "image_url", "refusal"]))},
    optional={"text": either(st.text(max_size=10))},
)
messages = st.fixed_dictionaries(
    {
        "role": either(st.sampled_from(ROLES)),
        "content": either(st.text(max_size=20) | st.lists(parts, max_size=3)),
    },
    optional={"name": json_values, "tool_calls": json_values},
)
OPTIONS = {
    "model": either(st.text(max_size=10)),
    "temperature": either(st.floats(-1, 3)),
    "top_p": either(st.floats(-0.5, 1.5)),
    "max_tokens": either(st.integers(-2, 2**40)),
    "max_completion_tokens": either(st.integers(-2, 2**40)),
    "stop": either(st.text(max_size=4) | st.lists(st.text(max_size=4), max_size=5)),
    "stream_options": either(st.fixed_dictionaries({"include_usage": either(st.booleans())})),
    "user": either(st.text(max_size=10)),
    "n": either(st.integers(0, 3)),
    "seed": either(st.integers()),
    "presence_penalty": either(st.floats(-3, 3)),
    "tools": json_values,
    "tool_choice": either(st.sampled_from(["none", "auto", "required"])),
    "logprobs": json_values,
    "response_format": either(st.sampled_from([{"type": "text"}, {"type": "json_object"}])),
    "modalities": json_values,
    "logit_bias": json_values,
}
requests = st.fixed_dictionaries(
    {"messages": either(st.lists(messages, min_size=1, max_size=3))},
    optional=OPTIONS,
)
bodies = (
    requests.map(json.dumps)
    | requests.map(json.dumps)
    | json_values.map(json.dumps)
    | st.binary(max_size=48).map(lambda b: b.decode("latin-1"))
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, stream=st.booleans())
def test_random_bodies_never_get_a_500(client, auth, providers, body, stream):
    if stream and body.startswith("{") and body.endswith("}") and len(body) > 2:
        body = body[:-1] + ', "stream": true}'  # drive the streaming path too

    response = client.post(URL, body, content_type="application/json", headers=auth)

    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 413, 503), response.content
    if response.status_code != 200:
        error = response.json()["error"]
        assert {"type", "message", "param", "code"} <= set(error)
    elif response.streaming:
        assert b"".join(response.streaming_content).endswith(b"data: [DONE]\n\n")
    else:
        assert response.json()["object"] == "chat.completion"


valid_requests = st.fixed_dictionaries(
    {
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["system", "developer", "user", "assistant"]),
                    "content": st.text(max_size=20)
                    | st.lists(
                        st.fixed_dictionaries(
                            {"type": st.just("text"), "text": st.text(max_size=8)}
                        ),
                        min_size=1,
                        max_size=3,
                    ),
                }
            ),
            min_size=1,
            max_size=3,
        ),
        "stream": st.booleans(),
    },
    optional={
        "model": st.text(max_size=10),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 2**31 - 1),
        "stop": st.text(min_size=1, max_size=4)
        | st.lists(st.text(min_size=1, max_size=4), max_size=4),
        "user": st.text(max_size=10),
        "n": st.just(1),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    },
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=valid_requests)
def test_valid_requests_are_answered(client, auth, providers, body):
    response = client.post(URL, json.dumps(body), content_type="application/json", headers=auth)

    assert response.status_code == 200, response.content
    if body["stream"]:
        assert b"".join(response.streaming_content).endswith(b"data: [DONE]\n\n")
    else:
        assert response.json()["choices"][0]["message"]["content"]
