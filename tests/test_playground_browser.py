"""The /playground page in a real browser (Playwright + Debian's Chromium) against a real `loupe serve`.

Screenshots of each step go to test-artifacts/playground/.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, start_server, stop_server
from tests.helpers import PHOTOS, PILLOW, REPO, data_url
from tests.video_clips import clip

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
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
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
    with open_page(browser, server, **DESKTOP) as page:
        yield page


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


def test_photo_estimate_stream_and_second_turn(page: Page, server: RunningServer) -> None:
    sent = posted(page)
    chats = posted(page, "/v1/chat/completions")
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
    page.press("#prompt", "Enter")  # Enter sends
    answer = answer_done(page, 0)
    assert answer.locator(".text").text_content()
    assert page.evaluate("window.answerUpdates") > 3  # the answer arrived piece by piece
    check_usage(answer, expected["prompt_tokens"], expected["image_tokens"])
    assert chats[-1] == first
    shot(page, "02-answer")

    page.fill("#prompt", "And what is he standing on?")
    expect(page.locator("#estimate")).to_have_attribute("data-state", "ready")
    second = sent[-1]
    reply = second["messages"][1]
    assert second["messages"][0] == first["messages"][0] and reply["role"] == "assistant" and reply["content"]
    assert second["messages"][2] == {"role": "user", "content": [{"type": "text", "text": "And what is he standing on?"}]}
    expected_second = server_estimate(server, second)
    expect(page.locator("#estimate-prompt-tokens")).to_have_text(str(expected_second["prompt_tokens"]))
    page.click("#send")
    check_usage(answer_done(page, 1), expected_second["prompt_tokens"], expected["image_tokens"])
    assert chats[-1] == second and expected_second["prompt_tokens"] > expected["prompt_tokens"]
    shot(page, "03-second-turn")


@pytest.mark.parametrize("device, name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_the_composer_stays_in_view_after_a_long_answer(
    browser: Browser, server: RunningServer, device: dict[str, Any], name: str
) -> None:
    with open_page(browser, server, **device) as page:
        if name == "phone":
            page.click("#panel > summary")  # settings are folded away on a phone
        page.fill("#max-tokens", "400")
        if name == "phone":
            page.click("#panel > summary")
        for turn, question in enumerate(["Tell me a long story.", "And another one, longer."]):
            page.fill("#prompt", question)
            page.press("#prompt", "Enter")
            expect(page.locator("#send")).to_have_text("Stop")
            assert in_view(page, "#send")  # Stop can be reached while the answer streams
            answer_done(page, turn)
        assert in_view(page, "#prompt") and in_view(page, "#send") and page_does_not_scroll(page)
        # The conversation scrolled inside its own box, to its end (the last usage line shows).
        # (A random tiny model may end its answers early: a conversation that does not overflow
        # its box is at its end too; the message says which case failed.)
        box = "(m => [m.scrollTop, m.clientHeight, m.scrollHeight])"
        for _ in range(50):  # the last frame of the answer may still be laid out (the page's CSP forbids eval)
            top, height, content = page.evaluate(f"{box}(document.querySelector('#messages'))")
            if top + height >= content - 2:
                break
            page.wait_for_timeout(100)
        assert top + height >= content - 2, f"scrollTop {top}, clientHeight {height}, scrollHeight {content}"
        assert in_view(page, ".message.assistant:last-child .usage") or name == "phone"
        shot(page, f"08-long-answers-{name}")


def test_shift_enter_starts_a_new_line(page: Page) -> None:
    page.click("#prompt")
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(page.locator("#prompt")).to_have_value("first line\nsecond line")
    expect(page.locator("#messages .message")).to_have_count(0)


def test_answers_are_markdown_without_html_from_the_model(page: Page) -> None:
    text = (
        "**bold** and `code`\n\n- one\n- two\n\n<img src=x onerror=\"window.pwned=1\"> <script>window.pwned=2</script>\n\n"
        "[click](javascript:window.pwned=3) [docs](https://example.com/) ![tracker](https://example.com/t.png)"
    )
    page.evaluate(
        """async (text) => {
            const { showMarkdown } = await import("/playground/markdown.js");
            const box = document.createElement("div");
            box.id = "rendered";
            document.body.append(box);
            showMarkdown(box, text);
        }""",
        text,
    )
    rendered = page.locator("#rendered")
    expect(rendered.locator("strong")).to_have_text("bold")
    expect(rendered.locator("li")).to_have_count(2)
    assert rendered.locator("img, script, [onerror]").count() == 0
    assert rendered.locator("a[href^='javascript']").count() == 0
    link = rendered.locator("a[href='https://example.com/']")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert "<img src=x" in (rendered.text_content() or "")  # shown as text
    assert page.evaluate("window.pwned") is None


def test_system_prompt_and_sampling_reach_the_request(page: Page, server: RunningServer) -> None:
    sent = posted(page)
    page.fill("#system-prompt", "Answer in one word.")
    page.fill("#temperature", "0")
    page.fill("#top-p", "0.9")
    page.fill("#max-tokens", "12")
    page.fill("#prompt", "Hello")
    expect(page.locator("#estimate")).to_have_attribute("data-state", "ready")
    assert sent[-1] == request_body(
        [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        max_tokens=12, temperature=0, top_p=0.9,
    )
    expect(page.locator("#code-view")).to_contain_text("temperature=0,")
    expect(page.locator("#code-view")).to_contain_text('"role": "system"')
    shot(page, "09-settings")


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


def test_an_exported_conversation_replays_it(page: Page, server: RunningServer, tmp_path: Path) -> None:
    chats = posted(page, "/v1/chat/completions")
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "12")
    page.fill("#system-prompt", "You describe photos.")
    page.set_input_files("#file-input", PHOTO)
    for turn, question in enumerate(["What is in this photo?", "What colour is the shirt?"]):
        page.fill("#prompt", question)
        page.press("#prompt", "Enter")
        answer_done(page, turn)
    with page.expect_download() as download:
        page.click("#export")
    script = tmp_path / "conversation.py"
    download.value.save_as(script)
    assert data_url(PHOTO) in script.read_text()
    ran = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240,
        env={**os.environ, "LOUPE_BASE_URL": server.api},
    )
    assert ran.returncode == 0, ran.stderr
    answers = re.split(r"^--- answer \d .*$\n", ran.stdout, flags=re.M)[1:]
    assert len(answers) == 2
    first_answer = chats[-1]["messages"][2]["content"]  # the page's first answer, as it sent it back
    assert answers[0] == first_answer + "\n"  # greedy decoding: the same answer again (print adds the newline)


def test_an_image_the_server_refuses_stays_with_the_reason(page: Page, server: RunningServer) -> None:
    tif = PILLOW / "hopper.tif"
    page.set_input_files("#file-input", tif)
    page.fill("#prompt", "What is this?")
    url = "data:image/tiff;base64," + base64.b64encode(tif.read_bytes()).decode()
    body = request_body([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}, {"type": "text", "text": "What is this?"}]}])
    error = server_estimate(server, body)["error"]
    attachment = page.locator(".attachment")
    expect(attachment).to_have_attribute("data-state", "error")
    expect(attachment.locator(".plan")).to_contain_text(error["message"])
    expect(page.locator("#estimate")).to_contain_text(error["message"])

    page.click("#send")
    expect(page.locator("#error")).to_contain_text(error["message"])
    expect(page.locator("#error")).to_contain_text(error["code"])
    expect(page.locator("#messages .message")).to_have_count(0)  # a refused turn does not join the history
    expect(page.locator(".attachment")).to_have_count(1)  # and its image is still there to remove or fix
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
    # Loupe refuses loopback URLs by default; the estimate says so, beside the image.
    expect(page.locator("#estimate")).to_contain_text("messages[0].content[2]", timeout=10_000)
    expect(page.locator(".attachment").nth(2)).to_have_attribute("data-state", "error")
    expect(page.locator(".attachment").nth(0).locator(".plan")).to_have_text("570x380 -> 560x392, 280 tokens")
    shot(page, "06-drop-paste-url")
    page.locator(".attachment .remove").nth(2).click()
    expect(page.locator("#estimate-image-tokens")).to_have_text(str(2 * 280))


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


def test_a_video_file_with_its_estimate_and_answer(page: Page, server: RunningServer, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(clip("zoom").data)
    sent = posted(page)
    page.set_input_files("#file-input", video)
    page.fill("#prompt", "What happens in this clip?")
    page.locator(".attachment select").select_option("low")
    expect(page.locator(".attachment")).to_have_attribute("data-kind", "video")

    url = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
    part = {"type": "video_url", "video_url": {"url": url, "detail": "low"}}
    body = request_body([{"role": "user", "content": [part, {"type": "text", "text": "What happens in this clip?"}]}])
    expected = server_estimate(server, body)
    expect(page.locator("#estimate-video-tokens")).to_have_text(str(expected["video_tokens"]))
    expect(page.locator("#estimate-prompt-tokens")).to_have_text(str(expected["prompt_tokens"]))
    assert sent[-1] == body
    [plan] = expected["videos"]
    expect(page.locator(".attachment .plan")).to_have_text(
        f"256x192, 3 s -> {plan['frames']} frames at {plan['resized_width']}x{plan['resized_height']}, {plan['tokens']} tokens"
    )
    shot(page, "10-video-estimate")

    page.press("#prompt", "Enter")
    answer = answer_done(page, 0)
    expect(answer.locator(".video-tokens")).to_have_text(str(expected["video_tokens"]))
    expect(page.locator(".message.user video")).to_have_count(1)
    shot(page, "11-video-answer")
