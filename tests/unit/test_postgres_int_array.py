"""`int_array` writes the same literal as converting each element with int() and joining, whatever the list holds
(ints of any size, None, bools, IntEnum members, objects with __int__, an iterator), and raises where that
conversion does (NaN, infinities, nested lists) instead of writing NULL; PostgreSQL reads the literals back in
tests/integration/test_postgres_ledger.py."""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.adapters.postgres.arrays import int_array


class Kind(enum.IntEnum):
    posted = 0
    pending = 1


def reference_literal(values: list) -> str:
    return "{" + ",".join("NULL" if value is None else str(int(value)) for value in values) + "}"


class Amount:
    def __init__(self, minor: int) -> None:
        self.minor = minor

    def __int__(self) -> int:
        return self.minor


ELEMENTS = (st.none() | st.integers(-2**63, 2**63 - 1) | st.integers() | st.booleans() | st.sampled_from(Kind)
            | st.integers(-10**6, 10**6).map(Amount))


@given(st.lists(ELEMENTS))
def test_int_array_matches_the_element_by_element_literal(values: list) -> None:
    literal = int_array(values)
    assert literal.replace("null", "NULL") == reference_literal(values)
    assert int_array(iter(values)) == literal
    assert int_array(tuple(values)) == literal


def test_plain_ints_take_the_encoder_and_none_is_null() -> None:
    assert int_array([3, -1, 0, None, 2**62]) == "{3,-1,0,null,4611686018427387904}"
    assert int_array([]) == "{}"
    assert int_array([True, Kind.pending, None]) == "{1,1,NULL}"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_values_int_refuses_are_refused_not_written_as_null(bad: float) -> None:
    with pytest.raises((ValueError, OverflowError)):
        int_array([1, bad, None])


def test_a_nested_list_is_refused() -> None:
    with pytest.raises(TypeError):
        int_array([[1, 2]])
