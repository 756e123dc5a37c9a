"""The server's pages on a phone's width and without a network."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.playground.browser import DESKTOP, PHONE, PHOTO, answer_done, open_page, page_does_not_scroll, shot

from playwright.sync_api import Browser, expect


# Not skipped when the browser is missing: `make test` installs it, and a skip would hide that.
pytestmark = pytest.mark.e2e


def test_phone_width_has_no_horizontal_overflow(browser: Browser, server: RunningServer) -> None:
    with open_page(browser, server, **PHONE) as page:
        expect(page.locator("#panel")).not_to_have_attribute("open", "")  # settings folded away on a phone
        page.set_input_files("#file-input", PHOTO)
        page.fill("#prompt", "What is unusual about this image?")
        expect(page.locator("#estimate")).to_have_attribute("data-state", "ready")
        page.click("#send")
        answer_done(page, 0)
        shot(page, "07-phone")
        assert page_does_not_scroll(page)
        page.click("#panel > summary")
        expect(page.locator("#system-prompt")).to_be_visible()
        shot(page, "07-phone-settings")


def test_the_server_pages_work_offline(browser: Browser, server: RunningServer) -> None:
    """/docs, / and the guide render with every request to another origin refused."""
    ctx = browser.new_context(**DESKTOP)
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_this_server)
    try:
        page = ctx.new_page()
        page.goto(f"{server.base_url}/docs")
        expect(page.locator(".opblock-summary-path", has_text="/v1/chat/completions").first).to_be_visible(timeout=30_000)
        shot(page, "11-docs")
        page.goto(f"{server.base_url}/")
        expect(page.locator("main")).to_contain_text("tiny-qwen")
        page.click("text=Guide")
        page.click("text=Vision guide")
        expect(page.locator("h1")).to_have_text("Loupe vision guide")
        shot(page, "12-guide")
    finally:
        ctx.close()
    assert outside == []
