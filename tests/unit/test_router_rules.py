"""Buses, rules and targets: CRUD, AWS's refusals, the built-in pipeline rule, and compiled routing cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from router_support import entry, log_target, open_router, queue_arn

from ledgerflow.bus.patterns import InvalidEventPatternException
from ledgerflow.bus.patterns import matcher as matcher_module
from ledgerflow.router import LimitExceededException, ResourceNotFoundException, ValidationException
from ledgerflow.router.errors import ResourceAlreadyExistsException

ARN_PREFIX = "arn:aws:events:local:000000000000:"


def test_rule_crud_with_aws_field_names(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.create_event_bus("payments")
        assert router.put_rule("big", '{"source": ["shop"]}', description="large")["RuleArn"] == \
            ARN_PREFIX + "rule/big"
        assert router.put_rule("big", '{"source": ["shop"]}', bus="payments")["RuleArn"] == \
            ARN_PREFIX + "rule/payments/big"
        assert router.describe_rule("big") == {
            "Name": "big", "Arn": ARN_PREFIX + "rule/big", "EventPattern": '{"source": ["shop"]}',
            "State": "ENABLED", "EventBusName": "default", "Description": "large"}
        router.set_rule_state("big", "DISABLED")
        assert router.describe_rule(ARN_PREFIX + "rule/big")["State"] == "DISABLED"
        names = [r["Name"] for r in router.list_rules()["Rules"]]
        assert names == ["big", "ledgerflow-posting-pipeline"]
        assert [r["Name"] for r in router.list_rules(bus="payments")["Rules"]] == ["big"]
        router.delete_rule("big")
        with pytest.raises(ResourceNotFoundException, match="Rule big does not exist on EventBus default"):
            router.describe_rule("big")


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ('{"source": "shop"}', '"source" must be an object or an array'),
        ("{not json", None),
        ('{"detail": {"n": [{"numeric": [">", "x"]}]}}', None),
    ],
)
def test_invalid_patterns_are_refused_with_aws_reason(tmp_path: Path, pattern: str, reason: str | None) -> None:
    with open_router(tmp_path) as router, pytest.raises(InvalidEventPatternException) as caught:
        router.put_rule("bad", pattern)
    assert str(caught.value).startswith("Event pattern is not valid. Reason: ")
    if reason is not None:
        assert reason in str(caught.value)
    with open_router(tmp_path) as router, pytest.raises(ResourceNotFoundException):
        router.describe_rule("bad")


def test_rule_names_buses_and_states_are_checked(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        with pytest.raises(ValidationException, match="regular expression"):
            router.put_rule("bad name", '{"source": ["a"]}')
        with pytest.raises(ResourceNotFoundException, match="Event bus nowhere does not exist"):
            router.put_rule("r", '{"source": ["a"]}', bus="nowhere")
        with pytest.raises(ValidationException, match="ENABLED or DISABLED"):
            router.put_rule("r", '{"source": ["a"]}', state="ON")
        router.create_event_bus("b1")
        with pytest.raises(ResourceAlreadyExistsException):
            router.create_event_bus("b1")


def test_at_most_five_targets_and_bad_targets_reported_per_entry(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("r", '{"source": ["a"]}')
        answer = router.put_targets("r", [log_target(f"t{i}", "l") for i in range(4)] + [
            {"Id": "bad", "Arn": "arn:aws:nothing:local:0:x"}])
        assert answer["FailedEntryCount"] == 1
        assert answer["FailedEntries"][0]["TargetId"] == "bad"
        assert answer["FailedEntries"][0]["ErrorCode"] == "ValidationException"
        assert len(router.list_targets_by_rule("r")["Targets"]) == 4
        router.put_targets("r", [log_target("t0", "other")])  # replacing an id keeps the count
        with pytest.raises(LimitExceededException):
            router.put_targets("r", [log_target("t4", "l"), log_target("t5", "l")])
        with pytest.raises(ValidationException, match="has targets"):
            router.delete_rule("r")
        router.remove_targets("r", ["t0", "t1", "t2", "t3"])
        router.delete_rule("r")


def test_webhook_secrets_are_masked_and_dead_letter_queues_created(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("r", '{"source": ["a"]}')
        router.put_targets("r", [{"Id": "hook", "Arn": "arn:aws:events:local:000000000000:api-destination/h",
                                  "Config": {"Endpoint": "http://127.0.0.1:9/x", "Secret": "s3cret"},
                                  "DeadLetterConfig": {"Arn": queue_arn("hook-dlq")}}])
        shown = router.list_targets_by_rule("r")["Targets"][0]
        assert shown["Config"]["Secret"] == "***"
        assert router.queues.describe("hook-dlq")["ApproximateNumberOfMessages"] == 0
        failed = router.put_targets("r", [{"Id": "h2", "Arn": "arn:aws:events:local:000000000000:api-destination/h",
                                           "Config": {"Endpoint": "ftp://x"}}])
        assert failed["FailedEntryCount"] == 1


def test_built_in_pipeline_rule_is_managed(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        rule = router.describe_rule("ledgerflow-posting-pipeline")
        assert json.loads(rule["EventPattern"]) == {"detail-type": ["TransactionAuthorized"]}
        assert rule["ManagedBy"] == "ledgerflow"
        with pytest.raises(ValidationException, match="managed"):
            router.put_rule("ledgerflow-posting-pipeline", '{"source": ["x"]}')
        with pytest.raises(ValidationException, match="managed"):
            router.delete_rule("ledgerflow-posting-pipeline")


def test_disabled_rules_do_not_route(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("r", '{"source": ["shop"]}', state="DISABLED")
        router.put_targets("r", [log_target("t", "audit")])
        router.put_events([entry()])
        router.run_until_idle()
        assert router.read_log("audit") == []
        router.set_rule_state("r", "ENABLED")
        router.put_events([entry()])
        router.run_until_idle()
        assert len(router.read_log("audit")) == 1


def test_routing_with_1000_rules_evaluates_few_predicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    original = matcher_module.compile_branch

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        predicate = original(*args, **kwargs)

        def counted(event):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            return predicate(event)

        return counted

    monkeypatch.setattr(matcher_module, "compile_branch", counting)
    with open_router(tmp_path) as router:
        for index in range(1000):
            pattern = {"source": [f"svc-{index % 100}"], "detail-type": [f"Type{index // 100}"],
                       "detail": {"amount": [{"numeric": [">", index]}]}}
            router.put_rule(f"rule-{index}", json.dumps(pattern))
        router.put_targets("rule-257", [log_target("t", "hits")])
        router.put_events([entry({"amount": 5000}, source="svc-57", detail_type="Type2")] * 20)
        router.step()  # builds the table and routes
        # 1,000 rules; each event is evaluated against its one indexed candidate, not against every rule.
        assert 20 <= calls["n"] <= 20 * 3, calls["n"]
        router.run_until_idle()
        assert len(router.read_log("hits")) == 20
