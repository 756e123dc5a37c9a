"""`metadata`, `user` and `safety_identifier` through a real server with keys: on the ledger row,
and in the usage API grouped by them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import httpx
import pytest
import sqlalchemy as sa

from loupe.billing import open_database
from tests.conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Iterator[tuple[RunningServer, str, str]]:
    root = tmp_path_factory.mktemp("tags")
    db = f"sqlite:///{root / 'loupe.db'}"
    made = subprocess.run(
        [sys.executable, "-m", "loupe", "keys", "create", "--name", "tagger", "--db", db],
        capture_output=True, text=True, timeout=60, check=True,
    )
    secret = made.stdout.strip().splitlines()[-1]
    server = start_server(["--model", str(tiny_checkpoint("qwen2-vl")), "--db", db], root / "server.log")
    yield server, db, secret
    stop_server(server)


def test_tags_reach_the_ledger_and_the_usage_api(keyed: tuple[RunningServer, str, str]) -> None:
    server, db, secret = keyed
    client = openai.OpenAI(base_url=server.api, api_key=secret, max_retries=0)
    model = client.models.list().data[0].id
    ask = [{"role": "user", "content": "Hi"}]
    for project, person in (("invoices", "ann"), ("invoices", "bob"), ("receipts", "ann")):
        client.chat.completions.create(
            model=model, messages=ask, max_tokens=2, metadata={"project": project}, user=person,
            safety_identifier=f"h-{person}",
        )
    database = open_database(db)
    try:
        with database.read() as conn:
            rows = conn.execute(sa.text("select user, safety_identifier, request_metadata from ledger")).all()
    finally:
        database.dispose()
    assert sorted((r[0], r[1]) for r in rows) == [("ann", "h-ann"), ("ann", "h-ann"), ("bob", "h-bob")]
    headers = {"authorization": f"Bearer {secret}"}
    by_project = httpx.get(f"{server.api}/usage", params={"group_by": "metadata.project"}, headers=headers).json()
    assert {g["group"]: g["requests"] for g in by_project["data"]} == {"invoices": 2, "receipts": 1}
    by_user = httpx.get(f"{server.api}/usage", params={"group_by": "user"}, headers=headers).json()
    assert {g["group"]: g["requests"] for g in by_user["data"]} == {"ann": 2, "bob": 1}
    refused = httpx.get(f"{server.api}/usage", params={"group_by": "colour"}, headers=headers)
    assert refused.status_code == 400 and "group_by" in refused.json()["error"]["param"]
