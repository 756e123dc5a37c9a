"""The pages for people: home, playground, docs pages and the API reference, all served offline.

Static files are served from the package by name only; Swagger UI's and ReDoc's assets come from
the `fastapi-offline` package, so nothing a page loads needs the internet.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loupe import __version__
from loupe.api import pages
from loupe.errors import NotFound

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
PLAYGROUND_DIR = WEB_DIR / "playground"
VENDOR_DIR = PLAYGROUND_DIR / "vendor"
SITE_DIR = WEB_DIR / "site"
SWAGGER_DIR = Path(str(files("fastapi_offline") / "static"))
OPENAPI_URL = "/openapi.json"

# Only these suffixes are served; anything else in a folder stays private.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}

# One path segment of plain characters: no slash, no leading dot, so no traversal and no hidden files.
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")

# The pages talk only to their own origin; images and videos may come from data:, blob: or any web URL.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: http: https:; media-src 'self' data: blob: http: https:; "
        "connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
}


def static_file(name: str, folder: Path = PLAYGROUND_DIR) -> Response:
    """The file `name` of `folder` with its content type. Raises NotFound for anything else."""
    content_type = CONTENT_TYPES.get(Path(name).suffix)
    path = folder / name
    if not _FILE_NAME.fullmatch(name) or content_type is None or not path.is_file():
        raise NotFound(f"no file {name!r} here")
    return Response(path.read_bytes(), media_type=content_type, headers=_HEADERS)


def _html(text: str) -> HTMLResponse:
    return HTMLResponse(text, headers=_HEADERS)


Listed = Callable[[Request], Awaitable[Sequence[str] | None]]


def router(listed: Listed) -> APIRouter:
    """The pages; `listed` gives the ids of the models a request may list, for the home page
    (None: a key is needed to list them, as `GET /v1/models` says)."""
    api = APIRouter(include_in_schema=False)

    @api.api_route("/", methods=["GET", "HEAD"])
    async def home(request: Request) -> HTMLResponse:
        return _html(pages.home(__version__, str(request.base_url), await listed(request)))

    @api.api_route("/favicon.ico", methods=["GET", "HEAD"])
    @api.api_route("/favicon.svg", methods=["GET", "HEAD"])
    def favicon() -> Response:
        return static_file("favicon.svg", SITE_DIR)

    @api.api_route("/site/{name}", methods=["GET", "HEAD"])
    def site_file(name: str) -> Response:
        return static_file(name, SITE_DIR)

    @api.api_route("/playground", methods=["GET", "HEAD"])
    def playground() -> Response:
        return static_file("index.html")

    @api.api_route("/playground/guide", methods=["GET", "HEAD"])
    def old_guide_link() -> RedirectResponse:
        return RedirectResponse("/guide/vision-guide", status_code=308)

    @api.api_route("/playground/vendor/{name}", methods=["GET", "HEAD"])
    def vendored(name: str) -> Response:
        return static_file(name, VENDOR_DIR)

    @api.api_route("/playground/{name}", methods=["GET", "HEAD"])
    def playground_file(name: str) -> Response:
        return static_file(name)

    @api.api_route("/guide", methods=["GET", "HEAD"])
    def guide_index() -> HTMLResponse:
        return _html(pages.docs_index())

    @api.api_route("/guide/{name}", methods=["GET", "HEAD"])
    def guide(name: str) -> HTMLResponse:
        rendered = pages.doc_page(name)
        if rendered is None:
            raise NotFound(f"no docs page {name!r}; the pages are listed at /guide")
        return _html(rendered)

    api.include_router(reference_router())
    return api


def reference_router() -> APIRouter:
    """/docs (Swagger UI) and /redoc (ReDoc) on the app's OpenAPI document, with local assets."""
    api = APIRouter(include_in_schema=False)

    @api.get("/docs")
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title="Loupe API reference",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/favicon.svg",
        )

    @api.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title="Loupe API reference",
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/favicon.svg",
            with_google_fonts=False,
        )

    @api.get("/docs/assets/{name}")
    def asset(name: str) -> Response:
        content_type = CONTENT_TYPES.get(Path(name).suffix)
        path = SWAGGER_DIR / name
        if not _FILE_NAME.fullmatch(name) or content_type is None or not path.is_file():
            raise NotFound(f"no file {name!r} here")
        return Response(path.read_bytes(), media_type=content_type, headers={"Cache-Control": "max-age=86400"})

    return api
