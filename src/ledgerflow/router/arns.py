"""ARNs in AWS's shape, and the stream behind each bus.

Rules on the default bus have `arn:aws:events:<region>:<account>:rule/<name>`; rules on another bus
`...:rule/<bus>/<name>` (exactly as EventBridge writes them). Target kinds are told apart by their ARN's service:

    processor      arn:aws:lambda:<region>:<account>:function:<name>
    queue          arn:aws:sqs:<region>:<account>:<name>
    state_machine  arn:aws:states:<region>:<account>:stateMachine:<name>
    log            arn:aws:logs:<region>:<account>:log-group:<name>
    webhook        arn:aws:events:<region>:<account>:api-destination/<name>
    pipeline       arn:ledgerflow:pipeline:<region>:<account>:stream/inbound
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledgerflow.router.errors import ValidationException

REGION_DEFAULT: Final = "local"
ACCOUNT_DEFAULT: Final = "000000000000"
DEFAULT_BUS: Final = "default"
DEFAULT_BUS_STREAM: Final = "events"

KIND_PROCESSOR: Final = "processor"
KIND_QUEUE: Final = "queue"
KIND_STATE_MACHINE: Final = "state_machine"
KIND_LOG: Final = "log"
KIND_WEBHOOK: Final = "webhook"
KIND_PIPELINE: Final = "pipeline"
TARGET_KINDS: Final = (KIND_PROCESSOR, KIND_QUEUE, KIND_STATE_MACHINE, KIND_LOG, KIND_WEBHOOK, KIND_PIPELINE)


@dataclass(frozen=True, kw_only=True, slots=True)
class ArnScope:
    region: str = REGION_DEFAULT
    account: str = ACCOUNT_DEFAULT

    def _prefix(self, service: str, partition: str = "aws") -> str:
        return f"arn:{partition}:{service}:{self.region}:{self.account}:"

    def bus(self, bus: str) -> str:
        return self._prefix("events") + f"event-bus/{bus}"

    def rule(self, bus: str, name: str) -> str:
        return self._prefix("events") + (f"rule/{name}" if bus == DEFAULT_BUS else f"rule/{bus}/{name}")

    def archive(self, name: str) -> str:
        return self._prefix("events") + f"archive/{name}"

    def replay(self, name: str) -> str:
        return self._prefix("events") + f"replay/{name}"

    def target(self, kind: str, name: str) -> str:
        """The ARN of a target of `kind` named `name` (the inverse of `parse_target_arn`)."""
        if kind == KIND_PROCESSOR:
            return self._prefix("lambda") + f"function:{name}"
        if kind == KIND_QUEUE:
            return self._prefix("sqs") + name
        if kind == KIND_STATE_MACHINE:
            return self._prefix("states") + f"stateMachine:{name}"
        if kind == KIND_LOG:
            return self._prefix("logs") + f"log-group:{name}"
        if kind == KIND_WEBHOOK:
            return self._prefix("events") + f"api-destination/{name}"
        if kind == KIND_PIPELINE:
            return self._prefix("pipeline", "ledgerflow") + "stream/inbound"
        raise ValidationException(f"Unknown target kind {kind!r}")


def stream_for_bus(bus: str) -> str:
    """The transport stream of a bus: the default bus is the pipeline's `events` stream."""
    return DEFAULT_BUS_STREAM if bus == DEFAULT_BUS else f"bus:{bus}"


def parse_target_arn(arn: str) -> tuple[str, str]:
    """(kind, name) of a target ARN; ValidationException when it names no target kind the router has."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValidationException(f"Parameter {arn!r} is not valid. Reason: Provided Arn is not in correct format.")
    partition, service, resource = parts[1], parts[2], parts[5]
    if partition == "ledgerflow" and service == "pipeline" and resource == "stream/inbound":
        return KIND_PIPELINE, "inbound"
    prefixes = {
        "lambda": ("function:", KIND_PROCESSOR),
        "states": ("stateMachine:", KIND_STATE_MACHINE),
        "logs": ("log-group:", KIND_LOG),
        "events": ("api-destination/", KIND_WEBHOOK),
    }
    if service == "sqs" and resource and ":" not in resource and "/" not in resource:
        return KIND_QUEUE, resource
    if service in prefixes:
        prefix, kind = prefixes[service]
        name = resource[len(prefix):]
        if resource.startswith(prefix) and name:
            return kind, name
    raise ValidationException(f"Parameter {arn!r} is not valid. Reason: Arn names no supported target.")


def rule_name_from_reference(reference: str) -> str:
    """A rule name from a name or a rule ARN (either ARN form)."""
    if not reference.startswith("arn:"):
        return reference
    resource = reference.split(":", 5)[-1]
    if not resource.startswith("rule/"):
        raise ValidationException(f"Parameter {reference!r} is not valid. Reason: not a rule ARN.")
    return resource.rsplit("/", 1)[-1]
