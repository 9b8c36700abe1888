"""Parse and validate an event pattern, refusing invalid ones with exactly AWS's reason.

The checks run in the same order as AWS's streaming rule compiler walks the document, so when a
pattern has several faults the first one in document order is the one reported. The result is a
`Rule` (see model.py): `$or` alternatives expanded into branches, field names joined with dots.
Repeating a field path keeps the last occurrence, as AWS does.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ledgerflow.bus.patterns.errors import InvalidEventPatternException
from ledgerflow.bus.patterns.ip import CidrError, looks_like_ip, parse_cidr, parse_ip
from ledgerflow.bus.patterns.jsontext import JsonNumber, JsonObject, from_plain, parse_pattern_text, to_plain
from ledgerflow.bus.patterns.model import Branch, Kind, Matcher, NumericRange, Rule
from ledgerflow.bus.patterns.numbers import NumberRangeError, comparable_from_text
from ledgerflow.bus.patterns.wildcard import WildcardError, check_complexity, parse_wildcard

OR_KEY = "$or"
# Names refused as field names directly inside a `$or` alternative (AWS reserves them).
RESERVED_IN_OR = frozenset(
    [
        "exactly", "equals-ignore-case", "prefix", "suffix", "anything-but", "exists", "wildcard",
        "numeric", "cidr", "=", "<", "<=", ">", ">=", "regex", "not-wildcard", "not-equals-ignore-case",
        "date-after", "date-on-or-after", "date-before", "date-on-or-before", "in-date-range",
        "ip-address-in-range", "ip-address-not-in-range",
    ]
)  # fmt: skip
END = object()  # stands for the closing bracket when a list runs out
TOO_MANY = "Too many elements in numeric expression"
ONE_KEY = "Only one key allowed in match expression"
AB_TYPE_REASON = "Value of anything-but must be an array or single string/number value."


def _barf(reason: str) -> NoReturn:
    raise InvalidEventPatternException(reason)


def validate_pattern(pattern_json: str) -> dict[str, Any]:
    """Parse and validate a pattern JSON string; return it as a dict (duplicate keys merged as AWS does).

    Raises InvalidEventPatternException whose str() is AWS's message.
    """
    tree = parse_pattern_text(pattern_json)
    build_rule(tree)
    return to_plain(tree)


def parse_rule(pattern: str | dict[str, Any]) -> Rule:
    """Validate a pattern given as JSON text or as a dict and return its branches."""
    if isinstance(pattern, str):
        return build_rule(parse_pattern_text(pattern))
    if not isinstance(pattern, dict):
        _barf("Filter is not an object")
    return build_rule(from_plain(pattern))


def build_rule(tree: JsonObject) -> Rule:
    branches: list[Branch] = []
    _parse_object(tree, [], branches, in_or=False)
    for branch in branches:  # AWS measures wildcard complexity once the whole rule has compiled
        for matchers in branch.values():
            for matcher in matchers:
                if matcher.kind is Kind.WILDCARD:
                    try:
                        check_complexity(matcher.value)
                    except WildcardError as exc:
                        _barf(str(exc))
    return tuple(branches)


def _parse_object(pairs: JsonObject, path: list[str], branches: list[Branch], in_or: bool) -> None:
    for key, value in pairs:
        if key == OR_KEY:
            _parse_or(value, path, branches)
            continue
        if in_or and key in RESERVED_IN_OR:
            _barf(f"{key} is Ruler reserved fieldName which cannot be used inside {OR_KEY}.")
        if isinstance(value, JsonObject):
            _parse_object(value, [*path, key], branches, in_or)
        elif isinstance(value, list):
            matchers = _parse_values(value)
            if not branches:
                branches.append({})
            name = ".".join([*path, key])
            for branch in branches:
                branch.pop(name, None)  # the last occurrence wins, and takes its place in order
                branch[name] = matchers
        else:
            _barf(f'"{key}" must be an object or an array')
    if not pairs:
        _barf("Empty objects are not allowed")


def _parse_or(value: Any, path: list[str], branches: list[Branch]) -> None:
    current = [dict(branch) for branch in branches]
    branches.clear()
    if not isinstance(value, list):
        _barf(f"It must be an Array followed with {OR_KEY}.")
    for alternative in value:
        if not isinstance(alternative, JsonObject):
            _barf(f"Only JSON object is allowed in array of {OR_KEY} relationship.")
        forked = [dict(branch) for branch in current] or [{}]
        _parse_object(alternative, path, forked, in_or=True)
        branches.extend(forked)
    if len(value) < 2:
        _barf(f"There must have at least 2 Objects in {OR_KEY} relationship.")


def _parse_values(values: list[Any]) -> tuple[Matcher, ...]:
    matchers: list[Matcher] = []
    for value in values:
        if isinstance(value, JsonObject):
            matchers.append(_parse_expression(value))
        elif isinstance(value, str):
            address = parse_ip(value) if looks_like_ip(value) else None
            matchers.append(Matcher(Kind.EXACT_IP, address) if address else Matcher(Kind.EXACT, value))
        elif isinstance(value, JsonNumber):
            try:
                matchers.append(Matcher(Kind.EXACT_NUMBER, comparable_from_text(value.text)))
            except NumberRangeError:
                pass  # not comparable: AWS then matches the literal text only
            matchers.append(Matcher(Kind.EXACT_TEXT, value.text))
        elif value is None or isinstance(value, bool):
            matchers.append(Matcher(Kind.LITERAL, value))
        else:
            _barf("Match value must be String, number, true, false, or null")
    if not matchers:
        _barf("Empty arrays are not allowed")
    return tuple(matchers)


def _token_text(token: Any) -> str:
    """The text AWS's parser reports for a token."""
    if token is END:
        return "]"
    if isinstance(token, JsonObject):
        return "{"
    if isinstance(token, list):
        return "["
    if isinstance(token, JsonNumber):
        return token.text
    if token is None:
        return "null"
    if isinstance(token, bool):
        return "true" if token else "false"
    return str(token)


def _single_key(pairs: JsonObject, extra_reason: str) -> None:
    if len(pairs) > 1:
        _barf(extra_reason)


def _parse_expression(pairs: JsonObject) -> Matcher:
    if not pairs:
        _barf("Match expression name not found")
    name, value = pairs[0]
    parser = _EXPRESSION_PARSERS.get(name)
    if parser is None:
        _barf(f"Unrecognized match type {name}")
    return parser(pairs, value)


def _parse_exactly(pairs: JsonObject, value: Any) -> Matcher:
    if not isinstance(value, str):
        _barf("exact match pattern must be a string")
    _single_key(pairs, ONE_KEY)
    return Matcher(Kind.EXACT, value)


def _parse_affix(kind: Kind, ignore_case_kind: Kind, label: str) -> Any:
    def parse(pairs: JsonObject, value: Any) -> Matcher:
        if isinstance(value, JsonObject):
            if not value:
                _barf(f"{label.capitalize()} expression name not found")
            inner_name, inner_value = value[0]
            if inner_name != "equals-ignore-case":
                _barf(f"Unsupported {label} pattern: {inner_name}")
            if not isinstance(inner_value, str):
                _barf("equals-ignore-case match pattern must be a string")
            _single_key(value, ONE_KEY)
            _single_key(pairs, ONE_KEY)
            return Matcher(ignore_case_kind, inner_value.lower())
        if not isinstance(value, str):
            _barf(f"{label} match pattern must be a string")
        _single_key(pairs, ONE_KEY)
        return Matcher(kind, value)

    return parse


def _parse_equals_ignore_case(pairs: JsonObject, value: Any) -> Matcher:
    if not isinstance(value, str):
        _barf("equals-ignore-case match pattern must be a string")
    _single_key(pairs, ONE_KEY)
    return Matcher(Kind.EQUALS_IGNORE_CASE, value.lower())


def _parse_wildcard(pairs: JsonObject, value: Any) -> Matcher:
    if not isinstance(value, str):
        _barf("wildcard match pattern must be a string")
    try:
        wildcard = parse_wildcard(value)
    except WildcardError as exc:
        _barf(str(exc))
    _single_key(pairs, ONE_KEY)
    return Matcher(Kind.WILDCARD, wildcard)


def _parse_exists(pairs: JsonObject, value: Any) -> Matcher:
    if not isinstance(value, bool):
        _barf("exists match pattern must be either true or false.")
    _single_key(pairs, ONE_KEY)
    return Matcher(Kind.EXISTS, value)


def _parse_cidr(pairs: JsonObject, value: Any) -> Matcher:
    if not isinstance(value, str):
        _barf("prefix match pattern must be a string")
    try:
        block = parse_cidr(value)
    except CidrError as exc:
        _barf(str(exc))
    _single_key(pairs, ONE_KEY)
    return Matcher(Kind.CIDR, block)


def _parse_numeric(pairs: JsonObject, value: Any) -> Matcher:
    if not isinstance(value, list):
        _barf("Value of numeric must be an array.")
    numeric_range = _numeric_range(value)
    _single_key(pairs, TOO_MANY)
    return Matcher(Kind.NUMERIC, numeric_range)


def _comparable(token: JsonNumber) -> float:
    try:
        return comparable_from_text(token.text)
    except NumberRangeError as exc:
        _barf(str(exc))


def _numeric_range(items: list[Any]) -> NumericRange:
    def at(index: int) -> Any:
        return items[index] if index < len(items) else END

    operator = at(0)
    if not isinstance(operator, str):
        _barf(f"Invalid member in numeric match: {_token_text(operator)}")
    operand = at(1)
    if operator not in ("=", ">=", ">", "<=", "<"):
        _barf(f"Unrecognized numeric range operator: {operator}")
    if not isinstance(operand, JsonNumber):
        _barf(f"Value of {'equals' if operator == '=' else operator} must be numeric")
    if operator in ("=", "<=", "<"):
        if at(2) is not END:
            _barf(TOO_MANY)
        bound = _comparable(operand)
        if operator == "=":
            return NumericRange(low=bound, high=bound)
        return NumericRange(high=bound, high_open=operator == "<")
    if at(2) is END:
        return NumericRange(low=_comparable(operand), low_open=operator == ">")
    return _complete_range(items, operand, low_open=operator == ">")


def _complete_range(items: list[Any], bottom: JsonNumber, low_open: bool) -> NumericRange:
    upper_operator = items[2]
    if not isinstance(upper_operator, str):
        _barf(f"Bad value in numeric range: {_token_text(upper_operator)}")
    if upper_operator not in ("<", "<="):
        _barf(f"Bad numeric range operator: {upper_operator}")
    top = items[3] if len(items) > 3 else END
    if not isinstance(top, JsonNumber):
        _barf(f"Value of {upper_operator} must be numeric")
    if len(items) > 4:
        _barf("Too many terms in numeric range expression")
    low, high = _comparable(bottom), _comparable(top)
    if low >= high:
        _barf("Bottom must be less than top")
    return NumericRange(low=low, low_open=low_open, high=high, high_open=upper_operator == "<")


_EXPRESSION_PARSERS: dict[str, Any] = {}  # filled below, once the anything-but parsers exist


def _parse_anything_but(pairs: JsonObject, value: Any) -> Matcher:
    if isinstance(value, JsonObject):
        matcher = _parse_anything_but_object(value)
    elif isinstance(value, list):
        matcher = _anything_but_list(value)
    elif isinstance(value, str):
        matcher = Matcher(Kind.ANYTHING_BUT, frozenset([value]))
    elif isinstance(value, JsonNumber):
        matcher = Matcher(Kind.ANYTHING_BUT_NUMBER, frozenset([_comparable(value)]))
    else:
        _barf(AB_TYPE_REASON)
    _single_key(pairs, TOO_MANY)
    return matcher


def _anything_but_list(values: list[Any]) -> Matcher:
    strings: set[str] = set()
    numbers: set[float] = set()
    for item in values:
        if isinstance(item, str):
            strings.add(item)
        elif isinstance(item, JsonNumber):
            numbers.add(_comparable(item))
        else:
            _barf("Inside anything but list, start|null|boolean is not supported.")
    if bool(strings) == bool(numbers):
        _barf("Inside anything but list, either all values are number or string, mixed type is not supported")
    if numbers:
        return Matcher(Kind.ANYTHING_BUT_NUMBER, frozenset(numbers))
    return Matcher(Kind.ANYTHING_BUT, frozenset(strings))


_AB_SET_KINDS = {
    "equals-ignore-case": Kind.ANYTHING_BUT_IGNORE_CASE,
    "prefix": Kind.ANYTHING_BUT_PREFIX,
    "suffix": Kind.ANYTHING_BUT_SUFFIX,
    "wildcard": Kind.ANYTHING_BUT_WILDCARD,
}
_AB_SET_TYPE_REASONS = {
    Kind.ANYTHING_BUT_IGNORE_CASE: (
        "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported."
    ),
    Kind.ANYTHING_BUT_WILDCARD: "wildcard match pattern must be a string",
    Kind.ANYTHING_BUT_PREFIX: "prefix/suffix match pattern must be a string",
    Kind.ANYTHING_BUT_SUFFIX: "prefix/suffix match pattern must be a string",
}


def _parse_anything_but_object(pairs: JsonObject) -> Matcher:
    if not pairs:
        _barf("Anything-But expression name not found")
    name, value = pairs[0]
    kind = _AB_SET_KINDS.get(name)
    if kind is None:
        _barf(f"Unsupported anything-but pattern: {name}")
    if not isinstance(value, (list, str, JsonNumber)) or isinstance(value, JsonObject):
        _barf(AB_TYPE_REASON)
    texts: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, str):
            _barf(_AB_SET_TYPE_REASONS[kind])
        if kind in (Kind.ANYTHING_BUT_PREFIX, Kind.ANYTHING_BUT_SUFFIX) and not item:
            _barf("Null prefix/suffix not allowed")
        texts.append(item)
    if kind is Kind.ANYTHING_BUT_WILDCARD:
        try:  # AWS parses the wildcards before looking for a second key
            wildcards = tuple(parse_wildcard(text) for text in dict.fromkeys(texts))
        except WildcardError as exc:
            _barf(str(exc))
        _single_key(pairs, TOO_MANY)
        return Matcher(kind, wildcards)
    _single_key(pairs, TOO_MANY)
    if kind is Kind.ANYTHING_BUT_IGNORE_CASE:
        return Matcher(kind, frozenset(text.lower() for text in texts))
    return Matcher(kind, tuple(dict.fromkeys(texts)))


_EXPRESSION_PARSERS.update(
    {
        "exactly": _parse_exactly,
        "prefix": _parse_affix(Kind.PREFIX, Kind.PREFIX_IGNORE_CASE, "prefix"),
        "suffix": _parse_affix(Kind.SUFFIX, Kind.SUFFIX_IGNORE_CASE, "suffix"),
        "equals-ignore-case": _parse_equals_ignore_case,
        "wildcard": _parse_wildcard,
        "exists": _parse_exists,
        "cidr": _parse_cidr,
        "numeric": _parse_numeric,
        "anything-but": _parse_anything_but,
    }
)
