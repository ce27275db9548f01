"""Streaming bodies: OpenAI SSE for the API, NDJSON for the chatbot page.

The engine routes until the first model output before a response starts, so
failover before that point is invisible and the headers can already name the
provider. After it, the engine may have another provider continue the answer
(the last chunk then names it in ``x_fallback``); when none can, a failure
ends the body with an error event marked ``partial``; the OpenAI SSE stream
then has no ``[DONE]``, so OpenAI clients raise instead of returning a
truncated answer as if it were whole.

A client that goes away closes the response: ``StreamBody.close`` then abandons
the engine stream, which returns a half-open probe slot instead of blaming the
provider.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.http import StreamingHttpResponse

from ..adapters.cancel import ClientGone
from ..adapters.schema import ToolCallDelta
from ..engine.fallback import ChatStream, StreamChunk, StreamInterrupted
from .errors import stream_error_payload
from .rendering import (
    ChunkBuilder,
    fallback_headers,
    finish_reason,
    finisher,
    tool_call_delta_body,
    usage,
)

logger = logging.getLogger("providers_app.api")

SSE_DONE = b"data: [DONE]\n\n"


def sse_event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


def ndjson_line(payload: Mapping[str, Any]) -> bytes:
    return _dumps(payload) + b"\n"


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class _Tally:
    """What the last chunks said about the end of the answer."""

    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def add(self, chunk: StreamChunk) -> None:
        self.finish_reason = chunk.finish_reason or self.finish_reason
        if chunk.input_tokens is not None:
            self.input_tokens = chunk.input_tokens
        if chunk.output_tokens is not None:
            self.output_tokens = chunk.output_tokens


def _relay(
    stream: ChatStream,
    *,
    start: Callable[[], bytes],
    text: Callable[[str], bytes],
    tool_call: Callable[[ToolCallDelta], bytes],
    end: Callable[[_Tally], bytes],
    error: Callable[[dict[str, Any]], bytes],
) -> Iterator[bytes]:
    """Drive the engine stream and frame each part; the framing is the caller's."""
    chunks = iter(stream)
    tally = _Tally()
    try:
        yield start()
        for chunk in chunks:
            if chunk.text:
                yield text(chunk.text)
            for piece in chunk.tool_calls:
                yield tool_call(piece)
            tally.add(chunk)
        yield end(tally)
    except ClientGone:
        return  # nobody is reading: the engine released the provider
    except Exception as failure:  # StreamInterrupted, or a bug of ours mid-stream
        if not isinstance(failure, StreamInterrupted):
            logger.exception("stream failed request_id=%s", stream.request_id)
        yield error(stream_error_payload(failure, provider=stream.provider))
    finally:
        chunks.close()  # the engine settles the breaker permit in its own finally


def openai_sse(stream: ChatStream, *, include_usage: bool) -> Iterator[bytes]:
    """`chat.completion.chunk` events ending in `[DONE]`, or in an error event."""
    builder = ChunkBuilder(stream, include_usage=include_usage)

    def end(tally: _Tally) -> bytes:
        events = sse_event(builder.finish(tally.finish_reason, stream))
        if include_usage:
            events += sse_event(builder.usage(tally.input_tokens, tally.output_tokens, stream))
        return events + SSE_DONE

    return _relay(
        stream,
        start=lambda: sse_event(builder.role()),
        text=lambda text: sse_event(builder.content(text)),
        tool_call=lambda piece: sse_event(builder.tool_call(piece)),
        end=end,
        error=sse_event,
    )


def chat_page_ndjson(stream: ChatStream) -> Iterator[bytes]:
    """One JSON object per line for the chatbot page: meta, deltas, then done or error."""

    def start() -> bytes:
        return ndjson_line(
            {
                "type": "meta",
                "provider": stream.provider,
                "model": stream.model,
                "attempts": stream.attempts,
                "failovers": stream.failovers,
                "failed": [
                    {"provider": f.provider, "reason": str(f.reason)} for f in stream.failures
                ],
                "skipped": [
                    {"provider": s.provider, "reason": str(s.reason)} for s in stream.skipped
                ],
                "request_id": stream.request_id,
            }
        )

    def end(tally: _Tally) -> bytes:
        return ndjson_line(
            {
                "type": "done",
                "finish_reason": finish_reason(tally.finish_reason),
                "usage": usage(tally.input_tokens, tally.output_tokens),
                **finisher(stream),
            }
        )

    def error(payload: dict[str, Any]) -> bytes:
        details = dict(payload["error"])
        return ndjson_line({**details, "type": "error", "error_type": details["type"]})

    return _relay(
        stream,
        start=start,
        text=lambda text: ndjson_line({"type": "delta", "text": text}),
        tool_call=lambda piece: ndjson_line({"type": "tool_call", **tool_call_delta_body(piece)}),
        end=end,
        error=error,
    )


class StreamBody:
    """A response body that abandons the engine stream when the response is closed
    early (Django calls `close()` on it when the client goes away or finishes)."""

    def __init__(
        self,
        events: Iterator[bytes],
        stream: ChatStream,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._events = events
        self._stream = stream
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._events)

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()  # runs the relay's finally if it started
        self._stream.close()  # a no-op once the engine settled the stream
        if self._on_close is not None:
            self._on_close()


def streaming_response(
    stream: ChatStream,
    events: Iterator[bytes],
    *,
    content_type: str,
    on_close: Callable[[], None] | None = None,
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        StreamBody(events, stream, on_close), content_type=content_type
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold the chunks back
    for name, value in fallback_headers(stream).items():
        response[name] = value
    return response
