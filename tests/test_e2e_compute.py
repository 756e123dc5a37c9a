"""A served model says where and in which dtype it computes: at start and in /health."""

from __future__ import annotations

import httpx

from loupe.engines.local.precision import bf16_units
from tests.conftest import RunningServer


def test_health_and_the_start_up_output_show_the_dtype_auto_chose(qwen_server: RunningServer) -> None:
    # The tiny checkpoints are saved in float32: "auto" keeps that only where the CPU lacks bf16.
    units = bf16_units()
    expected = "float32" if units is None else "bfloat16"
    health = httpx.get(f"{qwen_server.base_url}/health").json()
    [model] = health["models"]
    compute = health["compute"][model]
    assert compute["device"] == "cpu" and compute["dtype"] == expected
    assert compute["reason"].startswith("auto: ") and (units is None or units in compute["reason"])
    assert f"computes on cpu in {expected} ({compute['reason']})" in qwen_server.log()
