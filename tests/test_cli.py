"""The `loupe` command fails fast and readably where it cannot serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunningServer

LOUPE = [sys.executable, "-m", "loupe"]


def run(*args: str, timeout: float = 300, cwd: Path | None = None, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if data is not None:
        env["XDG_DATA_HOME"] = str(data)
    return subprocess.run([*LOUPE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    """The command failed with one error line, saying `expected`, and no traceback (a line naming
    the database may come before it)."""
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and all(line.startswith("database: ") for line in lines[:-1]), done.stderr
    for text in expected:
        assert text in lines[-1]


def test_default_model_unavailable_offline_fails_with_advice(tmp_path: Path) -> None:
    done = run("serve", "--port", "0", data=tmp_path)  # offline: the hub is never waited for
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "HuggingFaceTB/SmolVLM-256M-Instruct" in output
    assert "--model PATH" in output
    assert "Traceback" not in output


def test_missing_local_checkpoint_is_reported(tmp_path: Path) -> None:
    done = run("serve", "--model", str(tmp_path / "nothing-here"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "nothing-here" in done.stderr


def test_invalid_config_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text('[[models]]\nid = "m"\ncheckpoint = "x"\ncontext_size = "big"\n')
    done = run("serve", "--config", str(config))
    assert done.returncode != 0
    assert "context_size" in done.stderr and "Traceback" not in done.stderr


def test_tiny_model_refuses_an_unknown_family(tmp_path: Path) -> None:
    done = run("tiny-model", "not-a-family", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "qwen2-vl" in done.stderr and "smolvlm" in done.stderr


def test_tiny_model_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    done = run("tiny-model", "qwen2-vl", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()


def test_offline_estimate_matches_the_server(qwen_server: RunningServer, tiny_checkpoint: Callable[[str], Path]) -> None:
    import re

    import httpx

    from tests.helpers import PHOTOS, data_url, image_part

    photos = [PHOTOS / "boats.jpg", PHOTOS / "bus.jpg"]
    done = run(
        "estimate", "--model", str(tiny_checkpoint("qwen2-vl")), *map(str, photos),
        "--detail", "auto", "--text", "Compare them.", "--max-tokens", "50",
    )
    assert done.returncode == 0, done.stderr
    offline = dict(re.findall(r"(\w+_tokens)=(\d+)", done.stdout))
    model = httpx.get(f"{qwen_server.api}/models").json()["data"][0]["id"]
    content = [*(image_part(data_url(p), "auto") for p in photos), {"type": "text", "text": "Compare them."}]
    online = httpx.post(
        f"{qwen_server.api}/estimate",
        json={"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 50},
    ).json()
    for key in ("prompt_tokens", "image_tokens", "text_tokens", "max_completion_tokens"):
        assert int(offline[key]) == online[key], key
    assert "1176x672" in done.stdout


def test_offline_estimate_refuses_a_broken_file(tiny_checkpoint: Callable[[str], Path]) -> None:
    from tests.helpers import PILLOW

    done = run("estimate", "--model", str(tiny_checkpoint("qwen2-vl")), str(PILLOW / "hopper.tif"))
    assert done.returncode == 1
    assert "TIFF" in done.stderr.upper() and "Traceback" not in done.stderr


def test_version_and_short_help() -> None:
    from loupe import __version__

    assert run("--version").stdout.strip() == f"loupe {__version__}"
    helped = run("keys", "create", "-h")
    assert helped.returncode == 0 and "--balance AMOUNT" in helped.stdout
    assert "<bool>" not in helped.stdout and "<str>" not in helped.stdout


def test_keys_live_in_one_database_whatever_the_directory(tmp_path: Path) -> None:
    data, here, there = tmp_path / "data", tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    made = run("keys", "create", "--name", "team", "--balance", "2.5", "--json", cwd=here, data=data)
    assert made.returncode == 0, made.stderr
    database = data / "loupe" / "loupe.db"
    assert f"database: SQLite {database}" in made.stderr
    created = json.loads(made.stdout)
    assert created["secret"].startswith("lp-") and created["balance"] == "2.5"

    piped = run("keys", "list", cwd=there, data=data)  # not a terminal: tab-separated, full ids
    assert piped.stdout.split("\t")[0] == created["id"]
    assert f"database: SQLite {database}" in piped.stderr
    listed = json.loads(run("keys", "list", "--json", cwd=there, data=data).stdout)
    assert [k["id"] for k in listed] == [created["id"]] and "secret" not in listed[0]
    topped = json.loads(run("keys", "top-up", created["id"], "1.25", "--json", data=data).stdout)
    assert topped["balance"] == "3.75"
    assert not list(here.iterdir()) and not list(there.iterdir())


@pytest.mark.parametrize(
    "args, expected",
    [
        (("keys", "create", "--name", "x", "--balance", "abc"), "'abc' is not an amount"),
        (("keys", "create", "--name", "x", "--balance", "-5"), "'-5' is not an amount of at least 0"),
        (("keys", "create", "--name", "x", "--balance", "0.0000000001"), "more than 9 decimals"),
        (("keys", "top-up", "key_x", "ten"), "'ten' is not an amount"),
        (("keys", "top-up", "key_x", "-100"), "'-100' is not an amount above 0"),
        (("keys", "revoke", "key_missing"), "no API key with id 'key_missing'"),
        (("keys", "create", "--name", "x", "--rpm", "0"), "--rpm"),
        (("nope",), "No such command 'nope'"),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    one_line_error(run(*args, data=tmp_path), expected)


def test_model_ids_are_checked_against_the_config(tmp_path: Path) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text('[[models]]\nid = "tiny-qwen"\ncheckpoint = "x"\n')
    typo = run("keys", "create", "--name", "x", "--models", "tiny-qwn", "--config", str(config), data=tmp_path)
    one_line_error(typo, "'tiny-qwn' is not a model", "did you mean 'tiny-qwen'?")
    assert not (tmp_path / "loupe").exists()  # refused before the database was touched
    fine = run("keys", "create", "--name", "x", "--models", "tiny-qwen", "--config", str(config), data=tmp_path)
    assert fine.returncode == 0, fine.stderr


def test_doctor_says_what_serve_would_use(tmp_path: Path, tiny_checkpoint: Callable[[str], Path]) -> None:
    checkpoint = tiny_checkpoint("qwen2-vl")
    done = run("doctor", "--model", str(checkpoint), "--json", data=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["database"] == f"SQLite {tmp_path / 'loupe' / 'loupe.db'}"
    assert report["keys"] == {"total": 0, "active": 0, "admin": 0} and report["access"].startswith("OPEN")
    assert report["device"].startswith("cpu") and report["dtype"] in {"float32", "bfloat16"}
    assert report["models"][0]["found"] == f"{checkpoint} (qwen2-vl)" and report["problems"] == []
    assert not (tmp_path / "loupe").exists()  # doctor writes nothing

    exposed = run("doctor", "--model", str(tmp_path / "missing"), "--host", "0.0.0.0", data=tmp_path)
    assert exposed.returncode == 1
    assert "would refuse to listen on 0.0.0.0" in exposed.stdout and "missing is not a directory" in exposed.stdout


def test_doctor_imports_torch_only_where_it_could_find_a_gpu(tmp_path: Path, tiny_checkpoint: Callable[[str], Path]) -> None:
    from loupe.engines.local.placement import gpu_build

    code = (
        "import sys\nfrom loupe.cli import main\n"
        f"try: main(['doctor', '--model', {str(tiny_checkpoint('qwen2-vl'))!r}, '--json'])\n"
        "except SystemExit: pass\n"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_DATA_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    report, imported = done.stdout.strip().rsplit("\n", 1)
    if gpu_build():  # only torch can tell whether a GPU is there
        assert imported == "['torch', 'transformers']", done.stderr
    else:
        assert imported == "[]" and json.loads(report)["device"] == "cpu (asked: auto)", done.stderr


def test_serve_names_its_database(qwen_server: RunningServer) -> None:
    assert f"database: SQLite {qwen_server.log_path.parent / 'loupe.db'}" in qwen_server.log()


def test_a_busy_port_fails_before_loading_models(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("serve", "--model", str(tmp_path / "never-loaded"), "--port", str(port), data=tmp_path)
    one_line_error(done, f"cannot listen on 127.0.0.1:{port}", "--port")
    assert "never-loaded" not in done.stderr  # refused before the model was looked at
def test_real_size_model_refuses_an_unknown_name(tmp_path: Path) -> None:
    done = run("real-size-model", "SmolVLM-1T", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "SmolVLM-256M-Instruct" in done.stderr and "Qwen2-VL-2B-Instruct" in done.stderr
    assert not (tmp_path / "out").exists()
