"""The client's JSON schema, checked with bounded work (DESIGN §12).

A strict ``json_schema`` answer is validated in the web worker (``fit.py``), so
nothing in a client's schema may take the worker. The bounds, each documented in
docs/engine.md ("Bounded work per request"):

- ``pattern`` and ``patternProperties`` run on RE2 (google-re2): linear time,
  no backtracking. A pattern RE2 cannot compile (backreferences, lookaround) is
  refused; so is ``unevaluatedProperties`` next to ``patternProperties``
  (jsonschema would match those keys with Python's ``re``).
- The schema is at most ``max_bytes`` serialised and ``max_depth`` nested (the
  API passes FALLBACK_SCHEMA_MAX_BYTES and FALLBACK_SCHEMA_MAX_DEPTH).
- ``$ref`` is local only (``#`` or ``#/json/pointer``), must resolve, and must
  never lead back to itself without descending into the answer
  (``{"$ref": "#"}`` would recurse forever). Nothing is ever fetched.
- One validation evaluates at most ``MAX_STEPS`` keywords; past that the check
  stops and the answer counts as not fitting (the client's misfit).

``schema_problem`` is what the API asks before any call (a 400 names the
field); ``validate_answer`` is what ``fit.py`` runs on an answer.
"""

from __future__ import annotations

import contextvars
import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import re2
from jsonschema import Draft202012Validator
from referencing import Registry

# Keyword evaluations one answer's check may make (a keyword applied to one
# part of the answer is one step; uniqueItems costs one per item). A
# 2,000-property answer under a flat schema takes about 6,000 (15 ms); the cap
# stops exponential anyOf/$ref trees after about 0.2 s of CPU on a quiet core.
MAX_STEPS = 20_000
DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_DEPTH = 64

# Keywords whose sub-schemas apply to the same part of the answer (a loop through
# them never ends); the others descend into the answer.
_SAME_INSTANCE_LISTS = ("allOf", "anyOf", "oneOf")
_SAME_INSTANCE_ONE = ("not", "if", "then", "else")
_SAME_INSTANCE_MAPS = ("dependentSchemas",)

_options = re2.Options()
_options.log_errors = False  # a refused pattern is the client's 400, not a log line


class SchemaProblem(ValueError):
    """Why a client's schema is refused; ``where`` is the JSON path inside it."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


class SchemaCheckTooLong(Exception):
    """One validation passed ``MAX_STEPS``."""


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern, _options)


def _search(pattern: str, text: str) -> bool:
    return _regex(pattern).search(text) is not None


# -- the validator: Draft 2020-12 with RE2 and a step budget -------------------

_steps: contextvars.ContextVar[list[int]] = contextvars.ContextVar("schema_steps")


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield jsonschema.ValidationError(f"the value does not match {pattern!r}")


def _pattern_properties(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, extra_schema, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in known and not any(_search(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(extra_schema, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra_schema, path=key)
    elif not extra_schema and extras:
        yield jsonschema.ValidationError(
            f"additional properties are not allowed ({', '.join(map(repr, sorted(extras)))})"
        )


def _unique_items(validator, unique, instance, schema):
    """Linear, unlike jsonschema's pairwise comparison of unhashable items."""
    if not (unique and validator.is_type(instance, "array")):
        return
    _steps.get()[0] -= len(instance)
    seen = set()
    for item in instance:
        key = json.dumps(_canonical(item), sort_keys=True)
        if key in seen:
            yield jsonschema.ValidationError("the array has non-unique elements")
            return
        seen.add(key)


def _canonical(value: Any) -> Any:
    """JSON equality: 1 and 1.0 are one number; true is not 1."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def _counted(keyword_check):
    def check(validator, value, instance, schema):
        budget = _steps.get()
        budget[0] -= 1
        if budget[0] < 0:
            raise SchemaCheckTooLong
        return keyword_check(validator, value, instance, schema)

    return check


_KEYWORDS = {
    **Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
BoundedValidator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={name: _counted(check) for name, check in _KEYWORDS.items()},
)
_NO_RETRIEVAL = Registry()  # never fetch a remote $ref (jsonschema's default may)
_META = Draft202012Validator(Draft202012Validator.META_SCHEMA)


def validate_answer(value: Any, schema: Mapping[str, Any]) -> jsonschema.ValidationError | None:
    """The first way ``value`` misses ``schema``, or None when it fits.

    Raises ``SchemaCheckTooLong`` past ``MAX_STEPS``; a schema that cannot be
    applied (an unresolvable ``$ref``, a pattern RE2 refuses, a loop) raises
    whatever jsonschema, RE2 or Python raise (``fit.py`` catches them all).
    """
    token = _steps.set([MAX_STEPS])
    try:
        validator = BoundedValidator(_without_dialect(schema), registry=_NO_RETRIEVAL)
        return next(iter(validator.iter_errors(value)), None)
    finally:
        _steps.reset(token)


def _without_dialect(schema: Mapping[str, Any]) -> dict[str, Any]:
    # `$schema` would make jsonschema switch to another draft's validator, without
    # RE2 or the step budget: the answer is always checked as Draft 2020-12.
    return {key: value for key, value in schema.items() if key != "$schema"}


# -- the refusal before any call ----------------------------------------------


def schema_problem(
    schema: Mapping[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> SchemaProblem | None:
    """Why the API must refuse ``schema`` (400 before any call), or None."""
    size = len(json.dumps(schema, separators=(",", ":")).encode())
    if size > max_bytes:
        return SchemaProblem("(schema)", f"the schema is {size} bytes; the limit is {max_bytes}")
    try:
        _check_depth(schema, max_depth)
    except SchemaProblem as problem:
        return problem
    # The meta-schema without its format checker: that would compile patterns
    # with Python's `re`; RE2 judges them below.
    error = jsonschema.exceptions.best_match(_META.iter_errors(_without_dialect(schema)))
    if error is not None:
        where = _path(error.absolute_path) or "(root)"
        return SchemaProblem(where, f"not a valid JSON schema: {error.message[:200]}")
    try:
        _check_nodes(schema)
        _check_ref_loops(schema)
    except SchemaProblem as problem:
        return problem
    return None


def _path(parts) -> str:
    return ".".join(str(part) for part in parts)


def _check_depth(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if depth > max_depth:
            raise SchemaProblem(where, f"the schema is nested deeper than {max_depth} levels")
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1, f"{where}.{k}".lstrip(".")) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{where}.{i}".lstrip(".")) for i, v in enumerate(node))


def _schema_nodes(schema: Any, where: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every sub-schema (a JSON object in a schema position), with its path."""
    if not isinstance(schema, Mapping):
        return
    yield where, schema
    for key, value in schema.items():
        here = f"{where}.{key}".lstrip(".")
        if key in ("properties", "patternProperties", "$defs", "definitions", *_SAME_INSTANCE_MAPS):
            if isinstance(value, Mapping):
                for name, sub in value.items():
                    yield from _schema_nodes(sub, f"{here}.{name}")
        elif key in (*_SAME_INSTANCE_LISTS, "prefixItems") and isinstance(value, list):
            for index, sub in enumerate(value):
                yield from _schema_nodes(sub, f"{here}.{index}")
        elif key in (
            *_SAME_INSTANCE_ONE,
            "items",
            "additionalProperties",
            "unevaluatedProperties",
            "unevaluatedItems",
            "contains",
            "propertyNames",
        ):
            yield from _schema_nodes(value, here)


def _check_nodes(schema: Mapping[str, Any]) -> None:
    has_pattern_properties = False
    has_unevaluated = False
    for where, node in _schema_nodes(schema):
        if where and ("$schema" in node or "$id" in node):
            raise SchemaProblem(where, "$schema and $id are accepted only at the schema's root")
        for keyword in ("$dynamicRef", "$recursiveRef"):
            if keyword in node:
                raise SchemaProblem(f"{where}.{keyword}".lstrip("."), f"{keyword} is not supported")
        if "$ref" in node:
            _resolve(schema, node["$ref"], f"{where}.$ref".lstrip("."))
        if isinstance(node.get("pattern"), str):
            _compile(node["pattern"], f"{where}.pattern".lstrip("."))
        if isinstance(node.get("patternProperties"), Mapping):
            has_pattern_properties = True
            for pattern in node["patternProperties"]:
                _compile(pattern, f"{where}.patternProperties".lstrip("."))
        has_unevaluated = has_unevaluated or "unevaluatedProperties" in node
    if has_pattern_properties and has_unevaluated:
        raise SchemaProblem(
            "unevaluatedProperties",
            "unevaluatedProperties is not accepted together with patternProperties",
        )


def _compile(pattern: str, where: str) -> None:
    try:
        _regex(pattern)
    except re2.error:
        raise SchemaProblem(
            where,
            f"the pattern {pattern[:100]!r} is not accepted: patterns run on RE2 "
            "(no backreferences or lookaround)",
        ) from None


def _resolve(schema: Mapping[str, Any], ref: Any, where: str) -> str:
    """The JSON pointer a local $ref points to (checked to exist)."""
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        raise SchemaProblem(where, 'only local references ("#" or "#/...") are accepted')
    node: Any = schema
    for raw in ref[2:].split("/") if ref != "#" else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SchemaProblem(where, f"the reference {ref[:100]!r} does not resolve")
    if not isinstance(node, Mapping | bool):
        raise SchemaProblem(where, f"the reference {ref[:100]!r} is not a schema")
    return ref


def _pointer(where: str) -> str:
    return "#" + "".join(
        "/" + p.replace("~", "~0").replace("/", "~1") for p in where.split(".") if p
    )


def _check_ref_loops(schema: Mapping[str, Any]) -> None:
    """Refuse a $ref loop that never descends into the answer ({"$ref": "#"})."""
    nodes = {_pointer(where): (where, node) for where, node in _schema_nodes(schema)}
    edges: dict[str, list[str]] = {}
    for pointer, (_, node) in nodes.items():
        targets = []
        if isinstance(node.get("$ref"), str):
            targets.append(node["$ref"] if node["$ref"] != "#" else "#")
        for key in _SAME_INSTANCE_LISTS:
            if isinstance(node.get(key), list):
                targets += [f"{pointer}/{key}/{i}" for i in range(len(node[key]))]
        for key in _SAME_INSTANCE_ONE:
            if isinstance(node.get(key), Mapping):
                targets.append(f"{pointer}/{key}")
        for key in _SAME_INSTANCE_MAPS:
            if isinstance(node.get(key), Mapping):
                targets += [f"{pointer}/{key}/{name}" for name in node[key]]
        edges[pointer] = [t.rstrip("/") if t != "#" else "#" for t in targets]
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        stack = [(start, iter(edges[start]))]
        state[start] = 1
        while stack:
            pointer, pending = stack[-1]
            target = next(pending, None)
            if target is None:
                state[pointer] = 2
                stack.pop()
                continue
            if state.get(target) == 1:
                where = nodes.get(pointer, (pointer, None))[0] or "(root)"
                raise SchemaProblem(
                    where, "the schema's $ref loops back without descending into the answer"
                )
            if not state.get(target):
                state[target] = 1
                stack.append((target, iter(edges.get(target, ()))))
