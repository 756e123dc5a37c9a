"""The /playground page in a real browser (Playwright + Debian's Chromium) against a real `loupe serve`.

Screenshots of each step go to test-artifacts/playground/.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, PILLOW, REPO, data_url

from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

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
WATCH_UPDATES = """() => {
    window.answerUpdates = 0;
    const count = () => { window.answerUpdates += 1; };
    new MutationObserver(count).observe(document.querySelector("#messages"), { subtree: true, childList: true });
}"""

# Not skipped when the browser is missing: `make test` installs it, and a skip would hide that.
pytestmark = pytest.mark.e2e


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


@pytest.fixture()
def page(browser: Browser, server: RunningServer) -> Iterator[Page]:
    with open_page(browser, server, viewport={"width": 1280, "height": 900}) as page:
        yield page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def estimate_requests(page: Page) -> list[dict[str, Any]]:
    """The bodies the page posts to /v1/estimate, in order."""
    bodies: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/estimate"):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    return bodies


def server_estimate(server: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    return httpx.post(f"{server.api}/estimate", json=body, timeout=60).json()  # type: ignore[no-any-return]


def request_body(messages: list[dict[str, Any]], max_tokens: int = 256) -> dict[str, Any]:
    return {
        "model": "tiny-qwen",
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def photo_message(text: str, detail: str) -> dict[str, Any]:
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


def test_photo_estimate_stream_and_second_turn(page: Page, server: RunningServer) -> None:
    sent = estimate_requests(page)
    page.set_input_files("#file-input", PHOTO)
    page.fill("#prompt", "What is unusual about this image?")
    page.locator(".attachment select").select_option("low")

    first = request_body([photo_message("What is unusual about this image?", "low")])
    expected = server_estimate(server, first)
    expect(page.locator("#estimate-prompt-tokens")).to_have_text(str(expected["prompt_tokens"]))
    assert sent[-1] == first  # the page estimated exactly the body it will send
    expect(page.locator(".attachment .plan")).to_have_text("570x380 -> 448x448, 256 tokens")
    shot(page, "01-estimate")

    page.evaluate(WATCH_UPDATES)
    page.click("#send")
    answer = answer_done(page, 0)
    assert answer.locator(".text").text_content()
    assert page.evaluate("window.answerUpdates") > 10  # the answer arrived piece by piece
    check_usage(answer, expected["prompt_tokens"], expected["image_tokens"])
    shot(page, "02-answer")

    page.fill("#prompt", "And what is he standing on?")
    reply = answer.locator(".text").text_content()
    second = request_body([
        photo_message("What is unusual about this image?", "low"),
        {"role": "assistant", "content": reply},
        {"role": "user", "content": [{"type": "text", "text": "And what is he standing on?"}]},
    ])
    expected_second = server_estimate(server, second)
    expect(page.locator("#estimate-prompt-tokens")).to_have_text(str(expected_second["prompt_tokens"]))
    assert sent[-1] == second  # the history holds the first image and the answer
    page.click("#send")
    check_usage(answer_done(page, 1), expected_second["prompt_tokens"], expected["image_tokens"])
    assert expected_second["prompt_tokens"] > expected["prompt_tokens"]
    shot(page, "03-second-turn")


def test_copied_code_runs(page: Page, server: RunningServer, tmp_path: Path) -> None:
    page.set_input_files("#file-input", PHOTO)
    page.fill("#prompt", "Describe the photo.")
    page.fill("#max-tokens", "8")
    expect(page.locator("#code-view")).to_contain_text("more characters]")  # the data URL, abbreviated
    shot(page, "04-code")

    page.click("#copy-code")
    python_code = page.evaluate("navigator.clipboard.readText()")
    assert data_url(PHOTO) in python_code  # the copy carries the whole image
    script = tmp_path / "example.py"
    script.write_text(python_code)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "prompt_tokens" in ran.stdout

    page.click("[role=tab][data-lang=curl]")
    page.click("#copy-code")
    curl_code = page.evaluate("navigator.clipboard.readText()")
    ran = subprocess.run(["bash", "-c", curl_code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "data: [DONE]" in ran.stdout


def test_invalid_image_shows_the_server_error(page: Page, server: RunningServer) -> None:
    tif = PILLOW / "hopper.tif"
    page.set_input_files("#file-input", tif)
    page.fill("#prompt", "What is this?")
    url = "data:image/tiff;base64," + base64.b64encode(tif.read_bytes()).decode()
    body = request_body([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is this?"}]}])
    error = server_estimate(server, body)["error"]
    expect(page.locator("#estimate")).to_contain_text(error["message"])

    page.click("#send")
    expect(page.locator("#error")).to_contain_text(error["message"])
    expect(page.locator("#error")).to_contain_text(error["code"])
    expect(page.locator("#messages .message")).to_have_count(0)  # a refused turn does not join the history
    shot(page, "05-invalid-image")


def test_drop_paste_and_url_add_images(page: Page) -> None:
    payload = base64.b64encode(PHOTO.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event("#composer", "drop", {"dataTransfer": transfer})
    page.evaluate(
        "(t) => document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: t, bubbles: true }))", transfer
    )
    page.fill("#image-url", "http://127.0.0.1:9/private.png")
    page.click("#add-url")
    expect(page.locator(".attachment")).to_have_count(3)
    expect(page.locator(".attachment .name")).to_have_text(["dropped.jpg", "dropped.jpg", "private.png"])
    # Loupe refuses loopback URLs by default; the estimate says so.
    expect(page.locator("#estimate")).to_contain_text("messages[0].content[2]", timeout=10_000)
    page.locator(".attachment .remove").nth(2).click()
    expect(page.locator("#estimate-image-tokens")).to_have_text(str(2 * 280))
    shot(page, "06-drop-paste-url")


def test_api_key_is_kept_locally_and_sent_as_bearer(page: Page, server: RunningServer) -> None:
    headers: list[str | None] = []
    page.on("request", lambda r: headers.append(r.headers.get("authorization")) if "/v1/" in r.url else None)
    page.fill("#api-key", "sk-playground-test")
    page.dispatch_event("#api-key", "change")
    page.fill("#prompt", "Hello")
    expect(page.locator("#estimate")).not_to_have_attribute("data-state", "pending", timeout=10_000)
    assert headers and headers[-1] == "Bearer sk-playground-test"
    page.reload()
    expect(page.locator("#api-key")).to_have_value("sk-playground-test")
    assert page.evaluate("localStorage.getItem('loupe.playground.apiKey')") == "sk-playground-test"


def test_phone_width_has_no_horizontal_overflow(browser: Browser, server: RunningServer) -> None:
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    with open_page(browser, server, **phone) as page:
        page.set_input_files("#file-input", PHOTO)
        page.fill("#prompt", "What is unusual about this image?")
        expect(page.locator("#estimate")).to_have_attribute("data-state", "ready")
        page.click("#send")
        answer_done(page, 0)
        shot(page, "07-phone")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
