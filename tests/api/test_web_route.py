"""The playground's static route: files by name only, with their content types; no traversal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from loupe.api.errors import install_handlers
from loupe.api.routes import web
from loupe.errors import NotFound


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_handlers(app)
    app.include_router(web.router())
    return TestClient(app)


def test_playground_is_the_index(client: TestClient) -> None:
    response = client.get("/playground")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == (web.PLAYGROUND_DIR / "index.html").read_bytes()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "name, content_type",
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ],
)
def test_files_have_their_content_types(client: TestClient, name: str, content_type: str) -> None:
    response = client.get(f"/playground/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


def test_every_file_of_the_folder_is_served() -> None:
    """A file added to the playground with a suffix the route does not know would be a dead link."""
    for path in web.PLAYGROUND_DIR.iterdir():
        assert path.suffix in web.CONTENT_TYPES, path.name


@pytest.mark.parametrize(
    "path",
    [
        "/playground/..%2Froutes%2Fweb.py",
        "/playground/..%2F..%2F__init__.py",
        "/playground/%2e%2e",
        "/playground/.hidden.js",
        "/playground/missing.js",
        "/playground/index.html%00.js",
        "/playground/..\\web.py",
    ],
)
def test_paths_outside_the_folder_are_refused(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("name", ["../api/app.py", "/etc/passwd", "..", "", "sub/app.js", "app.py", ".app.js"])
def test_static_file_takes_plain_names_only(name: str) -> None:
    with pytest.raises(NotFound):
        web.static_file(name)


def test_a_known_suffix_outside_the_folder_is_not_reachable(tmp_path: Path) -> None:
    (tmp_path / "secret.js").write_text("secret")
    inner = tmp_path / "inner"
    inner.mkdir()
    with pytest.raises(NotFound):
        web.static_file("../secret.js", inner)
    assert web.static_file("secret.js", tmp_path).body == b"secret"


def test_the_page_loads_nothing_from_other_origins() -> None:
    """No CDN: every script, style and module import is a path on this server."""
    remote = re.compile(r"""(?:src|href)=["']https?:|from\s+["']https?:|import\(["']https?:|url\(["']?https?:""")
    for path in web.PLAYGROUND_DIR.iterdir():
        assert not remote.search(path.read_text()), path.name


def test_the_guide_is_linked_and_served(client: TestClient) -> None:
    assert 'href="/playground/guide"' in (web.PLAYGROUND_DIR / "index.html").read_text()
    response = client.get("/playground/guide")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.startswith("# Loupe vision guide")
