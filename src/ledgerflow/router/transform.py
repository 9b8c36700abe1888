"""Input transformers: what a target receives instead of the whole event.

- no input field: the event itself (JSON).
- `Input`: a constant JSON text, sent as is.
- `InputPath`: the part of the event a JSONPath names (`$`, `$.detail.a`, `$.resources[0]`, `$['x']`).
- `InputTransformer`: `InputPathsMap` names values of the event (`{"amount": "$.detail.amount"}`) and
  `InputTemplate` places them as `<amount>`, with the reserved variables `<aws.events.rule-arn>`,
  `<aws.events.rule-name>`, `<aws.events.event.ingestion-time>`, `<aws.events.event>` (the event as JSON) and
  `<aws.events.event.json>` (the event as escaped JSON text, to sit inside a JSON string).

Quoting follows EventBridge: in a JSON template (text starting with `{`, `[` or `"`) a placeholder inside a
JSON string takes the value's text escaped for that string, a placeholder outside any string takes the value as
JSON (strings quoted, a missing path `null`); in a plain text template every value goes in as text.
Placeholders that name no variable stay as written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from ledgerflow.router.errors import ValidationException

PATHS_MAP_ENTRIES_MAX: Final = 100
TEMPLATE_CHARS_MAX: Final = 8_192
INPUT_CHARS_MAX: Final = 8_192
VARIABLE_RE: Final = re.compile(r"^[A-Za-z0-9_\-]+$")
PLACEHOLDER_RE: Final = re.compile(r"<([A-Za-z0-9_.\-]+)>")
RESERVED: Final = ("aws.events.rule-arn", "aws.events.rule-name", "aws.events.event.ingestion-time",
                   "aws.events.event", "aws.events.event.json")
_MISSING: Final = object()
_PATH_TOKEN_RE: Final = re.compile(r"\.([A-Za-z0-9_\-@$]+)|\['([^'\]]*)'\]|\[(\d+)\]")


@dataclass(frozen=True, kw_only=True, slots=True)
class TransformContext:
    rule_arn: str
    rule_name: str
    ingestion_time: str  # ISO 8601, UTC


def parse_path(path: str) -> tuple[str | int, ...]:
    """The steps of a simple JSONPath; ValidationException when it is not one."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValidationException(f"Invalid JSONPath {path!r}: it must start with '$'")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        found = _PATH_TOKEN_RE.match(path, position)
        if found is None:
            raise ValidationException(f"Invalid JSONPath {path!r} at character {position}")
        name, quoted, index = found.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        position = found.end()
    return tuple(steps)


def resolve_path(event: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at `steps`, or the module's missing marker."""
    node = event
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return _MISSING
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return _MISSING
            node = node[step]
    return node


def validate_input_fields(target: dict[str, Any]) -> None:
    """Refuse a target whose input fields EventBridge would refuse."""
    given = [name for name in ("Input", "InputPath", "InputTransformer") if target.get(name) is not None]
    if len(given) > 1:
        raise ValidationException(
            "Only one of Input, InputPath, or InputTransformer must be provided for a target.")
    if "Input" in given:
        text = target["Input"]
        if not isinstance(text, str) or len(text) > INPUT_CHARS_MAX:
            raise ValidationException("Input must be a JSON text of at most 8192 characters")
        try:
            json.loads(text)
        except ValueError:
            raise ValidationException("Input is not valid JSON text.") from None
    if "InputPath" in given:
        parse_path(target["InputPath"])
    if "InputTransformer" in given:
        _validate_transformer(target["InputTransformer"])


def _validate_transformer(transformer: Any) -> None:
    if not isinstance(transformer, dict) or not isinstance(transformer.get("InputTemplate"), str):
        raise ValidationException("InputTransformer needs an InputTemplate string")
    if len(transformer["InputTemplate"]) > TEMPLATE_CHARS_MAX:
        raise ValidationException("InputTemplate is longer than 8192 characters")
    paths = transformer.get("InputPathsMap") or {}
    if not isinstance(paths, dict) or len(paths) > PATHS_MAP_ENTRIES_MAX:
        raise ValidationException("InputPathsMap must be an object of at most 100 entries")
    for name, path in paths.items():
        if name in RESERVED or name.startswith("aws."):
            raise ValidationException(f"InputPathsMap cannot use the reserved variable name {name!r}")
        if not VARIABLE_RE.match(name):
            raise ValidationException(f"InputPathsMap key {name!r} must match [A-Za-z0-9_-]+")
        parse_path(path)


def render_input(target: dict[str, Any], event: dict[str, Any], context: TransformContext) -> bytes:
    """The bytes the target receives for `event` (see the module doc)."""
    if target.get("Input") is not None:
        return str(target["Input"]).encode()
    if target.get("InputPath") is not None:
        value = resolve_path(event, parse_path(target["InputPath"]))
        return json.dumps(None if value is _MISSING else value, ensure_ascii=False).encode()
    transformer = target.get("InputTransformer")
    if transformer is None:
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    values = _variables(transformer.get("InputPathsMap") or {}, event, context)
    return render_template(transformer["InputTemplate"], values).encode()


def _variables(paths: dict[str, str], event: dict[str, Any], context: TransformContext) -> dict[str, Any]:
    values: dict[str, Any] = {name: resolve_path(event, parse_path(path)) for name, path in paths.items()}
    event_text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    values.update({
        "aws.events.rule-arn": context.rule_arn,
        "aws.events.rule-name": context.rule_name,
        "aws.events.event.ingestion-time": context.ingestion_time,
        "aws.events.event": event,
        "aws.events.event.json": event_text,
    })
    return values


def render_template(template: str, values: dict[str, Any]) -> str:
    """Replace the known placeholders of `template` by `values`, quoting by where each one sits."""
    json_template = template.lstrip()[:1] in ("{", "[", '"')
    out: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        char = template[position]
        if char == "<":
            found = PLACEHOLDER_RE.match(template, position)
            if found is not None and found.group(1) in values:
                value = values[found.group(1)]
                out.append(_placed(value, json_template=json_template, in_string=in_string))
                position = found.end()
                continue
        if char == "\\" and in_string:
            out.append(template[position:position + 2])
            position += 2
            continue
        if char == '"' and json_template:
            in_string = not in_string
        out.append(char)
        position += 1
    return "".join(out)


def _placed(value: Any, *, json_template: bool, in_string: bool) -> str:
    if not json_template:
        if value is _MISSING:
            return ""
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if in_string:
        if value is _MISSING:
            return ""
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return json.dumps(text, ensure_ascii=False)[1:-1]
    return "null" if value is _MISSING else json.dumps(value, ensure_ascii=False)
