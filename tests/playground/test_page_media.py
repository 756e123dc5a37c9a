"""Images and videos in the playground: added by drop, paste and URL, refused with a reason, estimated and answered."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.helpers import PILLOW
from tests.playground.browser import PHOTO, answer_done, posted, request_body, server_estimate, shot
from tests.video_clips import clip

from playwright.sync_api import Page, expect


# Not skipped when the browser is missing: `make test` installs it, and a skip would hide that.
pytestmark = pytest.mark.e2e


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
