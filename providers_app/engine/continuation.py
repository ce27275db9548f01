"""The continuation request of the mid-stream rescue (docs/engine.md, "Mid-stream rescue").

When a committed stream fails, the next provider gets the same request plus the
text already delivered as a final assistant message, marked
``continue_final`` so that only providers with a continuation dialect other
than ``none`` are asked (the capability filter skips the others) and each
adapter sends it in its server's dialect (adapters/continuation.py).

Two more things live here because they are about what a continuation answered:

- ``spliced``: the continuation's start is checked against the partial answer.
  A server that echoes the whole partial answer first has the echo cut; one
  that starts the answer over (as OpenAI does with a trailing assistant
  message) is refused before anything reaches the client.
- ``continuation_refused``: a provider that refused a continuation (a 400
  naming the prefill) or started over gets its dialect switched to ``none``,
  with a ``continuation_off`` event, so the next interruption goes straight to
  a provider that can continue. Only the route walk calls it, never an adapter;
  an admin switches it back on the provider page.
"""

import logging
from collections.abc import Iterator
from dataclasses import replace

from django.db import DatabaseError

from ..adapters.continuation import NONE, PREFIX, refuses_continuation
from ..adapters.errors import Category, ProviderError, provider_error
from ..adapters.schema import ChatRequest, Message, StreamDelta
from ..models import FailoverEvent, Provider
from ..selectors import RouteEntry
from . import metrics
from .capabilities import entry_continuation
from .clock import get_clock
from .events import failover_event_record

logger = logging.getLogger("providers_app.fallback")

# A continuation whose start repeats this many characters of the partial answer
# (and then departs from it) started the answer over. Shorter partial answers
# are not checked: a few shared characters are no evidence.
STARTED_OVER_CHARS = 24

STARTED_OVER_MESSAGE = "The continuation started the answer over instead of continuing the prefill."


def continuation_request(request: ChatRequest, delivered: str) -> ChatRequest:
    """``request`` with ``delivered`` appended as the partial answer to continue."""
    return replace(
        request,
        messages=(*request.messages, Message(role="assistant", content=delivered)),
        continue_final=True,
    )


def held_whitespace(delivered: str) -> str:
    """The trailing whitespace of the delivered text, which a continuation may repeat.

    Anthropic refuses a prefill ending in whitespace, so its adapter strips it
    and the model then usually writes it again; the client already has it, so
    the engine drops it once from the start of the continuation.
    """
    return delivered[len(delivered.rstrip()) :]


def spliced(
    deltas: Iterator[StreamDelta], delivered: str, *, provider: str, dialect: str
) -> Iterator[StreamDelta]:
    """A continuation's deltas, checked against the partial answer ``delivered``.

    Deltas are held only while their text still reads as the partial answer's
    own start (at most ``len(delivered)`` characters, already in memory): then
    - the whole partial answer repeated, in the ``prefix`` dialect: Mistral's
      prefix "forces the model to start its answer" with it, so the answer may
      carry it (unverified; docs/vendors.md): the echo is cut, the rest follows;
    - ``STARTED_OVER_CHARS`` or more repeated otherwise (the whole of it in the
      other dialects, or part of it then something else, or the end): the
      server started over, and a new answer must never be spliced onto the cut
      one; raises (``continuation_refused`` learns from it);
    - fewer: an ordinary continuation, passed on unchanged.
    """
    target = delivered.lstrip()
    try:
        if len(target) < STARTED_OVER_CHARS:
            yield from deltas
            return
        held: list[StreamDelta] = []
        seen = ""
        for delta in deltas:
            held.append(delta)
            seen += delta.text
            probe = seen.lstrip()
            ended = bool(delta.finish_reason or delta.tool_calls)
            if probe.startswith(target) and dialect == PREFIX:
                logger.info("continuation echoed the partial answer provider=%s", provider)
                for earlier in held[:-1]:
                    yield replace(earlier, text="")  # their model and ids, not their text
                yield replace(delta, text=probe[len(target) :])
                break
            if target.startswith(probe) and len(probe) < len(target) and not ended:
                continue  # still reads as the partial answer's start: hold on
            shared = _shared_prefix(probe, target)
            if shared >= STARTED_OVER_CHARS:
                raise provider_error(
                    Category.INVALID_REQUEST, STARTED_OVER_MESSAGE, provider=provider
                )
            yield from held
            break
        else:  # the stream ended while still holding
            if len(seen.lstrip()) >= STARTED_OVER_CHARS:
                raise provider_error(
                    Category.INVALID_REQUEST, STARTED_OVER_MESSAGE, provider=provider
                )
            yield from held
            return
        yield from deltas
    finally:
        close = getattr(deltas, "close", None)
        if close:
            close()


def _shared_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def is_continuation_refusal(error: ProviderError) -> bool:
    """A continuation candidate's failure that says it cannot continue: a 400 (or a
    local refusal) naming the prefill or continuation, or a restarted answer."""
    return error.category == Category.INVALID_REQUEST and refuses_continuation(error.message)


def continuation_refused(
    entry: RouteEntry, error: ProviderError, *, request_id: str, route: str
) -> bool:
    """Switch ``entry``'s continuation dialect to ``none`` after a refusal; True if
    this call switched it (once, however many requests saw the refusal)."""
    dialect = entry_continuation(entry)
    if dialect == NONE:
        return False
    # updated_at moves too, so an admin page opened before refuses a stale save.
    try:
        switched = (
            Provider.objects.filter(pk=entry.id)
            .exclude(continuation=NONE)
            .update(continuation=NONE, updated_at=get_clock().now())
        )
    except DatabaseError:  # learning must never fail the rescue: the next refusal retries
        logger.exception("could not switch the continuation off provider=%s", entry.name)
        metrics.store_error("continuation_off")
        return False
    if not switched:
        return False  # another request switched it first
    failover_event_record(
        kind=FailoverEvent.Kind.CONTINUATION_OFF,
        provider_id=entry.id,
        reason=dialect,  # what was refused
        status_code=error.status_code,
        detail=f"{dialect} refused: {error.message}",  # scrubbed by the recorder
        request_id=request_id,
        route=route,
    )
    logger.warning(
        "continuation switched off provider=%s dialect=%s request_id=%s: %s",
        entry.name, dialect, request_id, error.message,
    )  # fmt: skip
    return True
