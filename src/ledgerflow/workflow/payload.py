"""Payload templates (Parameters, ResultSelector, ItemSelector) compiled once into closures.

A key ending in ``.$`` takes its value from a path (``$...`` on the input, ``$$...`` on the context
object) or from an intrinsic function; other values are copied. ``evaluate(doc, context)`` returns a new
structure; ``context`` may be None when ``needs_context`` is False.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledgerflow.workflow.errors import INTRINSIC_FAILURE, PARAMETER_PATH_FAILURE, StatesError
from ledgerflow.workflow.intrinsic_functions import FUNCTIONS
from ledgerflow.workflow.intrinsic_parser import (
    Call,
    IntrinsicSyntaxError,
    Literal,
    PathArg,
    is_intrinsic,
    parse_intrinsic,
)
from ledgerflow.workflow.jsonpath import PathNotFound, PathSyntaxError, compile_path

Evaluator = Callable[[Any, Any], Any]


class TemplateError(ValueError):
    """A template is malformed; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True, kw_only=True, slots=True)
class CompiledTemplate:
    evaluate: Evaluator
    needs_context: bool


def deep_copy_json(value: Any) -> Any:
    """Copy of a JSON value (containers only; scalars are immutable)."""
    kind = type(value)
    if kind is dict:
        return {k: deep_copy_json(v) for k, v in value.items()}
    if kind is list:
        return [deep_copy_json(v) for v in value]
    return value


def _brief(doc: Any) -> str:
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 256 else text[:253] + "..."


def _compile_call(call: Call, field: str) -> tuple[Evaluator, bool]:
    spec = FUNCTIONS.get(call.name)
    if spec is None:
        raise TemplateError(field, f"unknown intrinsic function {call.name}")
    function, arity_min, arity_max = spec
    if len(call.args) < arity_min or (arity_max is not None and len(call.args) > arity_max):
        expected = str(arity_min) if arity_min == arity_max else f"at least {arity_min}"
        if arity_max is not None and arity_max != arity_min:
            expected = f"{arity_min} to {arity_max}"
        raise TemplateError(field, f"{call.name} takes {expected} arguments, got {len(call.args)}")
    arg_evaluators: list[Evaluator] = []
    needs_context = False
    for position, arg in enumerate(call.args):
        if isinstance(arg, Literal):
            # States.Format's template keeps its \{ \} escapes; every other string is plain.
            value = arg.format_text if (call.name == "States.Format" and position == 0 and
                                        arg.format_text is not None) else arg.value
            arg_evaluators.append(lambda doc, ctx, value=value: value)
        elif isinstance(arg, PathArg):
            needs_context = needs_context or arg.path.context
            arg_evaluators.append(
                _intrinsic_path(arg.path.text, arg.path.get, arg.path.context, arg.path.input_field)
            )
        else:
            nested, nested_ctx = _compile_call(arg, field)
            needs_context = needs_context or nested_ctx
            arg_evaluators.append(nested)
    evaluators = tuple(arg_evaluators)
    if len(evaluators) == 2:  # the usual arity (ArrayContains, Format, ...), without the argument list
        first, second = evaluators
        return (lambda doc, ctx: function(first(doc, ctx), second(doc, ctx))), needs_context

    def evaluate(doc: Any, ctx: Any) -> Any:
        return function(*[ev(doc, ctx) for ev in evaluators])

    return evaluate, needs_context


def _intrinsic_path(text: str, get: Callable[[Any], Any], context: bool, field: str | None) -> Evaluator:
    if field is not None:

        def evaluate_field(doc: Any, ctx: Any) -> Any:
            if type(doc) is dict and field in doc:
                return doc[field]
            raise StatesError(
                INTRINSIC_FAILURE, f"The JsonPath argument '{text}' could not be found in the input"
            )

        return evaluate_field

    def evaluate(doc: Any, ctx: Any) -> Any:
        try:
            return get(ctx if context else doc)
        except PathNotFound:
            raise StatesError(
                INTRINSIC_FAILURE, f"The JsonPath argument '{text}' could not be found in the input"
            ) from None

    return evaluate


def compile_dynamic_value(expression: Any, field: str) -> tuple[Evaluator, bool]:
    """The value of a ``key.$`` entry: a path or an intrinsic call. Returns (evaluator, needs_context)."""
    if not isinstance(expression, str):
        raise TemplateError(field, f"the value of '{field}' must be a path or an intrinsic function")
    if is_intrinsic(expression):
        try:
            call = parse_intrinsic(expression)
        except IntrinsicSyntaxError as exc:
            raise TemplateError(field, str(exc)) from None
        return _compile_call(call, field)
    try:
        path = compile_path(expression)
    except PathSyntaxError as exc:
        raise TemplateError(field, str(exc)) from None
    get, context, field_name = path.get, path.context, path.input_field
    if field_name is not None:

        def evaluate_field(doc: Any, ctx: Any) -> Any:
            # `$.name`: one dict lookup inline (the same result and error as the general getter below).
            if type(doc) is dict and field_name in doc:
                return doc[field_name]
            raise StatesError(
                PARAMETER_PATH_FAILURE,
                f"The JSONPath '{expression}' specified for the field '{field}' could not be found in the "
                f"input '{_brief(doc)}'",
            )

        return evaluate_field, False

    def evaluate(doc: Any, ctx: Any) -> Any:
        try:
            return get(ctx if context else doc)
        except PathNotFound:
            raise StatesError(
                PARAMETER_PATH_FAILURE,
                f"The JSONPath '{expression}' specified for the field '{field}' could not be found in the "
                f"input '{_brief(ctx if context else doc)}'",
            ) from None

    return evaluate, context


def _compile_node(node: Any, field: str) -> tuple[Evaluator | None, bool]:
    """(evaluator, needs_context); evaluator None means "constant: copy the node"."""
    if isinstance(node, dict):
        entries: list[tuple[str, Evaluator]] = []
        needs_context = dynamic = False
        for key, value in node.items():
            if key.endswith(".$"):
                evaluator, ctx = compile_dynamic_value(value, key)
                entries.append((key[:-2], evaluator))
                dynamic = True
            else:
                sub, ctx = _compile_node(value, key)
                if sub is None:
                    entries.append((key, lambda doc, c, value=value: deep_copy_json(value)))
                else:
                    entries.append((key, sub))
                    dynamic = True
            needs_context = needs_context or ctx
        if not dynamic:
            return None, False
        return _object_evaluator(node, entries), needs_context
    if isinstance(node, list):
        compiled = [_compile_node(item, field) for item in node]
        if all(ev is None for ev, _ in compiled):
            return None, False
        items = tuple(ev if ev is not None else (lambda d, c, v=item: deep_copy_json(v))
                      for (ev, _), item in zip(compiled, node))
        return (lambda doc, ctx: [ev(doc, ctx) for ev in items]), any(c for _, c in compiled)
    return None, False


def _object_evaluator(node: dict[str, Any], entries: list[tuple[str, Evaluator]]) -> Evaluator:
    """Evaluate an object template: scalar constants come from a prepared dict (copied, in template order);
    only the other entries are called. Assigning an existing key keeps its place, so the order is the template's."""
    if len({key for key, _evaluator in entries}) != len(entries):
        # "a" and "a.$" both given: the later one wins, which only evaluating in template order keeps.
        frozen_entries = tuple(entries)
        return lambda doc, ctx: {key: ev(doc, ctx) for key, ev in frozen_entries}
    prepared: dict[str, Any] = {}
    called: list[tuple[str, Evaluator]] = []
    for (key, evaluator), (template_key, value) in zip(entries, node.items(), strict=True):
        if key == template_key and type(value) not in (dict, list):
            prepared[key] = value  # an immutable JSON scalar: shared, never copied
        else:
            prepared[key] = None
            called.append((key, evaluator))
    frozen_called = tuple(called)

    def evaluate(doc: Any, ctx: Any) -> Any:
        out = prepared.copy()
        for key, evaluator in frozen_called:
            out[key] = evaluator(doc, ctx)
        return out

    return evaluate


def compile_template(template: Any, field: str = "Parameters") -> CompiledTemplate:
    """Compile a payload template; raises ``TemplateError`` for bad paths or intrinsic calls."""
    evaluator, needs_context = _compile_node(template, field)
    if evaluator is None:
        return CompiledTemplate(evaluate=lambda doc, ctx: deep_copy_json(template), needs_context=False)
    return CompiledTemplate(evaluate=evaluator, needs_context=needs_context)
