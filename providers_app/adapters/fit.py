"""Does an answer fit the request? Whose fault is it when it does not?

One rule for every vendor, streamed or not. An answer with no text and no tool
calls, or tool-call arguments that are not JSON, is the provider's
``malformed_response``. Under ``response_format`` ``json_object``/``json_schema``
the text must be JSON, and under a ``strict`` schema it must fit the client's
original schema (not the vendor-reduced one: the client asked for it, and the
next provider of the route may enforce what this one only saw as a
description). Missing the client's own format is the client's misfit,
``response_format_unmet``: it may fail over, but it never counts against the
provider (DESIGN §4, §12). The schema check itself is bounded work
(``schema_check.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from . import jsonsafe
from .errors import Category
from .schema import ChatRequest, ToolCall
from .schema_check import SchemaCheckTooLong, validate_answer


@dataclass(frozen=True)
class Misfit:
    """Why an answer does not fit, and which category of failure that is."""

    reason: str
    category: Category = Category.MALFORMED_RESPONSE


def answer_misfit(request: ChatRequest, text: str, tool_calls: Sequence[ToolCall]) -> Misfit | None:
    """Why the answer does not fit ``request``, or None when it does.

    For a continuation (``request.continue_final``) the answer is the partial
    answer already delivered followed by ``text``; the empty continuation of an
    answer that was complete but for its terminating chunk is an answer too.
    """
    prefill = request.prefill_text
    if prefill is not None:
        text = prefill + text
    if not text and not tool_calls:
        return Misfit("the answer has no text and no tool calls")
    for call in tool_calls:
        try:
            json.loads(call.arguments or "{}")
        except ValueError:
            return Misfit(f"the arguments of tool call {call.name!r} are not JSON")
    form = request.response_format
    if form is None or tool_calls:
        return None
    unmet = Category.RESPONSE_FORMAT_UNMET
    try:
        value = jsonsafe.loads(text)
    except jsonsafe.NestedTooDeep:  # the provider's oddity, not the client's
        return Misfit("the answer is JSON nested too deep to read")
    except ValueError:
        return Misfit(f"the answer is not valid JSON under response_format {form.type}", unmet)
    if form.type == "json_schema" and form.strict and form.schema is not None:
        try:
            error = validate_answer(value, form.schema)
        except SchemaCheckTooLong:
            return Misfit("checking the answer against the schema took too many steps", unmet)
        except Exception as exc:  # the client's schema cannot be applied (the API refuses most)
            return Misfit(f"the schema cannot be applied ({type(exc).__name__})", unmet)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return Misfit(
                f"the answer does not fit the strict schema at {where}: {error.validator}", unmet
            )
    return None
