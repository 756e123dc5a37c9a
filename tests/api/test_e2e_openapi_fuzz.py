"""Schema-driven fuzzing of the served OpenAPI document: every answer is one it declares.

schemathesis (its command line, a bounded number of cases with a fixed seed) generates valid
and invalid requests for every operation of `/openapi.json`, undeclared methods, and sequences
that follow links (create a key, then revoke it), and checks each answer: no server error, a
declared status and content type, a body and headers that match the document, 405s that name
the allowed methods, invalid input refused. Not checked: that every schema-valid request is
accepted, since the schemas cannot say everything Loupe validates (image bytes, served model
names, which roles may carry images), and such a request is answered 400 naming the field.

The server has an admin key, sent with every request; a small context, so a generated
`max_tokens` cannot run long; and fetches images from no real host.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api.keyed import keyed_server
from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Iterator[tuple[RunningServer, str]]:
    config = f"""
[[models]]
id = "vision"
checkpoint = "{tiny_checkpoint('qwen2-vl')}"
context_size = 160
[fetch]
allowed_domains = ["loupe.invalid"]
"""
    with keyed_server(tmp_path_factory.mktemp("fuzzed"), config) as (server, _, admin):
        yield server, admin


def test_no_answer_is_off_the_openapi_document(keyed: tuple[RunningServer, str], tmp_path: Path) -> None:
    server, admin = keyed
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.base_url}/openapi.json",
            "--header", f"Authorization: Bearer {admin}",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "--max-examples", "20", "--seed", "21", "--workers", "1", "--no-color",
        ],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-2000:]
    assert "Tested: 16" in done.stdout  # every operation was exercised
