"""One `loupe serve` serving every family's tiny checkpoint, model ids named after the families."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loupe.testing.tiny import FAMILIES
from tests.conftest import RunningServer, start_server, stop_server


@pytest.fixture(scope="session")
def every_family(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("every-family")
    config = root / "loupe.toml"
    config.write_text(
        "".join(f'[[models]]\nid = "{family}"\ncheckpoint = "{tiny_checkpoint(family)}"\n\n' for family in FAMILIES)
    )
    server = start_server(["--config", str(config)], root / "server.log", timeout=300)
    yield server
    stop_server(server)
