"""Reading and validating chat requests: bounded body reads and OpenAI's request shape.

Every check raises ``ApiError`` naming the offending field in ``param`` (with
OpenAI's dotted/indexed spelling, e.g. ``messages[2].content``), so no body,
however malformed, reaches the engine or turns into a 500. What is supported,
mapped, ignored or refused is listed in ``docs/clients.md``; the tables below
are the single place that decides it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from ..adapters import jsonsafe
from ..adapters.schema import (
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    valid_base64,
)
from ..adapters.schema_check import schema_problem
from ..conf import get_setting
from .errors import ApiError, bad_request

# OpenAI's `developer` role is the newer name of `system`.
ROLES: Mapping[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_IMAGE_DETAILS = ("auto", "low", "high")
MAX_STOP_SEQUENCES = 4  # OpenAI's own limit
MAX_TOKENS_LIMIT = 2**31 - 1  # above any real window; keeps absurd values away from vendors

# Fields whose meaning the service cannot honour: refused unless they hold their
# "off" value, because dropping them would silently change the answer's shape.
_OFF_VALUES: Mapping[str, tuple[Any, ...]] = {
    # The legacy function-calling fields: clients send `tools` instead.
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "logit_bias": (None, {}),
    "web_search_options": (None,),
}
# Sampling hints with no portable equivalent across vendors: validated like
# OpenAI does, then ignored (documented). Anything else unknown is ignored too.
_IGNORED_NUMBERS: Mapping[str, tuple[float, float]] = {
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
# Our own extension field (OpenAI SDKs send it with extra_body).
HOLD_BACK_FIELD = "x_fallback_hold_back"
_MESSAGE_REFUSED_KEYS = ("function_call", "audio")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


# ---------------------------------------------------------------------------
# The body
# ---------------------------------------------------------------------------


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"The request body is larger than the limit of {limit} bytes.",
        error_type="request_too_large",
        code="request_too_large",
    )


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without
    loading it: a declared Content-Length is checked before reading, and a body
    without one (chunked) is read only up to ``limit + 1`` bytes."""
    declared = request.META.get("CONTENT_LENGTH")
    length: int | None
    try:
        length = int(declared) if declared not in (None, "") else None
    except (TypeError, ValueError):
        length = None
    if length is not None and length > limit:
        raise too_large(limit)
    stream: Any = request
    if length is None and request.META.get("wsgi.input_terminated"):
        # Django reads nothing without a Content-Length; a server that de-chunks
        # (gunicorn) says so with wsgi.input_terminated, and its input ends.
        stream = request.META["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise too_large(limit)
    return b"".join(chunks)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def load_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object. NaN/Infinity and absurd nesting are malformed."""
    if not body.strip():
        raise bad_request("The request body is empty; send a JSON object.", param=None)
    try:
        data = jsonsafe.loads(body, parse_constant=_reject_constant)
    except ValueError as error:
        # UnicodeDecodeError is a ValueError, and so is nesting past jsonsafe's limit.
        raise bad_request(
            f"The request body is not valid JSON ({type(error).__name__}).",
            param=None,
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", param=None)
    return data


def request_id_from(request: HttpRequest) -> str | None:
    """A caller's X-Request-Id, if it is short and plain enough to log and echo."""
    value = request.headers.get("X-Request-Id", "")
    return value if _REQUEST_ID.match(value) else None


# ---------------------------------------------------------------------------
# The request
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatCompletionRequest:
    """A validated chat request: what the engine gets, and how to answer."""

    messages: tuple[Message, ...]
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    user: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    # x_fallback_hold_back: buffer the whole streamed answer before sending it
    # (docs/clients.md, "Hold-back"); meaningless without stream.
    hold_back: bool = False

    def engine_options(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            "user": self.user,
            "tools": self.tools,
            "tool_choice": self.tool_choice,
            "parallel_tool_calls": self.parallel_tool_calls,
            "response_format": self.response_format,
        }


def parse_chat_request(data: dict[str, Any]) -> ChatCompletionRequest:
    """Validate an OpenAI Chat Completions body; raise ApiError (400) naming the field."""
    _refuse_unsupported(data)
    for name, (low, high) in _IGNORED_NUMBERS.items():
        _number(data, name, low, high)
    _optional_int(data, "seed", low=-(2**63), high=2**63 - 1)
    n = _optional_int(data, "n", low=1, high=MAX_TOKENS_LIMIT)
    if n not in (None, 1):
        raise _unsupported("n", "Only one choice per request is supported (n must be 1).")
    stream = _optional_bool(data, "stream") or False
    include_usage = _include_usage(data.get("stream_options"))
    tools = _tools(data.get("tools"))
    return ChatCompletionRequest(
        messages=parse_messages(data.get("messages", _MISSING)),
        tools=tools,
        tool_choice=_tool_choice(data.get("tool_choice"), tools),
        parallel_tool_calls=_optional_bool(data, "parallel_tool_calls"),
        response_format=_response_format(data.get("response_format")),
        model=_optional_str(data, "model"),
        stream=stream,
        include_usage=stream and include_usage,
        max_tokens=_max_tokens(data),
        temperature=_number(data, "temperature", 0.0, 2.0),
        top_p=_number(data, "top_p", 0.0, 1.0),
        stop=_stop(data.get("stop")),
        user=_optional_str(data, "user"),
        hold_back=_optional_bool(data, HOLD_BACK_FIELD) or False,
    )


_MISSING = object()


def parse_messages(messages: Any) -> tuple[Message, ...]:
    """OpenAI messages as engine Messages: `developer` as `system`, tool calls and
    results paired (a result naming no earlier call is refused before any upstream
    call: vendors that pair by name would silently misattribute it)."""
    if messages is _MISSING or messages is None:
        raise bad_request("messages is required.", param="messages", code="missing_required")
    if not isinstance(messages, list):
        raise bad_request("messages must be a list of message objects.", param="messages")
    if not messages:
        raise bad_request("messages must not be empty.", param="messages")
    parsed: list[Message] = []
    calls: dict[str, ToolCall] = {}
    for i, raw in enumerate(messages):
        message = _message(raw, f"messages[{i}]")
        for call in message.tool_calls:
            calls[call.id] = call
        if message.role == "tool":
            call = calls.get(message.tool_call_id or "")
            if call is None:
                raise bad_request(
                    f"messages[{i}].tool_call_id {message.tool_call_id!r} answers no tool call "
                    "of an earlier assistant message.",
                    param=f"messages[{i}].tool_call_id",
                )
            message = Message(
                role="tool",
                content=message.content,
                tool_call_id=message.tool_call_id,
                name=call.name,
            )
        parsed.append(message)
    return tuple(parsed)


def _message(message: Any, where: str) -> Message:
    if not isinstance(message, dict):
        raise bad_request(f"{where} must be an object with role and content.", param=where)
    role = message.get("role")
    if role == "function":
        raise _unsupported(
            f"{where}.role", 'function messages (legacy) are not supported; use role "tool".'
        )
    if not isinstance(role, str) or role not in ROLES:
        raise bad_request(
            f"{where}.role must be one of system, developer, user, assistant, tool.",
            param=f"{where}.role",
        )
    for key in _MESSAGE_REFUSED_KEYS:
        if message.get(key) not in (None, [], {}):
            raise _unsupported(f"{where}.{key}", f"{where}.{key} is not supported.")
    tool_calls = _tool_calls(message.get("tool_calls"), f"{where}.tool_calls", role)
    if role == "assistant" and tool_calls and message.get("content") is None:
        return Message(role="assistant", content="", tool_calls=tool_calls)
    if "content" not in message:
        raise bad_request(f"{where}.content is required.", param=f"{where}.content")
    tool_call_id = None
    if role == "tool":
        tool_call_id = message.get("tool_call_id")
        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise bad_request(
                f"{where}.tool_call_id is required for tool messages.",
                param=f"{where}.tool_call_id",
            )
    # Images only where every vendor takes them: in user messages.
    images = role == "user"
    content = _content(message["content"], f"{where}.content", images=images)
    return Message(
        role=ROLES[role], content=content, tool_calls=tool_calls, tool_call_id=tool_call_id
    )


def _content(content: Any, where: str, *, images: bool) -> str | tuple[Any, ...]:
    """A string stays a string; a list of parts stays a list (text and image parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise bad_request(f"{where} must be a string or a non-empty list of parts.", param=where)
    parts: list[Any] = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise bad_request(f'{here} must be an object {{"type": "text", ...}}.', param=here)
        kind = part.get("type")
        if kind == "image_url" and images:
            parts.append(_image_part(part.get("image_url"), f"{here}.image_url"))
            continue
        if kind != "text":
            allowed = "text and image_url parts" if images else "text parts"
            if isinstance(kind, str):
                raise _unsupported(
                    f"{here}.type", f"Only {allowed} are supported here, not {kind[:40]!r}."
                )
            raise bad_request(f'{here}.type must be "text".', param=f"{here}.type")
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{here}.text must be a string.", param=f"{here}.text")
        parts.append(TextPart(text))
    return tuple(parts)


def _image_part(image: Any, where: str) -> ImagePart:
    if isinstance(image, str):  # a shorthand some clients send
        image = {"url": image}
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise bad_request(f"{where}.url must be a string.", param=f"{where}.url")
    url, detail = image["url"], image.get("detail")
    if detail is not None and detail not in _IMAGE_DETAILS:
        raise bad_request(f"{where}.detail must be auto, low or high.", param=f"{where}.detail")
    part = ImagePart(url=url, detail=detail)
    if url.startswith("data:"):
        inline = part.inline
        if inline is None or not valid_base64(inline[1]):
            raise bad_request(
                f"{where}.url must be a base64 data URL of an image (data:image/png;base64,...).",
                param=f"{where}.url",
            )
    elif not url.startswith("https://") and not url.startswith("http://"):
        raise bad_request(
            f"{where}.url must be an http(s) URL or a data: URL.", param=f"{where}.url"
        )
    return part


def _tool_calls(value: Any, where: str, role: str) -> tuple[ToolCall, ...]:
    if value in (None, []):
        return ()
    if role != "assistant":
        raise bad_request(f"{where} is only allowed on assistant messages.", param=where)
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list of tool calls.", param=where)
    calls = []
    for j, call in enumerate(value):
        here = f"{where}[{j}]"
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise bad_request(f'{here} must be a {{"type": "function", ...}} call.', param=here)
        function = call.get("function")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise bad_request(f"{here}.id must be a non-empty string.", param=f"{here}.id")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad_request(
                f"{here}.function.name must be a string.", param=f"{here}.function.name"
            )
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            raise bad_request(
                f"{here}.function.arguments must be a JSON string.",
                param=f"{here}.function.arguments",
            )
        signature = _thought_signature(call)
        calls.append(ToolCall(call_id, function["name"], arguments, thought_signature=signature))
    return tuple(calls)


def _thought_signature(call: dict[str, Any]) -> str | None:
    """Gemini's signature, returned by the client as the vendor extension we sent it in."""
    extra = call.get("extra_content")
    value = extra.get("google", {}).get("thought_signature") if isinstance(extra, dict) else None
    return value if isinstance(value, str) and value else None


def _tools(value: Any) -> tuple[Tool, ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, list):
        raise bad_request("tools must be a list of function tools.", param="tools")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _unsupported(f"{where}.type", 'Only {"type": "function"} tools are supported.')
        function = tool.get("function")
        if not isinstance(function, dict):
            raise bad_request(f"{where}.function must be an object.", param=f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise bad_request(
                f"{where}.function.name must be 1-64 letters, digits, _ or -.",
                param=f"{where}.function.name",
            )
        field = f"{where}.function"
        parameters = _optional_of(function, "parameters", dict, field, "a JSON schema object")
        description = _optional_of(function, "description", str, field, "a string")
        strict = _optional_of(function, "strict", bool, field, "true or false")
        tools.append(Tool(name, description, parameters, strict))
    if len({t.name for t in tools}) != len(tools):
        raise bad_request("tools must have distinct function names.", param="tools")
    return tuple(tools)


def _optional_of(obj: dict, key: str, kind: type, where: str, expected: str) -> Any:
    """`obj[key]` when absent, null or of `kind`; else a 400 naming `where.key`."""
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise bad_request(f"{where}.{key} must be {expected}.", param=f"{where}.{key}")
    return value


def _tool_choice(value: Any, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("none", "auto", "required"):
        choice = ToolChoice(value)
    elif (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("function"), dict)
        and isinstance(value["function"].get("name"), str)
    ):
        choice = ToolChoice("required", name=value["function"]["name"])
    else:
        raise bad_request(
            'tool_choice must be "none", "auto", "required" or '
            '{"type": "function", "function": {"name": ...}}.',
            param="tool_choice",
        )
    if choice.name is not None and choice.name not in {t.name for t in tools}:
        raise bad_request(
            f"tool_choice names {choice.name!r}, which is not among tools.", param="tool_choice"
        )
    if not tools:
        if choice.mode == "none":
            return None  # "no tools" said twice; some servers refuse a choice without tools
        raise bad_request("tool_choice needs tools.", param="tool_choice")
    return choice


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None or _same_json(value, {"type": "text"}):
        return None
    if not isinstance(value, dict):
        raise bad_request("response_format must be an object.", param="response_format")
    kind = value.get("type")
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise bad_request(
            "response_format.type must be text, json_object or json_schema.",
            param="response_format.type",
        )
    spec = value.get("json_schema")
    where = "response_format.json_schema"
    if not isinstance(spec, dict):
        raise bad_request(f"{where} must be an object.", param=where)
    name = spec.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
        raise bad_request(
            f"{where}.name must be 1-64 letters, digits, _ or -.", param=f"{where}.name"
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise bad_request(f"{where}.schema must be a JSON schema object.", param=f"{where}.schema")
    _check_schema(schema, f"{where}.schema")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request(f"{where}.strict must be true or false.", param=f"{where}.strict")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise bad_request(f"{where}.description must be a string.", param=f"{where}.description")
    return ResponseFormat(
        "json_schema", schema=schema, name=name, strict=bool(strict), description=description
    )


def _check_schema(schema: dict[str, Any], where: str) -> None:
    """A schema the answer could not be checked against, or that would cost the
    worker unbounded work, is refused before any call (adapters/schema_check.py)."""
    problem = schema_problem(
        schema,
        max_bytes=get_setting("SCHEMA_MAX_BYTES"),
        max_depth=get_setting("SCHEMA_MAX_DEPTH"),
    )
    if problem is None:
        return
    inside = "" if problem.where in ("", "(root)", "(schema)") else f".{problem.where}"
    raise bad_request(
        f"{where}{inside} is refused: {problem.message}.",
        param=f"{where}{inside}",
        code="invalid_schema",
    )


# ---------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------


def _unsupported(param: str, message: str) -> ApiError:
    return bad_request(message, param=param, code="unsupported_parameter")


def _refuse_unsupported(data: dict[str, Any]) -> None:
    for name, off in _OFF_VALUES.items():
        if name in data and not any(_same_json(data[name], value) for value in off):
            raise _unsupported(name, f"{name} is not supported by this service.")


def _same_json(value: Any, expected: Any) -> bool:
    # 0 == False in Python; JSON keeps booleans and numbers apart.
    return type(value) is type(expected) and value == expected


def _optional_bool(data: dict[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false.", param=name)
    return value


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{name} must be a string.", param=name)
    return value


def _optional_int(data: dict[str, Any], name: str, *, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}.", param=name)
    return value


def _number(data: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    # NaN and infinities fail the range test (json.loads turns 1e999 into inf).
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"{name} must be a number from {low:g} to {high:g}.", param=name)
    return float(value)


def _max_tokens(data: dict[str, Any]) -> int | None:
    legacy = _positive_tokens(data, "max_tokens")
    current = _positive_tokens(data, "max_completion_tokens")
    if legacy is not None and current is not None and legacy != current:
        raise bad_request(
            "max_tokens and max_completion_tokens disagree; send one of them.",
            param="max_completion_tokens",
        )
    return current if current is not None else legacy


def _positive_tokens(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise bad_request(f"{name} must be a positive integer.", param=name)
    return value


def _stop(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    sequences = [value] if isinstance(value, str) else value
    if not isinstance(sequences, list) or len(sequences) > MAX_STOP_SEQUENCES:
        raise bad_request(
            f"stop must be a string or a list of at most {MAX_STOP_SEQUENCES} strings.",
            param="stop",
        )
    for i, sequence in enumerate(sequences):
        if not isinstance(sequence, str) or not sequence:
            raise bad_request(f"stop[{i}] must be a non-empty string.", param="stop")
    return tuple(sequences) or None


def _include_usage(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict):
        raise bad_request("stream_options must be an object.", param="stream_options")
    value = options.get("include_usage")
    if value is not None and not isinstance(value, bool):
        raise bad_request(
            "stream_options.include_usage must be true or false.",
            param="stream_options.include_usage",
        )
    return bool(value)
