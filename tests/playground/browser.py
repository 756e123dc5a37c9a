"""What the playground's browser tests share: Chromium's settings, the page's actors and checks.

Screenshots of each step go to test-artifacts/playground/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, REPO, data_url

from playwright.sync_api import Browser, Page, Request, expect


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts" / "playground"
PHOTO = PHOTOS / "extreme_ironing.jpg"
PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.6")
ANSWER_TIMEOUT_MS = 120_000
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
WATCH_UPDATES = """() => {
    window.answerUpdates = 0;
    const count = () => { window.answerUpdates += 1; };
    new MutationObserver(count).observe(document.querySelector("#messages"), { subtree: true, childList: true });
}"""

@contextmanager
def open_page(browser: Browser, server: RunningServer, **context: Any) -> Iterator[Page]:
    """The playground in a fresh browser context; fails if a script error happened on the page."""
    ctx = browser.new_context(**context)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
    page = ctx.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto(f"{server.base_url}/playground")
    expect(page.locator("#model")).to_have_value("tiny-qwen")
    try:
        yield page
    finally:
        ctx.close()
    assert not script_errors

def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png")


def posted(page: Page, path: str = "/v1/estimate") -> list[dict[str, Any]]:
    """The bodies the page posts to `path`, in order."""
    bodies: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith(path):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    return bodies


def server_estimate(server: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    return httpx.post(f"{server.api}/estimate", json=body, timeout=60).json()  # type: ignore[no-any-return]


def request_body(messages: list[dict[str, Any]], max_tokens: int = 256, **options: Any) -> dict[str, Any]:
    return {
        "model": "tiny-qwen",
        "messages": messages,
        "max_tokens": max_tokens,
        **options,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def photo_message(text: str, detail: str = "auto") -> dict[str, Any]:
    image = {"type": "image_url", "image_url": {"url": data_url(PHOTO), "detail": detail}}
    return {"role": "user", "content": [image, {"type": "text", "text": text}]}


def expected_cost(prompt_tokens: int, completion_tokens: int) -> str:
    cost = (prompt_tokens * PRICE_IN + completion_tokens * PRICE_OUT) / Decimal(10**6)
    return f"{cost.normalize():f} USD"


def answer_done(page: Page, turn: int) -> Any:
    answer = page.locator(".message.assistant").nth(turn)
    expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
    return answer


def check_usage(answer: Any, prompt_tokens: int, image_tokens: int) -> None:
    expect(answer.locator(".prompt-tokens")).to_have_text(str(prompt_tokens))
    expect(answer.locator(".image-tokens")).to_have_text(str(image_tokens))
    completion = int(answer.locator(".completion-tokens").inner_text())
    assert completion >= 1
    expect(answer.locator(".cost")).to_have_text(expected_cost(prompt_tokens, completion))


def in_view(page: Page, selector: str) -> bool:
    """The element is entirely inside the window (not scrolled away, not below the fold)."""
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    return box["y"] >= 0 and box["y"] + box["height"] <= size["height"] + 0.5 and box["x"] + box["width"] <= size["width"] + 0.5


def page_does_not_scroll(page: Page) -> bool:
    return bool(page.evaluate(
        "() => document.scrollingElement.scrollHeight <= window.innerHeight"
        " && document.scrollingElement.scrollWidth <= window.innerWidth"
    ))
