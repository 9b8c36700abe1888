"""Intrinsic functions against the executions recorded on AWS (shared/conformance/stepfunctions-asl).

Each recorded execution is replayed from its ExecutionStarted input; the whole history (event types,
ids, previousEventIds, details) must equal the recording once timestamps, the role ARN and generated
values (random numbers, UUIDs, machine and execution names) are normalised as the recording did.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import json5
import pytest
from shared_data import conformance_dir, missing

from ledgerflow.workflow import compile_machine

CORPUS_EXECUTIONS_TOTAL = 167
MACHINE_NAME = "wfconformance"  # no '-': the recorded StringSplit(name, '-') results keep one part
EXECUTION_NAME = "exec0conformance"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def intrinsics_dir() -> Path:
    return conformance_dir() / "stepfunctions-asl" / "intrinsic_functions"


def load_executions() -> list[Any]:
    directory = intrinsics_dir()
    if not directory.is_dir():
        return []
    template_map = json.loads((directory / "test_template_map.json").read_text())
    executions = []
    for snapshot in sorted(directory.glob("*.snapshot.json")):
        for key, recorded in json.loads(snapshot.read_text()).items():
            file_name = key.split("::")[0].rsplit("/", 1)[1]
            test_name = key.rsplit("::", 1)[1]
            template = template_map[f"{file_name}::{test_name}"]
            for response_key, response in recorded["recorded-content"].items():
                case_id = f"{file_name[:-3]}::{key.split('::')[1]}::{test_name}::{response_key}"
                marks = []
                if "jsonata" in template:
                    marks.append(pytest.mark.skip(reason="JSONata query language is not implemented"))
                executions.append(pytest.param(template, response["events"], id=case_id, marks=marks))
    return executions


EXECUTIONS = load_executions()


def test_corpus_is_complete() -> None:
    if not EXECUTIONS:
        missing(f"conformance corpus not found at {intrinsics_dir()} (set LEDGERFLOW_CONFORMANCE_DIR)")
    assert len(EXECUTIONS) == CORPUS_EXECUTIONS_TOTAL


def normalise_text(text: str) -> str:
    text = text.replace(EXECUTION_NAME, "<ExecArnPart_0idx>").replace(MACHINE_NAME, "<ArnPart_0idx>")
    return text.replace("arn:aws:", "arn:<partition>:").replace(":us-east-1:", ":<region>:")


def normalise_value(value: Any, recorded: Any) -> Any:
    """Our value as the recording's transformers would have written it."""
    if isinstance(value, dict):
        return {k: normalise_value(v, recorded.get(k) if isinstance(recorded, dict) else None)
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_value(v, None) for v in value]
    if recorded == "RandomNumberGenerated" and type(value) is int:
        return recorded
    if recorded == "generated-uuid" and isinstance(value, str) and UUID4.match(value):
        return recorded
    if isinstance(value, str):
        return normalise_text(value)
    return value


def normalise_event(event: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    normalised: dict[str, Any] = {}
    for key, value in event.items():
        if key == "timestamp":
            normalised[key] = "timestamp"
        elif key.endswith("EventDetails"):
            details = dict(value)
            recorded_details = recorded.get(key, {})
            for field in ("input", "output"):
                if field in details:
                    details[field] = normalise_value(json.loads(details[field]), recorded_details.get(field))
            if "roleArn" in details:
                details["roleArn"] = "snf_role_arn"
            normalised[key] = details
        else:
            normalised[key] = value
    return normalised


def recorded_random_bounds(events: list[dict[str, Any]]) -> tuple[float, float] | None:
    function_input = events[0]["executionStartedEventDetails"]["input"].get("FunctionInput")
    if isinstance(function_input, dict) and "snd" in function_input and isinstance(function_input["snd"], (int, float)):
        return function_input["fst"], function_input["snd"]
    return None


@pytest.mark.parametrize(("template", "recorded_events"), EXECUTIONS or [
    pytest.param(None, None, marks=pytest.mark.skip(reason="conformance corpus missing"))])
def test_intrinsic_execution_matches_recording(template: str, recorded_events: list[dict[str, Any]]) -> None:
    definition = json5.loads((intrinsics_dir() / template).read_text())
    machine = compile_machine(definition, name=MACHINE_NAME)
    execution_input = recorded_events[0]["executionStartedEventDetails"]["input"]
    result = machine.execute(execution_input, name=EXECUTION_NAME, history=True)
    assert result.events is not None
    ours = [normalise_event(e, r) for e, r in zip(result.events, recorded_events)]
    assert len(result.events) == len(recorded_events)
    assert ours == recorded_events
    if "math_random" in template and result.status == "SUCCEEDED":
        low, high = recorded_random_bounds(recorded_events)  # type: ignore[misc]
        assert round(low) <= result.output["FunctionResult"] <= round(high)
