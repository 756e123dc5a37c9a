"""A serving process's heartbeat: a call every few seconds, on a thread of its own.

A thread, not a task on the event loop: a loop held up by a long request must not stop the
heartbeat, or the other processes would take this one for dead and release what it holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_log = logging.getLogger(__name__)


class Heartbeat:
    """Calls `beat` every `interval_s` seconds from `start()` until `stop()`."""

    def __init__(self, beat: Callable[[], None], interval_s: float) -> None:
        self._beat, self._interval_s = beat, interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loupe-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop beating; waits for a beat in progress (a database call) up to `timeout_s`."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self._beat()
            except Exception:  # the next beat retries: a database outage must not end the heartbeat
                _log.exception("heartbeat failed; trying again in %gs", self._interval_s)
