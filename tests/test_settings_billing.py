from __future__ import annotations

from pathlib import Path

import pytest

from loupe.errors import ConfigError
from loupe.settings import BillingSettings, load_settings


def test_billing_timings_default_and_load_from_the_config_file(tmp_path: Path) -> None:
    assert load_settings().billing == BillingSettings(heartbeat_s=5, dead_after_s=30, max_hold_s=3600)
    config = tmp_path / "loupe.toml"
    config.write_text("[billing]\nheartbeat_s = 1\ndead_after_s = 10\nmax_hold_s = 600\n")
    assert load_settings(config).billing == BillingSettings(heartbeat_s=1, dead_after_s=10, max_hold_s=600)


@pytest.mark.parametrize(
    "table", ["heartbeat_s = 0", "dead_after_s = 9\nheartbeat_s = 5", "max_hold_s = -1", "beat = 3"]
)
def test_bad_billing_timings_are_config_errors(tmp_path: Path, table: str) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text(f"[billing]\n{table}\n")
    with pytest.raises(ConfigError, match="billing"):
        load_settings(config)
