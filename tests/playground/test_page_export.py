"""The playground's code and exported conversations run outside the browser and give the same answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.helpers import data_url
from tests.playground.browser import PHOTO, answer_done, posted, shot

from playwright.sync_api import Page, expect


# Not skipped when the browser is missing: `make test` installs it, and a skip would hide that.
pytestmark = pytest.mark.e2e


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
