"""Input transformers: Input, InputPath, InputTransformer with AWS's reserved variables and quoting rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.router.errors import ValidationException
from ledgerflow.router.transform import TransformContext, render_input, render_template, validate_input_fields

EVENT = {
    "version": "0", "id": "e-1", "detail-type": "OrderPlaced", "source": "shop", "account": "000000000000",
    "time": "2026-11-27T08:00:00Z", "region": "local", "resources": ["r-1", "r-2"],
    "detail": {"orderId": "o-9", "amountMinor": 1250, "tags": ["a", "b"], "quote": 'say "hi"'},
}
CONTEXT = TransformContext(rule_arn="arn:aws:events:local:000000000000:rule/orders", rule_name="orders",
                           ingestion_time="2026-11-27T08:00:01Z")


def _render(target: dict) -> str:
    validate_input_fields(target)
    return render_input(target, EVENT, CONTEXT).decode()


def test_no_input_field_sends_the_whole_event() -> None:
    assert json.loads(_render({})) == EVENT


def test_constant_input_is_sent_as_written() -> None:
    assert _render({"Input": '{"fixed": true}'}) == '{"fixed": true}'


def test_input_path_selects_part_of_the_event() -> None:
    assert json.loads(_render({"InputPath": "$.detail.amountMinor"})) == 1250
    assert json.loads(_render({"InputPath": "$.resources[1]"})) == "r-2"
    assert json.loads(_render({"InputPath": "$['detail-type']"})) == "OrderPlaced"
    assert json.loads(_render({"InputPath": "$.detail.absent"})) is None


def test_json_template_quotes_strings_outside_quotes_and_keeps_numbers() -> None:
    target = {"InputTransformer": {
        "InputPathsMap": {"order": "$.detail.orderId", "amount": "$.detail.amountMinor", "tags": "$.detail.tags"},
        "InputTemplate": '{"order": <order>, "amount": <amount>, "tags": <tags>, "text": "order <order> of <amount>"}',
    }}
    assert json.loads(_render(target)) == {"order": "o-9", "amount": 1250, "tags": ["a", "b"],
                                           "text": "order o-9 of 1250"}


def test_values_inside_a_json_string_are_escaped() -> None:
    target = {"InputTransformer": {"InputPathsMap": {"q": "$.detail.quote"}, "InputTemplate": '{"said": "<q>"}'}}
    assert json.loads(_render(target)) == {"said": 'say "hi"'}


def test_string_template_inserts_text_without_quotes() -> None:
    target = {"InputTransformer": {"InputPathsMap": {"order": "$.detail.orderId"},
                                   "InputTemplate": "Order <order> on <aws.events.rule-name>"}}
    assert _render(target) == "Order o-9 on orders"


def test_quoted_string_template_stays_a_json_string() -> None:
    target = {"InputTransformer": {"InputPathsMap": {"order": "$.detail.orderId"},
                                   "InputTemplate": '"Order <order> placed"'}}
    assert json.loads(_render(target)) == "Order o-9 placed"


def test_reserved_variables() -> None:
    target = {"InputTransformer": {"InputTemplate": json.dumps({
        "arn": "<aws.events.rule-arn>", "rule": "<aws.events.rule-name>",
        "at": "<aws.events.event.ingestion-time>", "text": "<aws.events.event.json>",
    })[:-1] + ', "whole": <aws.events.event>}'}}
    rendered = json.loads(_render(target))
    assert rendered["arn"] == CONTEXT.rule_arn
    assert rendered["rule"] == "orders"
    assert rendered["at"] == "2026-11-27T08:00:01Z"
    assert json.loads(rendered["text"]) == EVENT
    assert rendered["whole"] == EVENT


def test_missing_path_is_null_outside_quotes_and_empty_inside() -> None:
    target = {"InputTransformer": {"InputPathsMap": {"x": "$.detail.nothing"},
                                   "InputTemplate": '{"a": <x>, "b": "[<x>]"}'}}
    assert json.loads(_render(target)) == {"a": None, "b": "[]"}


def test_unknown_placeholders_stay_as_written() -> None:
    assert render_template("<a> and <b>", {"a": 1}) == "1 and <b>"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ({"Input": "{}", "InputPath": "$"}, "Only one of Input, InputPath, or InputTransformer"),
        ({"Input": "{not json"}, "Input is not valid JSON"),
        ({"InputPath": "detail"}, "must start with"),
        ({"InputTransformer": {"InputPathsMap": {"aws.events.rule-arn": "$.id"}, "InputTemplate": "x"}},
         "reserved"),
        ({"InputTransformer": {"InputPathsMap": {"bad key": "$.id"}, "InputTemplate": "x"}}, "must match"),
        ({"InputTransformer": {"InputPathsMap": {f"k{i}": "$.id" for i in range(101)}, "InputTemplate": "x"}},
         "at most 100"),
        ({"InputTransformer": {"InputPathsMap": {}}}, "InputTemplate"),
    ],
)
def test_invalid_input_fields_are_refused(target: dict, reason: str) -> None:
    with pytest.raises(ValidationException, match=reason):
        validate_input_fields(target)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_string_value_round_trips_through_a_json_template(value: str) -> None:
    rendered = render_template('{"inside": "<v>", "outside": <v>}', {"v": value})
    assert json.loads(rendered) == {"inside": value, "outside": value}
