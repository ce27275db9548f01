"""JSON from strangers is refused past a nesting depth before json.loads recurses."""

import json

import pytest

from providers_app.adapters import jsonsafe


@pytest.mark.parametrize("kind", [str, bytes])
def test_deep_nesting_is_refused_before_decoding(kind):
    deep = "[" * 5000 + "]" * 5000
    text = deep if kind is str else deep.encode()
    with pytest.raises(jsonsafe.NestedTooDeep):
        jsonsafe.loads(text)
    assert isinstance(jsonsafe.NestedTooDeep(), ValueError)  # handled like any bad JSON


def test_brackets_inside_strings_and_many_siblings_are_not_nesting():
    many = json.dumps({"text": "[" * 1000, "items": [[i] for i in range(1000)]})
    assert jsonsafe.nesting_exceeds(many) is False
    assert jsonsafe.loads(many)["text"] == "[" * 1000


def test_the_limit_is_exact():
    at_limit = "[" * jsonsafe.MAX_DEPTH + "]" * jsonsafe.MAX_DEPTH
    assert jsonsafe.nesting_exceeds(at_limit) is False
    assert jsonsafe.nesting_exceeds("[" + at_limit + "]") is True
