"""The shared values: one module per concept, every name importable from `loupe.domain`, and no
layer's machinery underneath."""

from __future__ import annotations

import inspect

import loupe.domain
from loupe.domain import catalogue, chat, events, media
from tests.helpers import imports_of


def test_every_value_of_every_concept_is_exported_once() -> None:
    defined = {
        name
        for module in (catalogue, chat, events, media)
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", module.__name__) == module.__name__
        and (inspect.isclass(value) or inspect.isfunction(value) or name.isupper() or name[0].isupper())
    }
    assert defined <= set(loupe.domain.__all__)
    assert len(loupe.domain.__all__) == len(set(loupe.domain.__all__))
    for name in loupe.domain.__all__:
        assert getattr(loupe.domain, name) is not None


def test_values_are_frozen() -> None:
    request = loupe.domain.ChatRequest(model="m", messages=())
    try:
        request.model = "other"  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("a ChatRequest could be changed in place")


def test_domain_imports_no_http_framework_no_torch_no_numpy() -> None:
    assert imports_of("loupe.domain") == []
