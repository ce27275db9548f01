"""Does an answer fit the request? An answer that does not is a malformed response.

One rule for every vendor, streamed or not: an answer with no text and no tool
calls is not an answer; under ``response_format`` ``json_object``/``json_schema``
the text must be JSON, and under a ``strict`` schema it must fit the client's
original schema (not the vendor-reduced one). Tool-call arguments must be JSON.
The engine fails such an answer over like any other ``malformed_response``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import jsonschema

from .schema import ChatRequest, ToolCall


def answer_misfit(request: ChatRequest, text: str, tool_calls: Sequence[ToolCall]) -> str | None:
    """Why the answer does not fit ``request``, or None when it does.

    For a continuation (``request.continue_final``) the answer is the partial
    answer already delivered followed by ``text``; the empty continuation of an
    answer that was complete but for its terminating chunk is an answer too.
    """
    prefill = request.prefill_text
    if prefill is not None:
        text = prefill + text
    if not text and not tool_calls:
        return "the answer has no text and no tool calls"
    for call in tool_calls:
        try:
            json.loads(call.arguments or "{}")
        except ValueError:
            return f"the arguments of tool call {call.name!r} are not JSON"
    form = request.response_format
    if form is None or tool_calls:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return f"the answer is not valid JSON under response_format {form.type}"
    if form.type == "json_schema" and form.strict and form.schema is not None:
        try:
            jsonschema.validate(value, dict(form.schema))
        except jsonschema.ValidationError as error:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return f"the answer does not fit the strict schema at {where}: {error.validator}"
        except jsonschema.SchemaError:
            return None  # the client's own schema is broken: nothing to hold the answer to
    return None
