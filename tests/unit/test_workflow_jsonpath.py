"""JSONPath compilation: getters, indefinite paths, ResultPath setters."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.workflow.jsonpath import PathNotFound, PathSyntaxError, compile_path, compile_setter

DOC = {"a": {"b": [10, 20, {"c": "x"}]}, "list": [{"n": 1}, {"n": 2}], "odd key": 5}


@pytest.mark.parametrize(("path", "expected"), [
    ("$", DOC),
    ("$.a.b[0]", 10),
    ("$.a.b[-1].c", "x"),
    ("$['odd key']", 5),
    ('$["a"]["b"][1]', 20),
    ("$.list[*].n", [1, 2]),
    ("$.list[0:1]", [{"n": 1}]),
    ("$..n", [1, 2]),
    ("$.a.*", [[10, 20, {"c": "x"}]]),
    ("$.list[0,1].n", [1, 2]),
])
def test_get_resolves_definite_and_indefinite_paths(path: str, expected: object) -> None:
    assert compile_path(path).get(DOC) == expected


@pytest.mark.parametrize("path", ["$.missing", "$.a.b[7]", "$.a.b.c", "$.odd key.x", "$.list.n"])
def test_definite_path_that_does_not_resolve_raises(path: str) -> None:
    with pytest.raises(PathNotFound):
        compile_path(path).get(DOC)


def test_string_is_not_indexable_as_an_array() -> None:
    with pytest.raises(PathNotFound):
        compile_path("$.s[0]").get({"s": "abc"})


@pytest.mark.parametrize("path", ["a.b", "$.", "$.a[", "$[?(@.n > 1)]", "$.a[x]", "$..", ""])
def test_bad_syntax_is_rejected(path: str) -> None:
    with pytest.raises(PathSyntaxError):
        compile_path(path)


def test_context_paths_are_flagged() -> None:
    assert compile_path("$$.Execution.Id").context is True
    assert compile_path("$.Execution").context is False


def test_setter_creates_missing_objects_and_does_not_mutate_input() -> None:
    doc = {"a": {"keep": 1}}
    original = copy.deepcopy(doc)
    out = compile_setter("$.a.b.c")(doc, 5)
    assert out == {"a": {"keep": 1, "b": {"c": 5}}}
    assert doc == original


def test_setter_refuses_to_walk_through_a_non_object() -> None:
    with pytest.raises(PathNotFound):
        compile_setter("$.a.b")({"a": 3}, 1)
    with pytest.raises(PathNotFound):
        compile_setter("$.a")([1, 2], 1)


@pytest.mark.parametrize("path", ["$.a[0]", "$$.x", "$.a[*]"])
def test_setter_only_accepts_reference_paths_of_keys(path: str) -> None:
    with pytest.raises(PathSyntaxError):
        compile_setter(path)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                      max_size=3), max_leaves=10)
keys = st.text(alphabet="abcxyz_", min_size=1, max_size=4)


@given(doc=st.dictionaries(keys, json_values, max_size=4), path_keys=st.lists(keys, min_size=1, max_size=3),
       value=json_values)
def test_set_then_get_returns_the_value(doc: dict, path_keys: list[str], value: object) -> None:
    text = "$." + ".".join(path_keys)
    before = copy.deepcopy(doc)
    try:
        out = compile_setter(text)(doc, value)
    except PathNotFound:
        return  # a non-object on the way: allowed to refuse
    assert compile_path(text).get(out) == value
    assert doc == before
