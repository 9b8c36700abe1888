"""Errors of the workflow engine.

Exception tree::

    WorkflowError
     +-- DefinitionError          a definition failed validation (carries every message)
     +-- ExecutionAlreadyExists   same execution name started again with a different input
     +-- ExecutionNotFound        no execution with that id in the store
     +-- StatesError              an ASL runtime error (``error`` + ``cause``), caught by Retry/Catch

``StatesError`` is what a running state raises; the names below are the ASL predefined error codes.
"""

from __future__ import annotations

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RUNTIME = "States.Runtime"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
BRANCH_FAILED = "States.BranchFailed"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
ITEM_READER_FAILED = "States.ItemReaderFailed"
PERMISSIONS = "States.Permissions"

PREDEFINED_ERRORS: frozenset[str] = frozenset(
    {
        ALL,
        TASK_FAILED,
        TIMEOUT,
        HEARTBEAT_TIMEOUT,
        RUNTIME,
        DATA_LIMIT_EXCEEDED,
        INTRINSIC_FAILURE,
        RESULT_PATH_MATCH_FAILURE,
        PARAMETER_PATH_FAILURE,
        BRANCH_FAILED,
        NO_CHOICE_MATCHED,
        EXCEED_TOLERATED_FAILURE_THRESHOLD,
        ITEM_READER_FAILED,
        PERMISSIONS,
    }
)

# Errors that no Retry or Catch may handle: the execution fails (AWS: "States.ALL won't catch
# States.Runtime"; DataLimitExceeded is terminal).
TERMINAL_ERRORS: frozenset[str] = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})


class WorkflowError(Exception):
    """Base of every error this package raises on purpose."""


class DefinitionError(WorkflowError):
    """A definition is invalid; ``errors`` lists every problem found, each naming the state and field."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("Invalid state machine definition:\n" + "\n".join(f"- {e}" for e in self.errors))


class ExecutionAlreadyExists(WorkflowError):
    """An execution with this name exists for the state machine and its input differs."""


class ExecutionNotFound(WorkflowError):
    """The store holds no execution with that id."""


class StatesError(WorkflowError):
    """A runtime error of the ASL: ``error`` is the error name matched by ErrorEquals, ``cause`` free text."""

    def __init__(self, error: str, cause: str = "") -> None:
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}")

    def to_output(self) -> dict[str, str]:
        """The error output handed to a Catcher: ``{"Error": ..., "Cause": ...}``."""
        return {"Error": self.error, "Cause": self.cause}
