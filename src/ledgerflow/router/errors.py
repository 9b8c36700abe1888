"""Errors of the event router, named as EventBridge names them.

    RouterError
    ├── ValidationException            a request that can never succeed as written
    ├── ResourceNotFoundException      no such bus, rule, archive, replay, queue or dead letter
    ├── ResourceAlreadyExistsException a name that is taken
    ├── LimitExceededException         more targets than a rule may have
    └── IllegalStatusException         a replay that cannot be cancelled in its state

`InvalidEventPatternException` (from the pattern package) is raised as is when a rule's pattern is refused.
Target failures are not exceptions of the router: handlers raise `TargetError`, which the retry logic turns
into a retry, a dead letter or a counted drop.
"""

from __future__ import annotations


class RouterError(Exception):
    """Base of the router's request errors; `code` is the AWS error name."""

    code = "RouterError"

    def __str__(self) -> str:
        return super().__str__()


class ValidationException(RouterError):
    code = "ValidationException"


class ResourceNotFoundException(RouterError):
    code = "ResourceNotFoundException"


class ResourceAlreadyExistsException(RouterError):
    code = "ResourceAlreadyExistsException"


class LimitExceededException(RouterError):
    code = "LimitExceededException"


class IllegalStatusException(RouterError):
    code = "IllegalStatusException"


class TargetError(Exception):
    """A delivery to a target failed. `retryable` False means retrying cannot help (skip the retries).

    `code` follows EventBridge's dead-letter ERROR_CODE values (`ERROR_FROM_TARGET`, `NO_RESOURCE`,
    `SDK_CLIENT_ERROR`, `THROTTLING`, `INVALID_PARAMETER`).
    """

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class NonRetryableError(Exception):
    """Raised by a processor to say the event can never succeed: it goes to the dead-letter queue at once."""
