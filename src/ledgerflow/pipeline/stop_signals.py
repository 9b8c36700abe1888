"""SIGTERM and SIGINT ask a long-running command to stop after the work in hand (a graceful drain).

Kept apart from the runner so that `run` can install the handlers before it imports and opens anything: a stop
asked for while the command is still starting is then a graceful stop too (a summary, exit 0), not a kill.
"""

from __future__ import annotations

import signal
from types import FrameType


class StopSignals:
    def __init__(self) -> None:
        self.requested = False

    @classmethod
    def installed(cls) -> StopSignals:
        stop = cls()
        stop.install()
        return stop

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._request)
        signal.signal(signal.SIGINT, self._request)

    def _request(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True
