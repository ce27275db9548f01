"""Capabilities: a request never reaches a provider that would drop part of it."""

import json

import pytest

from providers_app.models import FailoverEvent, Provider
from providers_app.services.providers import provider_export, provider_import

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
HELLO = [{"role": "user", "content": "Weather in Oslo?"}]


def post(client, body, auth):
    return client.post(
        "/v1/chat/completions", data=json.dumps(body), content_type="application/json", **auth
    )


@pytest.fixture
def http_auth(auth):
    return {"HTTP_AUTHORIZATION": auth["Authorization"]}


def test_a_provider_without_tools_receives_no_request_carrying_tools(
    client, http_auth, providers, primary, secondary
):
    Provider.objects.filter(name="primary").update(supports_tools=False)

    response = post(client, {"messages": HELLO, "tools": TOOLS}, http_auth)

    assert response.status_code == 200, response.content
    assert response["X-Fallback-Provider"] == "secondary"
    assert primary.request_count == 0
    assert secondary.last_request["json"]["tools"] == TOOLS
    # A skip, not a failure: no failover event, no call.
    assert not FailoverEvent.objects.filter(kind=FailoverEvent.Kind.FAILOVER).exists()


def test_a_history_with_tool_calls_also_needs_tools(client, http_auth, providers, primary):
    Provider.objects.update(supports_tools=False)
    messages = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]

    response = post(client, {"messages": messages}, http_auth)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools"
    assert primary.request_count == 0


def test_no_capable_provider_is_a_400_naming_tools_before_any_call(
    client, http_auth, providers, primary, secondary
):
    Provider.objects.update(supports_tools=False)

    response = post(client, {"messages": HELLO, "tools": TOOLS}, http_auth)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "tools"
    assert error["capability"] == "tools"
    assert error["code"] == "capability_unavailable"
    assert "tools" in error["message"]
    assert (primary.request_count, secondary.request_count) == (0, 0)


@pytest.mark.parametrize(
    ("field", "body", "param"),
    [
        (
            "supports_structured_output",
            {"response_format": {"type": "json_object"}},
            "response_format",
        ),
        (
            "supports_images",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                        ],
                    }
                ]
            },
            "messages",
        ),
    ],
)  # fmt: skip
def test_structured_output_and_images_are_capabilities_too(
    client, http_auth, providers, primary, secondary, field, body, param
):
    Provider.objects.update(**{field: False})

    response = post(client, {"messages": HELLO, **body}, http_auth)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert (primary.request_count, secondary.request_count) == (0, 0)


def test_a_request_without_special_needs_is_not_filtered(client, http_auth, providers, primary):
    Provider.objects.update(supports_tools=False, supports_images=False)

    response = post(client, {"messages": HELLO}, http_auth)

    assert response.status_code == 200
    assert primary.request_count == 1


def test_a_wire_limit_skips_the_provider_that_cannot_express_the_request(
    client, http_auth, providers, primary, secondary
):
    # Ollama's API has no tool_choice: a forced call cannot be carried there.
    Provider.objects.filter(name="primary").update(kind="ollama", base_url=primary.base_url)

    response = post(
        client, {"messages": HELLO, "tools": TOOLS, "tool_choice": "required"}, http_auth
    )

    assert response.status_code == 200, response.content
    assert response["X-Fallback-Provider"] == "secondary"
    assert primary.request_count == 0


def test_capabilities_travel_through_export_and_import(db, make_provider):
    make_provider(name="vision-less", supports_images=False, continuation="trailing_assistant")

    exported = provider_export()
    entry = next(p for p in exported["providers"] if p["name"] == "vision-less")
    assert (entry["supports_images"], entry["continuation"], entry["supports_tools"]) == (
        False,
        "trailing_assistant",
        None,
    )

    entry["supports_tools"] = False
    provider_import(data={"providers": [entry]})
    assert Provider.objects.get(name="vision-less").supports_tools is False


def test_import_refuses_a_capability_that_is_not_a_boolean(db, make_provider):
    from providers_app.services.providers import ProviderImportError

    make_provider(name="p")
    with pytest.raises(ProviderImportError) as raised:
        provider_import(data={"providers": [{"name": "p", "supports_tools": "sometimes"}]})
    assert [problem.field for problem in raised.value.problems] == ["supports_tools"]
