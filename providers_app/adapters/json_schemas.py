"""JSON-schema dialects: the client's (OpenAI) schema reduced to what a vendor accepts.

Anthropic and Gemini accept subsets of JSON Schema. Keywords outside a subset
are removed and written into the node's ``description``, as Anthropic's own SDK
does, so the model still sees the constraint; the answer is then validated
locally against the client's original schema (``fit.py``), so nothing the client
asked for is silently lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Anthropic's structured-output subset (its SDK's ``transform_schema``).
_ANTHROPIC_KEYWORDS = frozenset(
    {
        "type", "anyOf", "allOf", "enum", "const", "description", "title", "properties",
        "required", "additionalProperties", "items", "$defs", "$ref", "format", "minItems",
    }
)  # fmt: skip
_ANTHROPIC_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
# Gemini's ``responseJsonSchema`` / ``parametersJsonSchema`` keyword list.
_GEMINI_KEYWORDS = frozenset(
    {
        "$id", "$defs", "$ref", "$anchor", "type", "format", "title", "description", "enum",
        "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum", "anyOf",
        "properties", "additionalProperties", "required", "propertyOrdering",
    }
)  # fmt: skip
# Keywords whose value is a map of sub-schemas or a list of them.
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")


def anthropic_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as Anthropic's ``output_config.format`` / ``input_schema`` take it."""
    return _reduce(schema, _ANTHROPIC_KEYWORDS, _anthropic_node)


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as Gemini's ``responseJsonSchema`` / ``parametersJsonSchema`` take it."""
    return _reduce(schema, _GEMINI_KEYWORDS, _gemini_node)


def _anthropic_node(node: dict[str, Any], moved: dict[str, Any]) -> None:
    if "oneOf" in moved:  # Anthropic's SDK rewrites oneOf as anyOf
        node["anyOf"] = moved.pop("oneOf")
    if node.get("format") not in (None, *_ANTHROPIC_FORMATS):
        moved["format"] = node.pop("format")
    if node.get("minItems") not in (None, 0, 1):
        moved["minItems"] = node.pop("minItems")
    if node.get("type") == "object" or "properties" in node:
        node["additionalProperties"] = False  # every object must be closed


def _gemini_node(node: dict[str, Any], moved: dict[str, Any]) -> None:
    if "oneOf" in moved:  # documented as treated like anyOf
        node["anyOf"] = moved.pop("oneOf")
    if "const" in moved:
        node["enum"] = [moved.pop("const")]


def _reduce(schema: Mapping[str, Any], keep: frozenset[str], adjust) -> dict[str, Any]:
    def walk(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        node: dict[str, Any] = {}
        moved: dict[str, Any] = {}
        for key, item in value.items():
            if key in _SCHEMA_MAPS and isinstance(item, Mapping):
                item = {name: walk(sub) for name, sub in item.items()}
            elif key in _SCHEMA_LISTS and isinstance(item, list):
                item = [walk(sub) for sub in item]
            elif key in ("items", "additionalProperties") and isinstance(item, Mapping):
                item = walk(item)
            (node if key in keep else moved)[key] = item
        adjust(node, moved)
        if moved:
            note = "; ".join(
                f"{key}: {json.dumps(val, sort_keys=True)}" for key, val in moved.items()
            )
            node["description"] = (
                f"{node['description']} ({note})" if node.get("description") else f"({note})"
            )
        return node

    return walk(schema)
