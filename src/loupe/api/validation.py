"""pydantic's validation errors as one clear 400: the most specific error, in a client's words.

A content part of a type Loupe does not take (`input_audio`, `file`) or an
`image_url` given as a string fails every branch of the content union; the error that says why
is the deepest one, not the first ("Input should be a valid string").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loupe.errors import InvalidRequest

_PARTS = "'text', 'image_url' and 'video_url'"


def _is_branch(part: object) -> bool:
    """pydantic's names for union branches ('str', 'list[tagged-union[...]]', 'ImageContent')."""
    return isinstance(part, str) and (part == "str" or part.startswith("list[") or part.endswith("Content"))


def param_of(loc: Sequence[Any]) -> str | None:
    """('body', 'messages', 0, 'content', 'list[...]', 1, 'image_url', 'url') -> 'messages[0].content[1].image_url.url'."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    out = ""
    for i, part in enumerate(parts):
        after_tagged_index = i >= 2 and isinstance(parts[i - 1], int) and str(parts[i - 2]).startswith("list[tagged-union")
        if _is_branch(part) or after_tagged_index:
            continue  # a branch or a discriminator's tag says nothing to a client
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def _depth(error: dict[str, Any]) -> int:
    return sum(1 for part in error.get("loc", ()) if not _is_branch(part))


def _content_message(error: dict[str, Any], param: str | None) -> str | None:
    """The reason, in words, for the errors of a message's content parts."""
    kind, ctx = error.get("type"), error.get("ctx") or {}
    if kind == "union_tag_invalid":
        return (
            f"content part type {ctx.get('tag')!r} is not supported; Loupe accepts {_PARTS} parts "
            "(no audio or files)"
        )
    if kind == "union_tag_not_found":
        return f"a content part needs a 'type': {_PARTS}"
    if kind in {"model_type", "dict_type"} and param is not None and param.endswith(".image_url"):
        return 'image_url must be an object such as {"url": "https://..."} or {"url": "data:image/jpeg;base64,..."}'
    return None


def validation_error(found: Sequence[dict[str, Any]]) -> InvalidRequest:
    """One InvalidRequest for a request body pydantic refused, naming the field at fault."""
    first = found[0]
    if first.get("type") == "json_invalid":
        return InvalidRequest("the request body is not valid JSON", param=None)
    if first.get("type") == "model_attributes_type":
        return InvalidRequest("the request body must be a JSON object", param=param_of(first.get("loc", ())))
    deepest = max(found, key=_depth)  # the first of the deepest: the branch that went furthest
    param = param_of(deepest.get("loc", ()))
    where = f"{param}: " if param else ""
    if deepest.get("type") == "missing":
        return InvalidRequest(f"{where}this field is required", param=param)
    reason = _content_message(deepest, param)
    if reason is None and param is not None and param.endswith(".content") and _depth(deepest) == _depth(first):
        reason = "content must be a string or a list of content parts"
    if deepest.get("type") == "union_tag_invalid" and param is not None:
        param, where = f"{param}.type", f"{param}.type: "
    return InvalidRequest(f"{where}{reason or deepest.get('msg', 'invalid value')}", param=param)
