"""One priced `loupe serve` and one Chromium per playground test module (Playwright + Debian's Chromium).

Per module, not per package: this folder is no Python package, so a "package" fixture would live
for the whole session, and Playwright's sync API keeps an event loop running in the main thread
while its browser is open (every later `asyncio.run` would fail)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.playground.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PRICE_IN, PRICE_OUT, open_page

from playwright.sync_api import Browser, Page, sync_playwright


@pytest.fixture(scope="module")
def server(
    serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    """A priced model, so that the playground's cost arithmetic is visible."""
    config = tmp_path_factory.mktemp("playground") / "loupe.toml"
    config.write_text(
        "[[models]]\n"
        'id = "tiny-qwen"\n'
        f"checkpoint = {json.dumps(str(tiny_checkpoint('qwen2-vl')))}\n"
        f'input_price_per_m = "{PRICE_IN}"\n'
        f'output_price_per_m = "{PRICE_OUT}"\n'
    )
    return serve("--config", str(config))

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()

@pytest.fixture()
def page(browser: Browser, server: RunningServer) -> Iterator[Page]:
    with open_page(browser, server, **DESKTOP) as page:
        yield page
