"""Errors raised by the event-pattern language.

ValueError
 └── InvalidEventPatternException   the pattern is refused; str(exc) is AWS's message
 └── InvalidEventException          the event is not a JSON object (AWS: ValidationException)
"""

from __future__ import annotations

ERROR_PREFIX = "Event pattern is not valid. Reason: "


class InvalidEventPatternException(ValueError):
    """A pattern AWS would refuse. `reason` is the text after AWS's fixed prefix."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(ERROR_PREFIX + reason)


class InvalidEventException(ValueError):
    """An event that is not a JSON object; AWS answers `Parameter Event is not valid.`"""

    def __init__(self) -> None:
        super().__init__("Parameter Event is not valid.")
