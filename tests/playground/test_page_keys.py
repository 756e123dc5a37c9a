"""API keys in the playground: kept in the browser, sent as a bearer token, and what a page without one says."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, start_server, stop_server
from tests.playground.browser import DESKTOP, PHONE, shot

from playwright.sync_api import Browser, Page, expect


# Not skipped when the browser is missing: `make test` installs it, and a skip would hide that.
pytestmark = pytest.mark.e2e


def test_api_key_is_kept_locally_and_sent_as_bearer(page: Page, server: RunningServer) -> None:
    headers: list[str | None] = []
    page.on("request", lambda r: headers.append(r.headers.get("authorization")) if "/v1/" in r.url else None)
    expect(page.locator("#api-key")).to_have_attribute("placeholder", "lp-...")
    page.fill("#api-key", "lp-playground-test")
    page.dispatch_event("#api-key", "change")
    page.fill("#prompt", "Hello")
    expect(page.locator("#estimate")).not_to_have_attribute("data-state", "pending", timeout=10_000)
    assert headers and headers[-1] == "Bearer lp-playground-test"
    page.reload()
    expect(page.locator("#api-key")).to_have_value("lp-playground-test")
    assert page.evaluate("localStorage.getItem('loupe.playground.apiKey')") == "lp-playground-test"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Iterator[tuple[RunningServer, str]]:
    """A server that requires keys, and one key's secret."""
    root = tmp_path_factory.mktemp("keyed")
    db = f"sqlite:///{root / 'loupe.db'}"
    made = subprocess.run(
        [sys.executable, "-m", "loupe", "keys", "create", "--name", "me", "--db", db],
        capture_output=True, text=True, check=True, timeout=60,
    )
    server = start_server(["--model", str(tiny_checkpoint("qwen2-vl")), "--db", db], root / "server.log")
    yield server, made.stdout.strip()
    stop_server(server)


@pytest.mark.parametrize("device, name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_without_a_key_the_page_says_what_to_do(
    browser: Browser, keyed: tuple[RunningServer, str], device: dict[str, Any], name: str
) -> None:
    server, secret = keyed
    ctx = browser.new_context(**device)
    try:
        page = ctx.new_page()
        page.goto(f"{server.base_url}/playground")
        notice = page.locator("#notice")
        expect(notice).to_contain_text("This server needs an API key")
        expect(notice).to_contain_text("loupe keys create")
        expect(page.locator("#error")).to_be_hidden()  # nothing went wrong yet
        expect(page.locator("#api-key")).to_be_focused()
        shot(page, f"10-no-key-{name}")
        page.fill("#api-key", secret)
        page.dispatch_event("#api-key", "change")
        expect(notice).to_be_hidden()
        expect(page.locator("#model option")).to_have_count(1)
    finally:
        ctx.close()
