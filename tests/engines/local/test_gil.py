"""The engine lowers the interpreter's switch interval so the event loop gets the GIL promptly."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loupe.engines.local.engine import LocalEngine
from loupe.engines.local.gil import SWITCH_INTERVAL_S, prompt_handover
from loupe.engines.local.loader import load_model
from tests.engines.local.test_batching import card


@pytest.fixture
def interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_the_switch_interval_is_lowered_and_never_raised(interval: None) -> None:
    sys.setswitchinterval(0.005)  # the interpreter's default
    prompt_handover()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    sys.setswitchinterval(0.0001)  # someone wants it lower still: left so
    prompt_handover()
    assert sys.getswitchinterval() == pytest.approx(0.0001)


def test_starting_the_engine_lowers_it(interval: None, tiny_checkpoint: Callable[[str], Path]) -> None:
    loaded = load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="float32")
    sys.setswitchinterval(0.005)

    async def scenario() -> float:
        engine = LocalEngine(card(), loaded, max_queue=4)
        await engine.start()
        try:
            return sys.getswitchinterval()
        finally:
            await engine.close()

    assert asyncio.run(scenario()) == pytest.approx(SWITCH_INTERVAL_S)
