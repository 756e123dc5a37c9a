"""Hand the GIL over promptly while the inference thread runs Python between torch operations.

A forward pass of a transformers model runs much of its time in Python (module calls, shape
logic), holding the GIL. A thread that wants the GIL meanwhile, the event loop that must send a
token the inference thread has just produced, waits until the holder releases it in a torch
kernel or until the interpreter's switch interval (5 ms by default) forces a handover; the
holder usually wins that race, so a streamed token reached the client up to 5 ms late. At
0.5 ms a waiting thread gets the GIL within a fraction of a decode step, and a thread that is
not contended pays nothing.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0005


def prompt_handover() -> None:
    """Lower the interpreter's switch interval to `SWITCH_INTERVAL_S` (never raise it)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
