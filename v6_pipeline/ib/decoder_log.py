"""Position frames ib_async's decoder dropped: it says so only in its log.

The snapshot (which must not take a smaller book for a complete one) and the streamer
(which must re-snapshot) both listen here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from v6_pipeline.ib.protocol import Outgoing

_DROPPED = "Error handling fields: "
_POSITION_FIELDS = f"['{Outgoing.POSITION_DATA}'"


class DroppedPositionFrames(logging.Handler):
    """Calls `callback` with the raw fields of each position frame the decoder skipped."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        super().__init__(level=logging.ERROR)
        self._callback = callback
        self._logger = logging.getLogger("ib_async.Decoder")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_DROPPED + _POSITION_FIELDS):
            self._callback(message.removeprefix(_DROPPED)[:500])

    def attach(self) -> None:
        # The user's logging configuration must not silence what we listen to.
        if not self._logger.isEnabledFor(logging.ERROR):
            self._logger.setLevel(logging.ERROR)
        self._logger.addHandler(self)

    def detach(self) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
