"""The simulator's healthy answers: tool calls, JSON fitting the schema, image counts."""

import json

import jsonschema
from pydantic import BaseModel

from providers_app.simulator.answers import plan_answer

GREETING = "Hello from primary."
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


class Place(BaseModel):
    city: str
    population: int | None


class Trip(BaseModel):
    places: list[Place]
    note: str


def test_json_schema_answers_fit_nested_schemas_with_refs():
    schema = Trip.model_json_schema()  # $defs, $ref and anyOf, as SDK clients send them
    request = {
        "messages": [{"role": "user", "content": "Plan."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    }
    value = json.loads(plan_answer(request, GREETING).text)
    jsonschema.validate(value, schema)
    assert value["note"] == GREETING


def test_tools_are_called_unless_choice_is_none_or_the_result_is_in():
    ask = {"role": "user", "content": "Go."}
    call = plan_answer({"messages": [ask], "tools": [TOOL]}, GREETING)
    assert call.tool_call == {"name": "lookup", "arguments": "{}"}
    assert plan_answer({"messages": [ask], "tools": [TOOL], "tool_choice": "none"}, GREETING) == (
        plan_answer({"messages": [ask]}, GREETING)
    )
    result = {"role": "tool", "tool_call_id": "c", "content": "42"}
    assert plan_answer({"messages": [ask, result], "tools": [TOOL]}, GREETING).text == (
        f"{GREETING} The tool said: 42"
    )


def test_images_are_counted():
    parts = [{"type": "text", "text": "?"}] + [{"type": "image_url", "image_url": {"url": "x"}}] * 2
    answer = plan_answer({"messages": [{"role": "user", "content": parts}]}, GREETING)
    assert answer.text == f"{GREETING} I see 2 images."


def test_tool_arguments_are_filled_from_the_prompt_like_a_model_would():
    from providers_app.simulator.traffic import TOOL_CALL_EXAMPLE

    call = plan_answer(TOOL_CALL_EXAMPLE, GREETING).tool_call
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    ask = {"role": "user", "content": "Is it raining in New York today?"}
    weather = TOOL_CALL_EXAMPLE["tools"]
    arguments = plan_answer({"messages": [ask], "tools": weather}, GREETING).tool_call["arguments"]
    assert json.loads(arguments) == {"city": "New York"}
