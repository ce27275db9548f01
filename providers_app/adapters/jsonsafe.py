"""JSON from strangers (upstream bodies, stream events, client requests), parsed
without deep recursion.

`json.loads` recurses once per level of nesting. A 5000-deep body reaches
Python's recursion limit, and while the stack is that deep the garbage
collector may run finalizers that then fail with no stack left: errors nobody
can catch, "unraisable". So nesting is counted first and a body nested deeper
than `MAX_DEPTH` is refused, as a `ValueError`, before anything is decoded.
Counting costs two `count()` calls in C for any ordinary body; only a body
with more brackets than the limit is scanned token by token.
"""

import json
import re
from typing import Any

MAX_DEPTH = 200  # far beyond any real answer, error body or chat request

# A JSON string (skipped whole, so brackets inside text do not count) or a bracket.
_TOKENS_STR = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_TOKENS_BYTES = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class NestedTooDeep(ValueError):
    """The text nests arrays and objects deeper than MAX_DEPTH."""


def nesting_exceeds(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether `text` opens more than `limit` arrays or objects inside each other."""
    is_bytes = isinstance(text, bytes | bytearray)
    opens = text.count(b"[") + text.count(b"{") if is_bytes else text.count("[") + text.count("{")
    if opens <= limit:
        return False
    depth = 0
    for token in (_TOKENS_BYTES if is_bytes else _TOKENS_STR).finditer(text):
        first = token.group()[:1]
        if first in ("[", "{", b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif first in ("]", "}", b"]", b"}"):
            depth -= 1
    return False


def loads(text: str | bytes, **options: Any) -> Any:
    """`json.loads`, refusing nesting deeper than MAX_DEPTH with NestedTooDeep."""
    if nesting_exceeds(text):
        raise NestedTooDeep(f"JSON nested deeper than {MAX_DEPTH} levels")
    return json.loads(text, **options)
