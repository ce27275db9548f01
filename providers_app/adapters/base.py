"""The adapter contract: request/result types and the ``ProviderAdapter`` base class.

Adapters are pure ``requests`` + stdlib: no Django, configuration arrives as an
``AdapterConfig``. The base class owns everything that is the same for every
vendor (session, auth header, limits, reading bodies, classifying failures,
running streams); a vendor module only says how to build its requests and how
to read its responses.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar

import requests

from . import jsonsafe
from .cancel import Cancellation
from .classify import (
    classify_response,
    content_filter_error,
    malformed_response_error,
    missing_key_error,
    request_id_from,
    unexpected_redirect_error,
)
from .errors import Category, ProviderError
from .fit import answer_misfit
from .normalise import FinishReason, normalise_finish_reason
from .redaction import scrub_exact
from .schema import (
    AdapterConfig,
    ChatRequest,
    ChatResult,
    Completion,
    Message,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
)
from .sse import MAX_EVENT_BYTES
from .streaming import MAX_TEXT_BYTES, StreamDecoder, run_stream
from .timing import Deadline, StreamLimits
from .transport import (
    MAX_BODY_BYTES,
    MAX_ERROR_BODY_BYTES,
    HeaderAuth,
    HttpCall,
    ResponseMeta,
    Transport,
    build_session,
    meta_of,
    release,
)

__all__ = [
    "AdapterConfig",
    "ChatRequest",
    "ChatResult",
    "Completion",
    "Message",
    "ProviderAdapter",
    "StreamDelta",
]

logger = logging.getLogger(__name__)


class ProviderAdapter(ABC):
    """One vendor wire format. Every failure leaves as a classified ``ProviderError``."""

    kind: ClassVar[str]
    requires_api_key: ClassVar[bool] = True
    finish_reasons: ClassVar[Mapping[str, FinishReason]]
    stream_decoder_class: ClassVar[type[StreamDecoder]]

    def __init__(self, config: AdapterConfig, *, session: requests.Session | None = None) -> None:
        self.config = config
        self._owns_session = session is None
        self.session = build_session(config.base_url) if session is None else session
        auth = self._auth_header()
        self._transport = Transport(
            self.session,
            provider=config.provider,
            auth=HeaderAuth(*auth) if auth else None,
            connect_timeout_s=config.connect_timeout_s,
            secrets=(config.api_key,),
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} provider={self.config.provider!r} "
            f"model={self.config.model!r} base_url={self.config.base_url!r}>"
        )

    def __enter__(self) -> ProviderAdapter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the contract -----------------------------------------------------------

    def complete(self, request: ChatRequest, *, timeout: float) -> ChatResult:
        """One chat completion; ``timeout`` bounds the whole attempt on the wall clock."""
        deadline = Deadline(timeout)
        self._require_key()
        response, meta = self._open(self._chat_call(request, stream=False), deadline)
        payload = self._read_json(response, meta, deadline)
        result = self._completion_result(payload, meta, deadline)
        misfit = answer_misfit(request, result.text, result.tool_calls)
        if misfit:
            raise self._malformed(misfit.reason, meta, category=misfit.category)
        return result

    def stream(
        self,
        request: ChatRequest,
        *,
        timeout: float,
        first_token_timeout: float,
        idle_timeout: float,
        max_duration: float | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_text_bytes: int = MAX_TEXT_BYTES,
        cancellation: Cancellation | None = None,
    ) -> Iterator[StreamDelta]:
        """Yield deltas as they arrive; closing the generator closes the response.

        Once output was yielded, ``timeout`` no longer applies: the stream is
        limited by ``idle_timeout`` and ``max_duration`` (see ``StreamLimits``).
        Raises ``ProviderError``; once output was yielded, the error carries
        ``output_produced=True`` and the ``partial_text`` already yielded.
        Memory is capped: one event's data at ``max_event_bytes``, the answer at
        ``max_text_bytes`` (``streaming.run_stream``). ``cancellation`` (the
        client hung up) stops the read at once with ``ClientGone``.
        """
        clock = StreamLimits(
            timeout, first_token_s=first_token_timeout, idle_s=idle_timeout, max_s=max_duration
        )
        self._require_key()
        response, meta = self._open(self._chat_call(request, stream=True), clock)
        decoder = self._stream_decoder(meta)
        if decoder.framing == "sse" and _is_json(meta):
            # A server (or proxy) that ignored stream=true answered with one JSON body.
            result = self._completion_result(self._read_json(response, meta, clock), meta, clock)
            deltas = _as_deltas(result)
        else:
            deltas = run_stream(
                self._transport,
                response,
                decoder,
                clock,
                max_event_bytes=max_event_bytes,
                max_text_bytes=max_text_bytes,
                cancellation=cancellation,
            )
        yield from self._checked_stream(request, deltas)

    def _checked_stream(
        self, request: ChatRequest, deltas: Iterator[StreamDelta]
    ) -> Iterator[StreamDelta]:
        """Hold the finished stream to the same fit rule as a whole answer (``fit.py``).

        The check can only run at the end: a misfit after output was forwarded
        ends the stream as an interrupted, partial answer.
        """
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        names: dict[int, str] = {}
        try:
            for delta in deltas:
                text.append(delta.text)
                for piece in delta.tool_calls:
                    calls.setdefault(piece.index, []).append(piece.arguments)
                    if piece.name:
                        names[piece.index] = piece.name
                if delta.finish_reason is not None:
                    tool_calls = [
                        ToolCall(id="", name=names.get(i, ""), arguments="".join(parts))
                        for i, parts in sorted(calls.items())
                    ]
                    misfit = answer_misfit(request, "".join(text), tool_calls)
                    if misfit:
                        error = self._malformed(misfit.reason, category=misfit.category)
                        if any(text) or calls:
                            error.output_produced = True
                            error.partial_text = "".join(text)
                        raise error
                yield delta
        finally:
            close = getattr(deltas, "close", None)
            if close:
                close()

    def probe(self, *, timeout: float) -> None:
        """The cheapest call proving key and reachability (docs/vendors.md, "Health probes")."""
        deadline = Deadline(timeout)
        self._require_key()
        payload, meta = self._exchange(self._probe_call(), deadline)
        self._check_probe(payload, meta)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    # -- what a vendor module provides -----------------------------------------

    @abstractmethod
    def _auth_header(self) -> tuple[str, str] | None:
        """The (header, value) carrying the key, or None to send no credentials."""

    @abstractmethod
    def _chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall: ...

    @abstractmethod
    def _parse_completion(self, payload: Any, meta: ResponseMeta) -> Completion:
        """Read a 2xx body; raise ``ProviderError`` for in-band failures (blocked prompt)."""

    def _stream_decoder(self, meta: ResponseMeta) -> StreamDecoder:
        """A fresh decoder for one streamed response."""
        return self.stream_decoder_class(
            provider=self.config.provider,
            model=self.config.model,
            meta=meta,
            finish_reasons=self.finish_reasons,
            secrets=(self.config.api_key,),
            kind=self.kind,
        )

    @abstractmethod
    def _probe_call(self) -> HttpCall: ...

    def _check_probe(self, payload: Any, meta: ResponseMeta) -> None:  # noqa: B027 (optional hook)
        """Inspect a 2xx probe body; the default accepts any JSON."""

    # -- shared helpers for vendor modules --------------------------------------

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpCall:
        """An ``HttpCall`` with the config's extra headers and query params merged in."""
        return HttpCall(
            method=method,
            url=self._url(path),
            json=json_body,
            params={**(params or {}), **self.config.params},
            headers={"Accept": "application/json", **(headers or {}), **self.config.headers},
        )

    def _scrub_output(self, text: str) -> str:
        return scrub_exact(text, (self.config.api_key,))

    def _malformed(
        self,
        detail: str,
        meta: ResponseMeta | None = None,
        *,
        category: Category = Category.MALFORMED_RESPONSE,
    ) -> ProviderError:
        return malformed_response_error(
            self.config.provider,
            detail,
            status_code=meta.status if meta else None,
            request_id=meta.request_id if meta else None,
            category=category,
        )

    # -- the shared flow ---------------------------------------------------------

    def _require_key(self) -> None:
        if self.requires_api_key and not self.config.api_key:
            raise missing_key_error(self.config.provider)

    def _exchange(self, call: HttpCall, deadline: Deadline) -> tuple[Any, ResponseMeta]:
        """Send, read the whole body within ``deadline``, parse JSON; classify any failure."""
        response, meta = self._open(call, deadline)
        return self._read_json(response, meta, deadline), meta

    def _read_json(
        self, response: requests.Response, meta: ResponseMeta, deadline: Deadline
    ) -> Any:
        """Read an open 2xx response to the end within ``deadline`` and parse it as JSON."""
        fully_read = False
        try:
            body, fully_read = self._transport.read_body(response, deadline, limit=MAX_BODY_BYTES)
        finally:
            release(response, fully_read=fully_read)
        if not fully_read:
            raise self._malformed(f"body larger than {MAX_BODY_BYTES} bytes", meta)
        try:
            return jsonsafe.loads(body)
        except ValueError:
            raise self._malformed(
                f"2xx body is not JSON ({len(body)} bytes, "
                f"content-type {meta.headers.get('content-type', 'unknown')!r})",
                meta,
            ) from None

    def _completion_result(
        self, payload: Any, meta: ResponseMeta, deadline: Deadline
    ) -> ChatResult:
        """A parsed 2xx body as a result, or the error it carries in band."""
        if isinstance(payload, dict) and payload.get("error"):
            # A 2xx carrying an error object (proxies, gateways): classify the error.
            raise classify_response(
                provider=self.config.provider,
                status=None,
                headers=meta.headers,
                body=payload,
                secrets=(self.config.api_key,),
            )
        try:
            completion = self._parse_completion(payload, meta)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"unexpected completion shape ({type(exc).__name__})"
            raise self._malformed(detail, meta) from None
        return self._result(completion, meta, deadline)

    def _open(self, call: HttpCall, deadline: Deadline) -> tuple[requests.Response, ResponseMeta]:
        """Send ``call``; return the open 2xx response, or raise the classified error."""
        response = self._transport.send(call, deadline)
        meta = meta_of(response, request_id_from(response.headers))
        if 200 <= response.status_code < 300:
            return response, meta
        try:
            if 300 <= response.status_code < 400:
                raise unexpected_redirect_error(self.config.provider, response.status_code)
            raise self._http_error(response, meta, deadline)
        finally:
            release(response, fully_read=False)

    def _http_error(
        self, response: requests.Response, meta: ResponseMeta, deadline: Deadline
    ) -> ProviderError:
        try:
            body, _ = self._transport.read_body(response, deadline, limit=MAX_ERROR_BODY_BYTES)
        except ProviderError:
            body = b""  # the status alone still classifies the failure
        error = classify_response(
            provider=self.config.provider,
            status=meta.status,
            headers=meta.headers,
            body=body,
            secrets=(self.config.api_key,),
        )
        logger.debug(
            "provider=%s HTTP %s classified as %s request_id=%s",
            self.config.provider,
            meta.status,
            error.category,
            error.request_id,
        )
        return error

    def _result(self, completion: Completion, meta: ResponseMeta, deadline: Deadline) -> ChatResult:
        finish = normalise_finish_reason(completion.raw_finish_reason, self.finish_reasons)
        request_id = meta.request_id or completion.request_id
        text = self._scrub_output(completion.text)
        if finish is FinishReason.CONTENT_FILTER:
            raise content_filter_error(
                self.config.provider,
                completion.raw_finish_reason or "content_filter",
                partial_text=text,
                request_id=request_id,
            )
        if completion.tool_calls:
            # Vendors say "stop" after a call (Gemini, Ollama, OpenAI's named
            # choice): the calls themselves are what counts.
            finish = FinishReason.TOOL_CALLS
        return ChatResult(
            text=text,
            tool_calls=completion.tool_calls,
            finish_reason=finish.value,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cached_input_tokens=completion.cached_input_tokens,
            model=completion.model or self.config.model,
            request_id=request_id,
            latency_s=deadline.elapsed(),
            raw_finish_reason=completion.raw_finish_reason,
        )


def _is_json(meta: ResponseMeta) -> bool:
    content_type = meta.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower() == "application/json"


def _as_deltas(result: ChatResult) -> Iterator[StreamDelta]:
    """A whole completion replayed as a stream: its text, then the closing delta."""
    if result.text:
        yield StreamDelta(text=result.text, model=result.model, request_id=result.request_id)
    if result.tool_calls:
        pieces = tuple(
            ToolCallDelta(
                index=i,
                id=call.id,
                name=call.name,
                arguments=call.arguments,
                thought_signature=call.thought_signature,
            )
            for i, call in enumerate(result.tool_calls)
        )
        yield StreamDelta(tool_calls=pieces, model=result.model, request_id=result.request_id)
    yield StreamDelta(
        finish_reason=result.finish_reason,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cached_input_tokens=result.cached_input_tokens,
        model=result.model,
        request_id=result.request_id,
        raw_finish_reason=result.raw_finish_reason,
    )
