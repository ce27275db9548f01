"""Run one streamed response: frame it, decode it, police its time limits.

``run_stream`` is the same for every vendor. It reads the body in chunks under a
``StreamLimits`` (wall-clock first-token, idle, attempt and maximum-duration
limits; keep-alives do not count as progress), splits lines, frames them as SSE
or NDJSON, and hands each item to the vendor's ``StreamDecoder``. A stream is complete only once the
decoder saw its terminator or final finish reason; anything else is truncation.
Every failure leaves as a ``ProviderError`` that records whether model output
had already been yielded (the commit point) and what that output was.

A single event whose data does not decode is skipped, counted and logged rather
than ending the stream (see ``MAX_UNDECODABLE_IN_A_ROW``); the count travels on
the final delta as ``skipped_events``. What breaks the framing itself (a line
past ``MAX_LINE_BYTES``, a last event cut off without its terminator, a bare
JSON object that never closes) still fails the stream.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal

import requests

from . import jsonsafe
from .cancel import Cancellation, ClientGone
from .classify import (
    UndecodableEventError,
    classify_stream_error,
    content_filter_error,
    malformed_response_error,
    truncated_stream_error,
    undecodable_event_error,
)
from .errors import Category, ProviderError, ProviderTimeoutError
from .normalise import FinishReason, normalise_finish_reason, token_count
from .redaction import scrub_exact
from .schema import StreamDelta, ToolCallDelta
from .sse import (
    MAX_EVENT_BYTES,
    MAX_LINE_BYTES,
    LineTooLongError,
    SSEEvent,
    SSEParser,
    UnterminatedLine,
    iter_lines,
)
from .timing import StreamLimits
from .tool_ids import client_tool_id
from .transport import (
    TRANSPORT_EXCEPTIONS,
    ResponseMeta,
    Transport,
    abort,
    detached,
    release,
)

logger = logging.getLogger(__name__)

# Undecodable events tolerated back to back. One is a glitch (a proxy's stray
# debug line, a half-flushed write). Two can still be one: a payload written with
# a raw blank line inside it arrives as two events, neither of them JSON. Three in
# a row is no longer a glitch but a stream this code cannot follow, and guessing
# on would hand the client a mangled answer as a success.
MAX_UNDECODABLE_IN_A_ROW = 3

# What one streamed answer may hold in memory: its text and tool-call arguments
# (kept for a rescue, held back, checked against the response_format), each
# delta counted with DELTA_OVERHEAD_BYTES for the objects around it. The engine
# passes FALLBACK_STREAM_MAX_TEXT_BYTES. Past it the stream is a
# malformed_response: no model writes that much within a max_tokens, so an
# upstream that does is broken or hostile (the provider's failure).
MAX_TEXT_BYTES = 8 * 1024 * 1024
DELTA_OVERHEAD_BYTES = 256


def held_bytes(delta: StreamDelta) -> int:
    """What keeping ``delta`` costs, as the stream's text cap counts it."""
    size = DELTA_OVERHEAD_BYTES + len(delta.text.encode())
    for piece in delta.tool_calls:
        size += len(piece.arguments.encode()) + len(piece.name or "")
    return size


class StreamDecoder(ABC):
    """One vendor's stream events in, ``StreamDelta``s out; in-band errors raised.

    Subclasses implement ``feed``; set ``done`` on the terminator (``[DONE]``,
    ``message_stop``, ``done: true``) and ``raw_finish_reason`` when the vendor
    says why generation ended.
    """

    framing: ClassVar[Literal["sse", "ndjson"]] = "sse"
    accept_bare_json: ClassVar[bool] = False

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        meta: ResponseMeta,
        finish_reasons: Mapping[str, FinishReason],
        secrets: Iterable[str | None] = (),
        kind: str = "",
    ) -> None:
        self.kind = kind
        self.response_id: str | None = None  # the vendor's id for this answer, for tool ids
        self._tool_slots: dict[Any, int] = {}
        self._tool_has_args: dict[int, bool] = {}
        self.provider = provider
        self.model = model
        self.request_id = meta.request_id
        self.finish_reasons = finish_reasons
        self.secrets = tuple(secrets)
        self.done = False
        self.raw_finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_input_tokens: int | None = None
        self.skipped_events = 0  # undecodable events run_stream skipped

    @abstractmethod
    def feed(self, item: Any) -> Iterator[StreamDelta]:
        """Handle one SSE event (``SSEEvent``) or one NDJSON object."""

    @property
    def finished(self) -> bool:
        return self.done or self.raw_finish_reason is not None

    # -- helpers for subclasses ------------------------------------------------

    def output(self, text: str) -> StreamDelta:
        return StreamDelta(
            text=scrub_exact(text, self.secrets), model=self.model, request_id=self.request_id
        )

    # -- tool calls, as the OpenAI SDK accumulates them ------------------------
    # ``index`` numbers calls 0, 1, 2 … in order of first appearance (never a
    # vendor's content-block index); ``id`` and ``name`` go only on a call's first
    # piece, since the SDK concatenates every string field it sees again.

    def tool_start(
        self,
        key: Any,
        vendor_id: str | None,
        name: str,
        *,
        arguments: str = "",
        thought_signature: str | None = None,
    ) -> StreamDelta:
        index = self._tool_slots.setdefault(key, len(self._tool_slots))
        self._tool_has_args[index] = bool(arguments)
        piece = ToolCallDelta(
            index=index,
            id=client_tool_id(self.kind, self.response_id or self.request_id, vendor_id, index),
            name=name,
            arguments=arguments,
            thought_signature=thought_signature,
        )
        return self._tool_delta(piece)

    def tool_fragment(self, key: Any, arguments: str) -> StreamDelta | None:
        if not arguments or key not in self._tool_slots:
            return None
        index = self._tool_slots[key]
        self._tool_has_args[index] = True
        return self._tool_delta(ToolCallDelta(index=index, arguments=arguments))

    def tool_stop(self, key: Any) -> StreamDelta | None:
        """A call that streamed no argument text still needs ``{}``."""
        index = self._tool_slots.get(key)
        if index is None or self._tool_has_args[index]:
            return None
        self._tool_has_args[index] = True
        return self._tool_delta(ToolCallDelta(index=index, arguments="{}"))

    @property
    def saw_tool_calls(self) -> bool:
        return bool(self._tool_slots)

    def _tool_delta(self, piece: ToolCallDelta) -> StreamDelta:
        return StreamDelta(tool_calls=(piece,), model=self.model, request_id=self.request_id)

    def update(
        self,
        *,
        model: Any = None,
        input_tokens: Any = None,
        output_tokens: Any = None,
        cached_input_tokens: Any = None,
    ) -> None:
        """Keep the latest non-empty model name and token counts seen in the stream."""
        if isinstance(model, str) and model:
            self.model = model
        if token_count(input_tokens) is not None:
            self.input_tokens = input_tokens
        if token_count(output_tokens) is not None:
            self.output_tokens = output_tokens
        if token_count(cached_input_tokens) is not None:
            self.cached_input_tokens = cached_input_tokens

    def load_json(self, data: str, *, terminated: bool = True) -> Any:
        try:
            return jsonsafe.loads(data)
        except ValueError:
            if not terminated:
                # Cut off mid-event: the framing broke, not one event.
                raise truncated_stream_error(self.provider, request_id=self.request_id) from None
            raise self.undecodable("stream event is not JSON") from None

    def load_event(self, event: SSEEvent) -> dict[str, Any]:
        payload = self.load_json(event.data, terminated=event.terminated)
        if not isinstance(payload, dict):
            raise self.undecodable("stream event is not a JSON object")
        return payload

    def malformed(self, detail: str) -> ProviderError:
        return malformed_response_error(self.provider, detail, request_id=self.request_id)

    def undecodable(self, detail: str) -> UndecodableEventError:
        """One event this decoder cannot read; ``run_stream`` may skip it."""
        return undecodable_event_error(self.provider, detail, request_id=self.request_id)

    def in_band_error(self, payload: Any) -> ProviderError:
        return classify_stream_error(
            provider=self.provider,
            payload=payload,
            request_id=self.request_id,
            secrets=self.secrets,
        )

    def final(self) -> StreamDelta:
        """The closing delta: normalised finish reason and usage, or the filter outcome."""
        finish = normalise_finish_reason(self.raw_finish_reason, self.finish_reasons)
        if finish is FinishReason.CONTENT_FILTER:
            reason = self.raw_finish_reason or "content_filter"
            raise content_filter_error(self.provider, reason, request_id=self.request_id)
        if self.saw_tool_calls and finish is not FinishReason.LENGTH:
            finish = FinishReason.TOOL_CALLS  # vendors often say "stop" after a call
        return StreamDelta(
            finish_reason=finish.value,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            model=self.model,
            request_id=self.request_id,
            raw_finish_reason=self.raw_finish_reason,
            skipped_events=self.skipped_events,
        )


def run_stream(
    transport: Transport,
    response: requests.Response,
    decoder: StreamDecoder,
    clock: StreamLimits,
    *,
    max_event_bytes: int = MAX_EVENT_BYTES,
    max_text_bytes: int = MAX_TEXT_BYTES,
    cancellation: Cancellation | None = None,
) -> Iterator[StreamDelta]:
    """Yield the decoded deltas of an open 2xx ``response``; always close it.

    An event's data past ``max_event_bytes`` or an answer past
    ``max_text_bytes`` (see ``held_bytes``) ends the stream as a malformed_response.
    A ``cancellation`` (the client hung up) aborts the read at once and raises
    ``ClientGone``.
    """
    produced: list[str] = []
    held = 0
    body_ended = False  # then the connection goes back to the pool, else it is dropped
    skipped = _SkippedEvents(transport.provider, decoder)
    cancellation = cancellation or Cancellation()
    unregister = cancellation.on_cancel(lambda: abort(response))
    try:
        lines = iter_lines(
            transport.iter_chunks(response, clock),
            max_line_bytes=min(MAX_LINE_BYTES, max_event_bytes),
        )
        for item in _framed(lines, decoder, max_event_bytes):
            cancellation.raise_if_cancelled()
            try:
                for delta in decoder.feed(_payload(item, decoder)):
                    held += held_bytes(delta)
                    if held > max_text_bytes:
                        raise malformed_response_error(
                            transport.provider,
                            f"the answer is larger than {max_text_bytes} bytes",
                            request_id=decoder.request_id,
                        )
                    if delta.is_output:
                        clock.mark_output()
                        produced.append(delta.text)
                    yield delta
            except UndecodableEventError as error:
                skipped.record(error, item)
                continue
            skipped.decoded()
            if decoder.done:
                break
        if not decoder.finished:
            skipped.raise_if_they_were_the_end()
            raise truncated_stream_error(transport.provider, request_id=decoder.request_id)
        final = decoder.final()  # before the read below: a content filter raises here
        body_ended = transport.finish_body(response, clock)
        yield final
    except _once_cancelled(cancellation):
        raise ClientGone("the client went away") from None
    except ProviderError as failure:
        error = (
            _max_duration_reached(transport.provider, clock, decoder)
            if clock.reached_max_duration()
            else failure
        )
        raise _committed(error, produced, decoder) from None
    except LineTooLongError as exc:  # a line, or an event's data, past its cap
        error = malformed_response_error(
            transport.provider, str(exc), request_id=decoder.request_id
        )
        raise _committed(error, produced, decoder) from None
    except TRANSPORT_EXCEPTIONS as exc:
        if clock.reached_max_duration():
            error = _max_duration_reached(transport.provider, clock, decoder)
        else:
            error = transport.classify(exc, clock)
        raise _committed(error, produced, decoder) from detached(exc)
    finally:
        # An abandoned generator (GeneratorExit) lands here too: drop the connection.
        # Unregistered first, so that a late hang-up never shuts a pooled connection.
        unregister()
        release(response, fully_read=body_ended)
    if decoder.skipped_events:
        logger.warning(
            "provider=%s stream complete with %d undecodable event(s) skipped request_id=%s",
            transport.provider,
            decoder.skipped_events,
            decoder.request_id,
        )
    logger.debug(
        "provider=%s stream complete after %.3fs request_id=%s",
        transport.provider,
        clock.elapsed(),
        decoder.request_id,
    )


def _once_cancelled(cancellation: Cancellation) -> tuple[type[BaseException], ...]:
    """Once the client is gone every error is the hang-up's (the abort caused it)."""
    return (Exception,) if cancellation.cancelled else ()


def _framed(lines: Iterable[str], decoder: StreamDecoder, max_event_bytes: int) -> Iterator[Any]:
    """SSE events, or the non-blank lines of an NDJSON stream (decoded in ``_payload``)."""
    if decoder.framing == "sse":
        parser = SSEParser(
            accept_bare_json=decoder.accept_bare_json, max_event_bytes=max_event_bytes
        )
        yield from parser.events(lines)
        return
    yield from (line for line in lines if line.strip())


def _max_duration_reached(
    provider: str, clock: StreamLimits, decoder: StreamDecoder
) -> ProviderError:
    """Our own limit on a healthy stream's length: not the provider's failure."""
    return ProviderTimeoutError(
        f"stream reached its {clock.max_s:g}s maximum duration",
        provider=provider,
        category=Category.STREAM_MAX_DURATION,
        request_id=decoder.request_id,
    )


def _committed(error: ProviderError, produced: list[str], decoder: StreamDecoder) -> ProviderError:
    """Record on the error whether output was already yielded, and which."""
    if produced:
        error.output_produced = True
        error.partial_text = "".join(produced)
    # What the vendor had reported when the stream broke (Anthropic sends the
    # input count first): a cut stream is billed too (docs/usage.md).
    error.input_tokens = decoder.input_tokens
    error.output_tokens = decoder.output_tokens
    error.cached_input_tokens = decoder.cached_input_tokens
    error.request_id = error.request_id or decoder.request_id
    return error


def _payload(item: Any, decoder: StreamDecoder) -> Any:
    """What ``decoder.feed`` takes: the SSE event itself, or one NDJSON line's JSON."""
    if decoder.framing == "sse":
        return item
    return decoder.load_json(item, terminated=not isinstance(item, UnterminatedLine))


class _SkippedEvents:
    """Counts undecodable events: in the stream (on the decoder), and in a row."""

    def __init__(self, provider: str, decoder: StreamDecoder) -> None:
        self.provider = provider
        self.decoder = decoder
        self.in_a_row = 0

    def record(self, error: UndecodableEventError, item: Any) -> None:
        self.decoder.skipped_events += 1
        self.in_a_row += 1
        size = len(item.data if isinstance(item, SSEEvent) else item)
        # The event's data is never logged: it may carry the user's text.
        logger.warning(
            "provider=%s skipped an undecodable stream event (%s, %d chars; %d in a row, "
            "%d in this stream) request_id=%s",
            self.provider,
            error.message,
            size,
            self.in_a_row,
            self.decoder.skipped_events,
            self.decoder.request_id,
        )
        if self.in_a_row >= MAX_UNDECODABLE_IN_A_ROW:
            raise malformed_response_error(
                self.provider,
                f"{self.in_a_row} undecodable stream events in a row ({error.message})",
                request_id=self.decoder.request_id,
            )

    def decoded(self) -> None:
        self.in_a_row = 0

    def raise_if_they_were_the_end(self) -> None:
        """A stream that ends, unfinished, on undecodable events was not merely cut."""
        if self.in_a_row:
            raise malformed_response_error(
                self.provider,
                f"stream ended after {self.in_a_row} undecodable event(s)",
                request_id=self.decoder.request_id,
            )
