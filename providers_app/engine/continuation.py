"""The continuation request of the mid-stream rescue (docs/engine.md, "Mid-stream rescue").

When a committed stream fails, the next provider gets the same request plus the
text already delivered as a final assistant message, marked
``continue_final`` so that only providers with the ``prefill`` capability are
asked (the capability filter skips the others) and each adapter sends it the
way its vendor continues a partial answer.
"""

from dataclasses import replace

from ..adapters.schema import ChatRequest, Message


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
