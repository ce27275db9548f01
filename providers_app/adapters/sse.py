"""Split a byte stream into lines and lines into Server-Sent Events.

Follows the WHATWG event-stream rules (docs/vendors.md, "Streams"): ``\\r\\n``, ``\\n``
and ``\\r`` all end a line; lines starting with ``:`` are comments (keep-alives);
``event:`` names the event; several ``data:`` lines join with ``\\n``; a blank
line dispatches; unknown fields are ignored. Lines are decoded as UTF-8 one
whole line at a time, never per network chunk, so a character split across two
reads survives. NDJSON (Ollama) uses ``iter_lines`` alone.

Two deliberate leniencies, both from google-genai's reader: an event still
pending at end of stream is dispatched rather than dropped, and (opt-in) a bare
JSON object written without ``data:``, possibly over several lines, is taken as
an event of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_END_OF_LINE = re.compile(rb"\r\n|\r|\n")
MAX_LINE_BYTES = 4 * 1024 * 1024
# One event's data (its ``data:`` lines, or a bare JSON object's lines): an event
# that never ends must not grow a worker (the engine passes
# FALLBACK_STREAM_MAX_EVENT_BYTES).
MAX_EVENT_BYTES = 1024 * 1024


class LineTooLongError(ValueError):
    """A line grew past ``MAX_LINE_BYTES``: not a stream this code can trust."""


class EventTooLargeError(LineTooLongError):
    """An event's data grew past its cap before the event ended."""


class UnterminatedLine(str):
    """The last line of a stream that ended without a line break: maybe cut short."""

    __slots__ = ()


def iter_lines(chunks: Iterable[bytes], *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Yield decoded lines without their terminators; a final unterminated line too."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        start = 0
        while (match := _END_OF_LINE.search(buffer, start)) is not None:
            # A "\r" at the very end may be the first half of "\r\n": wait for more.
            if match.group() == b"\r" and match.end() == len(buffer):
                break
            yield _decode(buffer[start : match.start()])
            start = match.end()
        del buffer[:start]
        if len(buffer) > max_line_bytes:
            raise LineTooLongError(f"line longer than {max_line_bytes} bytes")
    if buffer:
        yield UnterminatedLine(_decode(buffer.rstrip(b"\r")))


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event; ``event`` is ``"message"`` when the stream named none.

    ``terminated`` is False for an event handed over at end of stream without its
    blank line: if its data does not parse, the stream was cut, not malformed.
    """

    data: str
    event: str = "message"
    id: str | None = None
    terminated: bool = True


class SSEParser:
    """Feed lines one by one; get an ``SSEEvent`` back whenever one is complete."""

    def __init__(
        self, *, accept_bare_json: bool = False, max_event_bytes: int = MAX_EVENT_BYTES
    ) -> None:
        self.accept_bare_json = accept_bare_json
        self.max_event_bytes = max_event_bytes
        self.comments = 0
        self._size = 0  # bytes of the event being built
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._json_lines: list[str] = []
        self._json_depth = _JsonDepth()

    def feed(self, line: str) -> SSEEvent | None:
        if self._json_lines or (self.accept_bare_json and self._starts_bare_json(line)):
            return self._feed_bare_json(line)
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._grow(value)
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None  # "retry" and unknown fields are ignored, as the spec says

    def flush(self) -> SSEEvent | None:
        """End of stream: hand over whatever event was still being built."""
        if self._json_lines:
            data = "\n".join(self._json_lines)
            self._json_lines = []
            return SSEEvent(data=data, terminated=False)
        return self._dispatch(terminated=False)

    def events(self, lines: Iterable[str]) -> Iterator[SSEEvent]:
        for line in lines:
            if (event := self.feed(line)) is not None:
                yield event
        if (event := self.flush()) is not None:
            yield event

    def _grow(self, line: str) -> None:
        self._size += len(line.encode()) + 1
        if self._size > self.max_event_bytes:
            raise EventTooLargeError(f"stream event larger than {self.max_event_bytes} bytes")

    def _dispatch(self, *, terminated: bool = True) -> SSEEvent | None:
        self._size = 0
        data, event, self._data, self._event = self._data, self._event, [], ""
        if not data:
            return None
        return SSEEvent(
            data="\n".join(data), event=event or "message", id=self._id, terminated=terminated
        )

    def _starts_bare_json(self, line: str) -> bool:
        return not self._data and line.lstrip().startswith("{")

    def _feed_bare_json(self, line: str) -> SSEEvent | None:
        self._grow(line)
        self._json_lines.append(line)
        if self._json_depth.feed(line) > 0:
            return None
        self._size = 0
        data = "\n".join(self._json_lines)
        self._json_lines = []
        self._json_depth = _JsonDepth()
        return SSEEvent(data=data)


class _JsonDepth:
    """Bracket depth of JSON text fed line by line, ignoring brackets inside strings."""

    def __init__(self) -> None:
        self.depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, text: str) -> int:
        for char in text:
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self.depth += 1
            elif char in "}]":
                self.depth -= 1
        return self.depth


def _decode(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", errors="replace")
