"""A conversation in the playground: estimate, streamed answer, second turn, composer, markdown, settings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.playground.browser import DESKTOP, PHONE, PHOTO, WATCH_UPDATES, answer_done, check_usage, in_view, open_page, page_does_not_scroll, photo_message, posted, request_body, server_estimate, shot

from playwright.sync_api import Browser, Page, expect


# Not skipped when the browser is missing: `make test` installs it, and a skip would hide that.
pytestmark = pytest.mark.e2e


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
