"""Rules, targets and their retry policy: validated value objects (AWS field names at the edges)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from ledgerflow.router.arns import parse_target_arn
from ledgerflow.router.errors import ValidationException

RULE_NAME_RE: Final = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
BUS_NAME_RE: Final = re.compile(r"^[/\.\-_A-Za-z0-9]{1,256}$")
TARGET_ID_RE: Final = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
TARGETS_PER_RULE_MAX: Final = 5
DESCRIPTION_CHARS_MAX: Final = 512
RETRY_ATTEMPTS_MAX: Final = 185
EVENT_AGE_SECONDS_MIN: Final = 60
EVENT_AGE_SECONDS_MAX: Final = 86_400
STATE_ENABLED: Final = "ENABLED"
STATE_DISABLED: Final = "DISABLED"
TARGET_FIELDS: Final = frozenset(
    {"Id", "Arn", "Input", "InputPath", "InputTransformer", "RetryPolicy", "DeadLetterConfig", "Config"}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    maximum_retry_attempts: int = RETRY_ATTEMPTS_MAX
    maximum_event_age_seconds: int = EVENT_AGE_SECONDS_MAX

    def __post_init__(self) -> None:
        if not 0 <= self.maximum_retry_attempts <= RETRY_ATTEMPTS_MAX:
            raise ValidationException(
                f"MaximumRetryAttempts must be between 0 and {RETRY_ATTEMPTS_MAX}, got {self.maximum_retry_attempts}")
        if not EVENT_AGE_SECONDS_MIN <= self.maximum_event_age_seconds <= EVENT_AGE_SECONDS_MAX:
            raise ValidationException(
                f"MaximumEventAgeInSeconds must be between {EVENT_AGE_SECONDS_MIN} and {EVENT_AGE_SECONDS_MAX}, "
                f"got {self.maximum_event_age_seconds}")

    @classmethod
    def from_json(cls, value: Any) -> RetryPolicy:
        if value is None:
            return cls()
        if not isinstance(value, dict) or set(value) - {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"}:
            raise ValidationException("RetryPolicy takes MaximumRetryAttempts and MaximumEventAgeInSeconds")
        attempts = value.get("MaximumRetryAttempts", RETRY_ATTEMPTS_MAX)
        age = value.get("MaximumEventAgeInSeconds", EVENT_AGE_SECONDS_MAX)
        if not isinstance(attempts, int) or not isinstance(age, int) or isinstance(attempts, bool):
            raise ValidationException("RetryPolicy values must be integers")
        return cls(maximum_retry_attempts=attempts, maximum_event_age_seconds=age)

    def as_json(self) -> dict[str, int]:
        return {"MaximumRetryAttempts": self.maximum_retry_attempts,
                "MaximumEventAgeInSeconds": self.maximum_event_age_seconds}


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetSpec:
    """One target of a rule, as PutTargets takes it (`spec` keeps the JSON, for describe and storage)."""

    target_id: str
    arn: str
    kind: str
    name: str
    retry: RetryPolicy
    dead_letter_arn: str | None
    config: dict[str, Any]
    spec: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, value: Any) -> TargetSpec:
        """Validate one PutTargets entry; raises ValidationException with the reason."""
        if not isinstance(value, dict):
            raise ValidationException("A target must be a JSON object")
        unknown = set(value) - TARGET_FIELDS
        if unknown:
            raise ValidationException(f"Unknown target fields: {sorted(unknown)}")
        target_id, arn = value.get("Id"), value.get("Arn")
        if not isinstance(target_id, str) or not TARGET_ID_RE.match(target_id):
            raise ValidationException(
                f"Parameter Id is not valid. Reason: it must match {TARGET_ID_RE.pattern}")
        if not isinstance(arn, str):
            raise ValidationException("Parameter Arn is not valid. Reason: Arn is a required argument.")
        kind, name = parse_target_arn(arn)
        dead_letter = value.get("DeadLetterConfig") or {}
        dead_letter_arn = dead_letter.get("Arn") if isinstance(dead_letter, dict) else None
        if dead_letter_arn is not None and parse_target_arn(dead_letter_arn)[0] != "queue":
            raise ValidationException("DeadLetterConfig.Arn must be a queue ARN (arn:aws:sqs:...)")
        config = value.get("Config") or {}
        if not isinstance(config, dict):
            raise ValidationException("Config must be a JSON object")
        from ledgerflow.router.transform import validate_input_fields

        validate_input_fields(value)
        return cls(target_id=target_id, arn=arn, kind=kind, name=name,
                   retry=RetryPolicy.from_json(value.get("RetryPolicy")), dead_letter_arn=dead_letter_arn,
                   config=config, spec=value)

    def describe(self) -> dict[str, Any]:
        """The target as ListTargetsByRule shows it (secrets masked)."""
        shown = {key: value for key, value in self.spec.items() if key != "Config"}
        shown["RetryPolicy"] = self.retry.as_json()
        if self.config:
            shown["Config"] = {k: ("***" if "secret" in k.lower() else v) for k, v in self.config.items()}
        return shown


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    bus: str
    name: str
    arn: str
    event_pattern: str
    state: str
    description: str
    managed_by: str | None
    targets: tuple[TargetSpec, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.state == STATE_ENABLED

    def describe(self) -> dict[str, Any]:
        """DescribeRule's answer."""
        answer: dict[str, Any] = {"Name": self.name, "Arn": self.arn, "EventPattern": self.event_pattern,
                                  "State": self.state, "EventBusName": self.bus}
        if self.description:
            answer["Description"] = self.description
        if self.managed_by:
            answer["ManagedBy"] = self.managed_by
        return answer


def check_rule_name(name: str) -> None:
    if not isinstance(name, str) or not RULE_NAME_RE.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+")


def check_bus_name(name: str) -> None:
    if not isinstance(name, str) or not BUS_NAME_RE.match(name) or "'" in name:
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [/\\.\\-_A-Za-z0-9]+")


def canonical_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False, ensure_ascii=False)
