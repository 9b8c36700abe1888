"""JSONPath as used by the ASL, compiled once into getter and setter closures.

Supported: ``$`` / ``$$`` roots, ``.name``, ``['name']``, ``["name"]``, ``[3]``, ``[-1]``, ``[1,2]``,
``[*]`` / ``.*``, slices ``[a:b:c]`` and deep scan ``..name``. Filter expressions (``[?(...)]``) are not
supported and are reported by validation. A path with a wildcard, slice, union or deep scan is *indefinite*
and yields a list of every match; a definite path yields one value or raises ``PathNotFound``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Getter = Callable[[Any], Any]


class PathSyntaxError(ValueError):
    """The text is not a JSONPath this engine understands."""


class PathNotFound(LookupError):
    """A definite path does not resolve against the document."""


@dataclass(frozen=True, slots=True)
class _Step:
    kind: str  # "key" | "index" | "wild" | "slice" | "union" | "deep"
    value: Any = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CompiledPath:
    """A parsed path. ``context`` is True for ``$$`` paths (evaluated against the context object)."""

    text: str
    context: bool
    steps: tuple[_Step, ...]
    get: Getter

    @property
    def definite(self) -> bool:
        return all(s.kind in ("key", "index") for s in self.steps)

    @property
    def keys(self) -> tuple[Any, ...]:
        return tuple(s.value for s in self.steps)

    @property
    def input_field(self) -> str | None:
        """The field name when the path is ``$.name`` on the input (the hot case callers inline), else None."""
        steps = self.steps
        if self.context or len(steps) != 1 or steps[0].kind != "key":
            return None
        return steps[0].value


def is_path(text: object) -> bool:
    return isinstance(text, str) and text.startswith("$")


def _parse_bracket(text: str, pos: int) -> tuple[_Step, int]:
    end_quote = pos + 1
    if text[end_quote:end_quote + 1] in ("'", '"'):
        quote = text[end_quote]
        close = text.find(quote + "]", end_quote + 1)
        if close < 0:
            raise PathSyntaxError(f"unterminated quoted name in {text!r}")
        return _Step("key", text[end_quote + 1:close]), close + 2
    close = text.find("]", pos)
    if close < 0:
        raise PathSyntaxError(f"unterminated '[' in {text!r}")
    inner = text[pos + 1:close].strip()
    after = close + 1
    if inner == "*":
        return _Step("wild"), after
    if inner.startswith(("?", "(")):
        raise PathSyntaxError(f"filter and script expressions are not supported: {text!r}")
    try:
        if ":" in inner:
            parts = [int(p) if p.strip() else None for p in inner.split(":")]
            if len(parts) > 3:
                raise ValueError
            return _Step("slice", tuple(parts + [None] * (3 - len(parts)))), after
        if "," in inner:
            return _Step("union", tuple(int(p) for p in inner.split(","))), after
        return _Step("index", int(inner)), after
    except ValueError:
        raise PathSyntaxError(f"bad subscript [{inner}] in {text!r}") from None


def _read_name(text: str, pos: int) -> tuple[str, int]:
    end = pos
    while end < len(text) and text[end] not in ".[":
        end += 1
    if end == pos:
        raise PathSyntaxError(f"empty name at position {pos} in {text!r}")
    return text[pos:end], end


def parse_steps(text: str) -> tuple[bool, tuple[_Step, ...]]:
    """Split a path into steps; returns (is_context_path, steps)."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise PathSyntaxError(f"a path must start with '$': {text!r}")
    context = text.startswith("$$")
    pos = 2 if context else 1
    steps: list[_Step] = []
    while pos < len(text):
        char = text[pos]
        if text.startswith("..", pos):
            name, pos = _read_name(text, pos + 2)
            steps.append(_Step("deep", name))
        elif char == ".":
            if text[pos + 1:pos + 2] == "*":
                steps.append(_Step("wild"))
                pos += 2
            else:
                name, pos = _read_name(text, pos + 1)
                steps.append(_Step("key", name))
        elif char == "[":
            step, pos = _parse_bracket(text, pos)
            steps.append(step)
        else:
            raise PathSyntaxError(f"unexpected {char!r} at position {pos} in {text!r}")
    return context, tuple(steps)


def _get_definite(keys: tuple[Any, ...]) -> Getter:
    def get(doc: Any) -> Any:
        for key in keys:
            if isinstance(key, str):
                if type(doc) is not dict or key not in doc:
                    raise PathNotFound(key)
                doc = doc[key]
            else:
                if type(doc) is not list or not -len(doc) <= key < len(doc):
                    raise PathNotFound(key)
                doc = doc[key]
        return doc

    if len(keys) == 1 and isinstance(keys[0], str):
        only = keys[0]

        def get_one(doc: Any) -> Any:
            # The hot case (`$.field`): one dict lookup.
            if type(doc) is dict and only in doc:
                return doc[only]
            raise PathNotFound(only)

        return get_one
    return get


def _deep_scan(node: Any, name: str, out: list[Any]) -> None:
    if isinstance(node, dict):
        if name in node:
            out.append(node[name])
        for value in node.values():
            _deep_scan(value, name, out)
    elif isinstance(node, list):
        for value in node:
            _deep_scan(value, name, out)


def _apply_step(step: _Step, nodes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if step.kind == "key":
            if isinstance(node, dict) and step.value in node:
                out.append(node[step.value])
        elif step.kind == "index":
            if isinstance(node, list) and -len(node) <= step.value < len(node):
                out.append(node[step.value])
        elif step.kind == "wild":
            out.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else ())
        elif step.kind == "slice":
            if isinstance(node, list):
                out.extend(node[slice(*step.value)])
        elif step.kind == "union":
            if isinstance(node, list):
                out.extend(node[i] for i in step.value if -len(node) <= i < len(node))
        elif step.kind == "deep":
            _deep_scan(node, step.value, out)
    return out


def _get_indefinite(steps: tuple[_Step, ...]) -> Getter:
    def get(doc: Any) -> Any:
        nodes = [doc]
        for step in steps:
            nodes = _apply_step(step, nodes)
        return nodes

    return get


def compile_path(text: str) -> CompiledPath:
    """Parse ``text`` once; the returned ``get`` runs without re-reading the string."""
    context, steps = parse_steps(text)
    if all(s.kind in ("key", "index") for s in steps):
        getter: Getter = _get_definite(tuple(s.value for s in steps)) if steps else (lambda doc: doc)
    else:
        getter = _get_indefinite(steps)
    return CompiledPath(text=text, context=context, steps=steps, get=getter)


def compile_setter(text: str) -> Callable[[Any, Any], Any]:
    """A ResultPath setter: ``set(doc, value)`` returns a copy of ``doc`` with ``value`` at the path.

    Only the dicts along the path are copied (the input is never mutated). Missing objects on the way
    are created; a non-object on the way raises ``PathNotFound``.
    """
    compiled = compile_path(text)
    if compiled.context or not all(s.kind == "key" for s in compiled.steps):
        raise PathSyntaxError(f"a ResultPath must be a reference path of object keys: {text!r}")
    keys = compiled.keys
    if not keys:
        return lambda doc, value: value
    parents, last = keys[:-1], keys[-1]

    def set_value(doc: Any, value: Any) -> Any:
        if type(doc) is not dict:
            raise PathNotFound(text)
        root = dict(doc)
        node = root
        for key in parents:
            child = node.get(key, _MISSING)
            if child is _MISSING:
                child = {}
            elif type(child) is not dict:
                raise PathNotFound(key)
            else:
                child = dict(child)
            node[key] = child
            node = child
        node[last] = value
        return root

    return set_value


_MISSING = object()
