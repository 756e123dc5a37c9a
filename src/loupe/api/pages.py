"""The HTML pages Loupe serves besides the playground: the home page and the docs as pages.

Everything is rendered here, from the package and the repository's docs/, with no request to
another origin. Markdown is rendered with raw HTML off, so a page shows what the file says.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

# The user docs live in the repository's docs/, beside src/; an installed wheel has no copy.
DOCS_DIR = Path(__file__).resolve().parents[3] / "docs"
# Pages by route name, in the order the home page lists them.
DOC_PAGES = {
    "vision-guide": "Vision guide: requests, detail, billing, errors",
    "image-tokens": "Image tokens: each family's exact rules",
    "billing": "Keys, balances and billing",
    "deploy": "Deploying: upstream engines, several processes, containers",
    "benchmarks": "Benchmarks",
    "internals": "The embedded engine's internals",
}

_SLUG_DROP = re.compile(r"[^\w\- ]", re.UNICODE)


def slug(text: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return _SLUG_DROP.sub("", text.strip().lower()).replace(" ", "-")


def _anchors_and_links(tokens: list[Token]) -> None:
    """Give headings GitHub's ids, and point links to other docs pages (x.md) at their routes."""
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and i + 1 < len(tokens):
            token.attrSet("id", slug("".join(child.content for child in tokens[i + 1].children or [])))
        for child in token.children or []:
            href = child.attrGet("href") if child.type == "link_open" else None
            if href == "../README.md":  # the README's place on a server is its home page
                child.attrSet("href", "/")
            elif isinstance(href, str) and "://" not in href:
                page, dot_md, anchor = href.partition(".md")
                if dot_md and "/" not in page.strip("./") and page.strip("./") in DOC_PAGES:
                    child.attrSet("href", f"/guide/{page.strip('./')}{anchor}")


def render_markdown(text: str) -> str:
    """Markdown to HTML: CommonMark and tables; raw HTML is shown as text, never interpreted."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(text)
    _anchors_and_links(tokens)
    return str(parser.renderer.render(tokens, parser.options, {}))


def page(title: str, body: str, *, nav: bool = True) -> str:
    """A whole HTML page around `body` (already HTML), with the site's stylesheet."""
    links = (
        '<nav><a href="/">Home</a><a href="/playground">Playground</a><a href="/guide">Guide</a>'
        '<a href="/docs">API reference</a></nav>'
        if nav
        else ""
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="icon" href="/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/site/page.css"></head>'
        f'<body><header class="bar"><a class="brand" href="/">Loupe</a>{links}</header>'
        f"<main>{body}</main></body></html>\n"
    )


def doc_page(name: str) -> str | None:
    """The docs page `name` rendered, or None when this installation has no copy of it."""
    path = DOCS_DIR / f"{name}.md"
    if name not in DOC_PAGES or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0].lstrip("# ").strip() if text else name
    return page(f"{first} - Loupe", f'<article class="doc">{render_markdown(text)}</article>')


def docs_index() -> str:
    items = "".join(
        f'<li><a href="/guide/{name}">{html.escape(title)}</a></li>'
        for name, title in DOC_PAGES.items()
        if (DOCS_DIR / f"{name}.md").is_file()
    )
    body = f"<h1>Loupe documentation</h1><ul class=\"links\">{items}</ul>" if items else _no_docs()
    return page("Documentation - Loupe", body)


def _no_docs() -> str:
    return (
        "<h1>Loupe documentation</h1><p>This installation has no copy of the docs: they are the "
        "<code>docs/</code> folder of Loupe's source repository.</p>"
    )


def home(version: str, base_url: str, models: Sequence[str]) -> str:
    """The server's front page: what is served, where to go next, and a first request."""
    model = models[0] if models else "MODEL"
    served = "".join(f"<li><code>{html.escape(m)}</code></li>" for m in models) or "<li>none</li>"
    api = f"{base_url.rstrip('/')}/v1"
    example = (
        f"curl {api}/chat/completions \\\n"
        '  -H "Content-Type: application/json" \\\n'
        '  -H "Authorization: Bearer $LOUPE_API_KEY" \\\n'
        f'  -d \'{{"model": "{model}", "max_tokens": 64,\n'
        '       "messages": [{"role": "user", "content": "Hello!"}]}\''
    )
    body = (
        f'<h1>Loupe <span class="muted">{html.escape(version)}</span></h1>'
        "<p>Vision-language models behind the OpenAI chat-completions API. Point any OpenAI client at "
        f"<code>{html.escape(api)}</code>.</p>"
        '<ul class="links">'
        '<li><a href="/playground">Playground</a>: try requests with images in the browser</li>'
        '<li><a href="/guide">Guide</a>: request formats, <code>detail</code>, billing, errors</li>'
        '<li><a href="/docs">API reference</a> (<a href="/openapi.json">OpenAPI document</a>)</li>'
        '<li><a href="/health">Health</a> and <a href="/metrics">metrics</a></li>'
        "</ul>"
        f"<h2>Models served</h2><ul>{served}</ul>"
        f"<h2>A first request</h2><pre><code>{html.escape(example)}</code></pre>"
    )
    return page("Loupe", body, nav=False)
