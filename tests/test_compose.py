"""The composition root's rules: who may be exposed beyond loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from loupe.compose_billing import check_exposure, is_loopback, open_billing
from loupe.errors import ConfigError
from loupe.settings import load_settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.org"])
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_no_keys_runs_open_on_loopback_and_refuses_elsewhere(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    local = load_settings(overrides={"db": db, "host": "127.0.0.1"})
    billing = open_billing(local)
    assert check_exposure(local, billing) is True
    wide = load_settings(overrides={"db": db, "host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="without API keys"):
        check_exposure(wide, billing)
    billing.keys.create("admin", is_admin=True)
    assert check_exposure(wide, billing) is False
    assert check_exposure(local, billing) is False
