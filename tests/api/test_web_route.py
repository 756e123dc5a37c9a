"""The playground's static route: files by name only, with their content types; no traversal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from loupe.api.errors import install_handlers
from loupe.api import pages
from loupe.api.routes import web
from loupe.errors import NotFound


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_handlers(app)
    app.include_router(web.router(lambda: ["tiny-qwen"]))
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


def test_every_file_of_the_folders_is_served() -> None:
    """A file added with a suffix the routes do not know would be a dead link."""
    for folder in (web.PLAYGROUND_DIR, web.VENDOR_DIR, web.SITE_DIR):
        for path in folder.iterdir():
            assert path.is_dir() or path.suffix in web.CONTENT_TYPES, path.name


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


def test_the_pages_load_nothing_from_other_origins(client: TestClient) -> None:
    """No CDN: every script, style and module import is a path on this server."""
    remote = re.compile(r"""(?:src|href)=["']https?:|from\s+["']https?:|import\(["']https?:|url\(["']?https?:""")
    for folder in (web.PLAYGROUND_DIR, web.SITE_DIR):
        for path in folder.glob("*.*"):
            assert not remote.search(path.read_text()), path.name
    for route in ("/", "/docs", "/redoc", "/guide", "/guide/vision-guide"):
        assert not remote.search(client.get(route).text), route


@pytest.mark.parametrize(
    "route, asset", [("/docs", "/docs/assets/swagger-ui-bundle.js"), ("/redoc", "/docs/assets/redoc.standalone.js")]
)
def test_the_api_reference_uses_packaged_assets(client: TestClient, route: str, asset: str) -> None:
    page = client.get(route)
    assert page.status_code == 200 and asset in page.text and "/openapi.json" in page.text
    script = client.get(asset)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 100_000
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404


def test_home_page_leads_somewhere(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for link in ('href="/playground"', 'href="/guide"', 'href="/docs"', "<code>tiny-qwen</code>"):
        assert link in page.text
    assert "http://testserver/v1/chat/completions" in page.text
    assert client.get("/favicon.ico").headers["content-type"] == "image/svg+xml"


def test_the_guide_is_a_page(client: TestClient) -> None:
    assert 'href="/guide/vision-guide"' in (web.PLAYGROUND_DIR / "index.html").read_text()
    moved = client.get("/playground/guide", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/guide/vision-guide"
    page = client.get("/guide/vision-guide")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1" in page.text and "Loupe vision guide" in page.text
    assert 'id="detail-resolution-against-tokens"' in page.text  # the contents' links land
    assert 'href="#detail-resolution-against-tokens"' in page.text
    assert 'href="/guide/image-tokens"' in page.text  # links to other pages become routes
    assert "<table>" in page.text
    assert 'href="/guide/deploy"' in client.get("/guide").text
    assert 'href="/"' in client.get("/guide/internals").text  # its link to the README
    assert client.get("/guide/..%2FREADME").status_code == 404


def test_markdown_shows_html_as_text() -> None:
    rendered = pages.render_markdown("# T\n\n<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=y>")
    assert "<script>" not in rendered and "<img" not in rendered and "href=\"javascript" not in rendered
    assert "&lt;script&gt;" in rendered
