"""GET /playground: the browser playground's static files, served from the package by name only."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from loupe.errors import NotFound

PLAYGROUND_DIR = Path(__file__).resolve().parents[2] / "web" / "playground"
# The user guide lives in the repository's docs/, beside src/; an installed wheel has no copy.
GUIDE = Path(__file__).resolve().parents[4] / "docs" / "vision-guide.md"

# Only these suffixes are served; anything else in the folder stays private.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# One path segment of plain characters: no slash, no leading dot, so no traversal and no hidden files.
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")

# The page talks only to its own origin; images may come from data:, blob: or any web URL.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: http: https:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
}


def static_file(name: str, folder: Path = PLAYGROUND_DIR) -> Response:
    """The file `name` of `folder` with its content type. Raises NotFound for anything else."""
    content_type = CONTENT_TYPES.get(Path(name).suffix)
    path = folder / name
    if not _FILE_NAME.fullmatch(name) or content_type is None or not path.is_file():
        raise NotFound(f"no file {name!r} in the playground")
    return Response(path.read_bytes(), media_type=content_type, headers=_HEADERS)


def router() -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.api_route("/playground", methods=["GET", "HEAD"])
    def playground() -> Response:
        return static_file("index.html")

    @api.api_route("/playground/guide", methods=["GET", "HEAD"])
    def guide() -> Response:
        if not GUIDE.is_file():
            raise NotFound("the vision guide is docs/vision-guide.md in Loupe's source repository")
        return Response(GUIDE.read_bytes(), media_type="text/plain; charset=utf-8", headers=_HEADERS)

    @api.api_route("/playground/{name}", methods=["GET", "HEAD"])
    def playground_file(name: str) -> Response:
        return static_file(name)

    return api
