"""Input/output processing of a state, in the documented order:
InputPath -> Parameters -> (task) -> ResultSelector -> ResultPath -> OutputPath.

``null`` paths: InputPath null gives ``{}``, ResultPath null discards the result (output = raw input),
OutputPath null gives ``{}``. Each piece compiles to None when it is the identity, so states skip it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledgerflow.workflow.errors import RESULT_PATH_MATCH_FAILURE, RUNTIME, StatesError
from ledgerflow.workflow.jsonpath import PathNotFound, compile_path, compile_setter
from ledgerflow.workflow.payload import CompiledTemplate, compile_template

Transform = Callable[[Any], Any]


def _brief(doc: Any) -> str:
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 256 else text[:253] + "..."


def compile_selection(state: dict[str, Any], field: str) -> Transform | None:
    """InputPath / OutputPath / ItemsPath: None for ``$`` or absent; ``{}`` for null."""
    if field not in state:
        return None
    text = state[field]
    if text is None:
        return lambda doc: {}
    if text == "$":
        return None
    path = compile_path(text)
    get = path.get

    def select(doc: Any) -> Any:
        try:
            return get(doc)
        except PathNotFound:
            raise StatesError(RUNTIME, f"Invalid path '{text}' : No results for path: {text} in input "
                                       f"'{_brief(doc)}'") from None

    return select


def compile_result_path(state: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """``merge(raw_input, result) -> output`` for a ResultPath (default ``$``: result replaces input)."""
    if "ResultPath" not in state or state["ResultPath"] == "$":
        return lambda raw, result: result
    text = state["ResultPath"]
    if text is None:
        return lambda raw, result: raw
    setter = compile_setter(text)

    def merge(raw: Any, result: Any) -> Any:
        try:
            return setter(raw, result)
        except PathNotFound:
            raise StatesError(RESULT_PATH_MATCH_FAILURE, f"Unable to apply ResultPath '{text}' to input "
                                                         f"'{_brief(raw)}'") from None

    return merge


def compile_optional_template(state: dict[str, Any], field: str) -> CompiledTemplate | None:
    return compile_template(state[field], field) if field in state else None


@dataclass(frozen=True, kw_only=True, slots=True)
class StateIO:
    """The compiled I/O pieces of one state; ``needs_context`` if any template reads ``$$``."""

    input_path: Transform | None
    parameters: CompiledTemplate | None
    result_selector: CompiledTemplate | None
    result_path: Callable[[Any, Any], Any]
    output_path: Transform | None
    needs_context: bool


def compile_state_io(state: dict[str, Any], *, parameters_field: str | None = "Parameters") -> StateIO:
    parameters = compile_optional_template(state, parameters_field) if parameters_field else None
    selector = compile_optional_template(state, "ResultSelector")
    return StateIO(
        input_path=compile_selection(state, "InputPath"),
        parameters=parameters,
        result_selector=selector,
        result_path=compile_result_path(state),
        output_path=compile_selection(state, "OutputPath"),
        needs_context=bool((parameters and parameters.needs_context) or (selector and selector.needs_context)),
    )
