"""Issue 22 finding 1 through HTTP: a client's own misfit never counts against
shared state (DESIGN §4, §12; docs/engine.md, "The client's misfits").

Each test replays the attack on the documented API with production defaults
(breaker threshold 5 consecutive failures): one key's misfits must leave both
providers' breakers closed and uncounted, and another key's plain chats answered.
"""

import json

import pytest

from providers_app.conf import DEFAULTS
from providers_app.models import BreakerState
from providers_app.services.client_keys import client_key_create
from tests.factories import provider_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]
STRICT = {
    "type": "json_schema",
    "json_schema": {
        "name": "town",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"town": {"type": "string"}, "country": {"type": "string"}},
            "required": ["town", "country"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def chain(db, primary, secondary):
    """Primary then secondary, the model's defaults (two attempts each)."""
    return (
        provider_create(name="primary", base_url=primary.base_url, timeout_s=30.0),
        provider_create(name="secondary", base_url=secondary.base_url, timeout_s=30.0),
    )


@pytest.fixture
def other_auth(db) -> dict[str, str]:
    return {"Authorization": f"Bearer {client_key_create(name='bystander').raw_key}"}


def _post(client, auth, **fields):
    body = {"model": "fallback", "messages": HELLO, **fields}
    return client.post(URL, json.dumps(body), content_type="application/json", headers=auth)


def _breakers_untouched():
    for row in BreakerState.objects.all():
        assert (row.state, row.consecutive_failures, row.last_error) == ("closed", 0, ""), row
        assert row.cooldown_until is None


def _bystander_served(client, auth, primary):
    primary.reset()
    for _ in range(5):
        response = _post(client, auth)
        assert response.status_code == 200, response.content
        assert response["X-Fallback-Provider"] == "primary"


def test_json_object_answered_in_plain_text_is_the_clients_error_not_the_providers(
    client, auth, other_auth, chain, primary, secondary
):
    """The attack: six json_object requests answered in plain text (a model that
    ignores a JSON instruction) opened both breakers; now each is the client's
    422 after one failover, and the other key is served by the primary."""
    primary.set_fault("ok", text="Sure, here is your JSON: none.")
    secondary.set_fault("ok", text="I cannot do JSON today.")

    for _ in range(6):
        response = _post(client, auth, response_format={"type": "json_object"})
        assert response.status_code == 422, response.content
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("response_format_unmet", "response_format")
        assert "primary: the answer is not valid JSON" in error["message"]
        assert "secondary: the answer is not valid JSON" in error["message"]

    assert (primary.request_count, secondary.request_count) == (6, 6)  # never retried
    _breakers_untouched()
    _bystander_served(client, other_auth, primary)


def test_strict_schema_misfits_leave_the_breakers_closed(
    client, auth, other_auth, chain, primary, secondary
):
    """Valid JSON that cannot satisfy the strict schema: the client's 422."""
    for simulator in (primary, secondary):
        simulator.set_fault("ok", text='{"town": "Oslo"}')

    for _ in range(6):
        response = _post(client, auth, response_format=STRICT)
        assert response.status_code == 422, response.content
        assert "does not fit the strict schema" in response.json()["error"]["message"]

    _breakers_untouched()
    _bystander_served(client, other_auth, primary)


def test_a_misfit_fails_over_to_a_provider_that_meets_the_format(
    client, auth, chain, primary, secondary
):
    primary.set_fault("ok", text="plain words")

    response = _post(client, auth, response_format={"type": "json_object"})

    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "secondary"
    assert json.loads(response.json()["choices"][0]["message"]["content"])
    _breakers_untouched()


@pytest.mark.parametrize(
    ("schema", "param", "says"),
    [
        ({"$ref": "#"}, "response_format.json_schema.schema", "loops back"),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
            "response_format.json_schema.schema.properties.a.$ref",
            "does not resolve",
        ),
        (
            {"$ref": "http://169.254.169.254/latest/meta-data"},
            "response_format.json_schema.schema.$ref",
            "only local references",
        ),
        (
            {"type": "string", "pattern": "^(a)\\1$"},
            "response_format.json_schema.schema.pattern",
            "RE2",
        ),
        ({"type": "strnig"}, "response_format.json_schema.schema.type", "not a valid JSON schema"),
    ],
)
def test_a_schema_that_cannot_be_compiled_is_a_400_before_any_call(
    client, auth, chain, primary, secondary, schema, param, says
):
    """Was: 503 malformed_response for {"$ref": "#"}, and a breaker failure."""
    form = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": schema}}

    response = _post(client, auth, response_format=form)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, "invalid_schema")
    assert says in error["message"]
    assert (primary.request_count, secondary.request_count) == (0, 0)
    _breakers_untouched()


def test_schema_size_and_depth_are_capped(client, auth, chain, primary, settings):
    settings.FALLBACK_SCHEMA_MAX_DEPTH = DEFAULTS["SCHEMA_MAX_DEPTH"]
    deep: dict = {"type": "string"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"a": deep}}  # 81 levels
    big = {"type": "object", "properties": {f"p{i:05}": {"type": "string"} for i in range(4000)}}
    for schema, says in ((deep, "nested deeper than 64"), (big, "the limit is 65536")):
        form = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        response = _post(client, auth, response_format=form)
        assert response.status_code == 400
        assert says in response.json()["error"]["message"]
    assert primary.request_count == 0


def test_patterns_run_on_re2_so_a_catastrophic_pattern_cannot_freeze_the_worker(
    client, auth, chain, primary, secondary
):
    """Finding 2: `^(a+)+$` against 31 x "a" + "!" froze a worker under Python's
    `re` (2^31 backtracking steps). RE2 answers in linear time; the answer is
    the client's misfit. `\\pL` (RE2 syntax Python's `re` refuses) proves which
    engine runs the check."""
    form = {
        "type": "json_schema",
        "json_schema": {
            "name": "word",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"w": {"type": "string", "pattern": "^(a+)+$"}},
                "required": ["w"],
            },
        },
    }
    for simulator in (primary, secondary):
        simulator.set_fault("ok", text=json.dumps({"w": "a" * 31 + "!"}))

    response = _post(client, auth, response_format=form)

    assert response.status_code == 422
    assert "does not fit the strict schema at w: pattern" in response.json()["error"]["message"]

    form["json_schema"]["schema"]["properties"]["w"]["pattern"] = "^\\pL+$"
    primary.set_fault("ok", text=json.dumps({"w": "Ørsted"}))
    response = _post(client, auth, response_format=form)
    assert response.status_code == 200, response.content
    _breakers_untouched()


def test_huge_max_tokens_timing_out_non_streamed_is_the_clients_error(
    client, auth, other_auth, db, primary, secondary
):
    """Six kept-up non-streamed requests with max_tokens 60000 that time out used
    to count as provider failures (and refused other keys' chats). 60000 tokens
    at FALLBACK_EXPECTED_TOKENS_PER_S cannot fit a 1 s timeout: the client's 422."""
    for name, simulator in (("primary", primary), ("secondary", secondary)):
        provider_create(name=name, base_url=simulator.base_url, timeout_s=1.0)
        simulator.set_fault("hang")

    for _ in range(6):
        response = _post(client, auth, max_tokens=60000)
        assert response.status_code == 422, response.content
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("output_too_slow", "max_tokens")
        assert "60000 output tokens" in error["message"]

    assert (primary.request_count, secondary.request_count) == (6, 6)
    _breakers_untouched()
    primary.reset()
    response = _post(client, other_auth)
    assert response.status_code == 200


def test_a_silent_provider_still_counts_for_a_request_that_asks_little(
    client, auth, db, primary, secondary
):
    """The rule's other side: the same timeout with a small max_tokens is the
    provider's failure (a silent provider is not hidden)."""
    provider_create(name="primary", base_url=primary.base_url, timeout_s=1.0)
    provider_create(name="secondary", base_url=secondary.base_url, timeout_s=30.0)
    primary.set_fault("hang")

    response = _post(client, auth, max_tokens=50)

    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "secondary"
    row = BreakerState.objects.get(provider__name="primary")
    assert row.consecutive_failures == 1
