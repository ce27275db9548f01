"""What a healthy simulated upstream answers, given the request: text, JSON or a tool call.

Deterministic, so the demo and the tests can exercise tools, structured output
and images without a real model:

- tools offered (and ``tool_choice`` not ``none``) and the last message is not a
  tool result: call the named tool, else the first one, with arguments built
  from its schema and filled from the prompt as a model would ("the weather in
  Paris?" calls ``get_weather`` with ``{"city": "Paris"}``);
- the last message is a tool result: say what the tool returned;
- ``response_format`` ``json_object``/``json_schema``: a JSON value fitting the
  schema (strings carry the usual greeting);
- images in the last user message: the greeting says how many it saw.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    text: str
    tool_call: dict[str, Any] | None = None  # {"name", "arguments"} (arguments: JSON text)


def plan_answer(request: dict[str, Any], greeting: str) -> Answer:
    messages = [m for m in request.get("messages") or () if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    tools = [t for t in request.get("tools") or () if isinstance(t, dict)]
    choice = request.get("tool_choice")
    if last.get("role") == "tool":
        return Answer(f"{greeting} The tool said: {_text(last.get('content'))}")
    if tools and choice != "none":
        tool = _chosen_tool(tools, choice)
        if tool is not None:
            function = tool.get("function") or {}
            parameters = function.get("parameters") or {"type": "object"}
            arguments = sample_value(parameters, prompt_subject(_text(last.get("content"))))
            return Answer(
                "", {"name": function.get("name", ""), "arguments": json.dumps(arguments)}
            )
    form = request.get("response_format") or {}
    if form.get("type") == "json_object":
        return Answer(json.dumps({"answer": greeting}))
    if form.get("type") == "json_schema":
        schema = (form.get("json_schema") or {}).get("schema") or {"type": "object"}
        return Answer(json.dumps(sample_value(schema, greeting)))
    images = _image_count(last)
    if images:
        return Answer(f"{greeting} I see {images} image{'s' if images > 1 else ''}.")
    return Answer(greeting)


def _chosen_tool(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if (t.get("function") or {}).get("name") == name), None)
    return tools[0]


def sample_value(schema: Any, greeting: str, defs: dict[str, Any] | None = None) -> Any:
    """A value of ``schema``: every property filled, first enum value, first anyOf branch."""
    if not isinstance(schema, dict):
        return greeting
    defs = {**(defs or {}), **schema.get("$defs", {})}
    if "$ref" in schema:
        return sample_value(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), greeting, defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample_value(schema[key][0], greeting, defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: sample_value(sub, greeting, defs) for name, sub in properties.items()}
    if kind == "array":
        return [sample_value(schema.get("items") or {}, greeting, defs)]
    return {"string": greeting, "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(
        kind, greeting
    )


def prompt_subject(prompt: str) -> str:
    """What a tool would be asked about: the last name in the prompt (a capitalised
    word not opening a sentence: "in Paris", "for New York"), else the prompt itself."""
    names = re.findall(r"(?<![.?!]\s)(?<!^)\b([A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)", prompt.strip())
    return names[-1] if names else prompt.strip()[:60]


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _image_count(message: dict[str, Any]) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
