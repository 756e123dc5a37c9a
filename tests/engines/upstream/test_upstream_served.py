"""What replicas state in /models: parsed, followed by the card, and checked before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from loupe.domain import (
    ChatRequest,
    Detail,
    Message,
    ModelCard,
    PreparedImage,
    PromptMessage,
    PromptStats,
    Role,
    SamplingParams,
    TextPart,
)
from loupe.engines.upstream.client import UpstreamClient, parse_chunk
from loupe.engines.upstream.engine import UpstreamApi, UpstreamEngine, UpstreamPrompt
from loupe.engines.upstream.replicas import ReplicaPool
from loupe.engines.upstream.request import vllm_fields
from loupe.engines.upstream.served import ReplicaReports, ServedReport, learned_card, served_report
from loupe.errors import ContextLengthExceeded, TooManyImages
from loupe.service.chat import ChatService
from tests.engines.upstream.test_upstream_engine import CARD, FakeProcessor, collect, ok

A, B = "http://a/v1", "http://b/v1"
VLLM_MODELS = {"object": "list", "data": [{"id": "up-model", "object": "model", "owned_by": "vllm", "max_model_len": 4096}]}


def models(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": list(entries)}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (VLLM_MODELS, ServedReport(context_size=4096, vllm=True)),
        (models({"id": "up-model", "owned_by": "loupe", "context_size": 2048, "max_images": 2}), ServedReport(context_size=2048, max_images=2)),
        (models({"id": "up-model", "context_length": 1000, "max_images": 0}), ServedReport(context_size=1000, max_images=0)),
        (models({"id": "other", "max_model_len": 4096}), ServedReport(listed=False)),
        (models({"id": "up-model", "max_model_len": "4096", "max_images": -1}), ServedReport()),
        (models({"id": "up-model", "max_model_len": True, "max_images": False}), ServedReport()),
        ({"data": "nonsense"}, ServedReport(listed=False)),
        ([1, 2], ServedReport(listed=False)),
    ],
    ids=["vllm", "loupe", "context_length", "not-listed", "odd-values", "bool", "odd-data", "odd-body"],
)
def test_a_models_entry_becomes_a_report(body: Any, expected: ServedReport) -> None:
    assert served_report(body, "up-model") == expected


async def reports_of(*bodies: dict[str, Any]) -> ReplicaReports:
    reports = ReplicaReports(lambda url: _report(bodies[[A, B].index(url)]), "up-model")
    for url in (A, B)[: len(bodies)]:
        assert await reports.probe(url)
    return reports


async def _report(body: dict[str, Any]) -> ServedReport:
    return served_report(body, "up-model")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("configured", "stated", "expected"),
    [(None, [4096], 4096), (None, [8192, 4096], 4096), (2048, [4096], 2048), (8192, [4096], 4096), (None, [200_000], 200_000)],
)
async def test_the_card_follows_the_least_stated_context_under_the_configured_one(
    configured: int | None, stated: list[int], expected: int
) -> None:
    reports = await reports_of(*(models({"id": "up-model", "max_model_len": n}) for n in stated))
    assert learned_card(CARD, configured, reports).context_size == expected


@pytest.mark.asyncio
async def test_without_stated_limits_the_card_is_the_checkpoints() -> None:
    reports = await reports_of(models({"id": "up-model"}))
    assert learned_card(CARD, None, reports) == CARD


@pytest.mark.asyncio
async def test_stated_image_limits_only_lower_the_configured_one() -> None:
    card = ModelCard(id="m", created=0, owned_by="t", family="qwen2-vl", checkpoint="c", context_size=100, max_images=4)
    low = await reports_of(models({"id": "up-model", "max_images": 2}))
    high = await reports_of(models({"id": "up-model", "max_images": 16}))
    assert (learned_card(card, None, low).max_images, learned_card(card, None, high).max_images) == (2, 4)


def transport(routes: dict[str, Callable[[httpx.Request], httpx.Response]], chats: list[dict[str, Any]]) -> httpx.MockTransport:
    """`/models` per host as given; chat requests recorded, then answered."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return routes[request.url.host](request)
        chats.append({"host": request.url.host, **json.loads(request.content)})
        return ok(request)

    return httpx.MockTransport(handler)


def engine_over(
    handler: httpx.MockTransport, *urls: str, learn_limits: bool = True, api: UpstreamApi = "auto"
) -> UpstreamEngine:
    client = UpstreamClient(httpx.AsyncClient(transport=handler))
    reports = ReplicaReports(lambda url: client.served(url, "up-model"), "up-model")
    pool = ReplicaPool(urls or (A,), reports.probe)
    return UpstreamEngine(CARD, FakeProcessor(), pool, client, "up-model", reports=reports, learn_limits=learn_limits, api=api)


def answer(body: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json=body)


@pytest.mark.asyncio
@pytest.mark.parametrize("learn", [True, False])
async def test_the_engine_card_follows_its_replicas_unless_told_not_to(learn: bool) -> None:
    stated = {"a": VLLM_MODELS}
    e = engine_over(transport({"a": lambda r: httpx.Response(200, json=stated["a"])}, []), learn_limits=learn)
    assert e.card.context_size == CARD.context_size  # not probed yet: the checkpoint's
    stated["a"] = models({"id": "up-model", "max_model_len": 64})
    await e.start()
    assert e.card.context_size == (64 if learn else CARD.context_size)
    stated["a"] = models({"id": "up-model", "max_model_len": 80})
    await e.pool.check()  # a later health check
    assert e.card.context_size == (80 if learn else CARD.context_size)
    await e.close()


class CountingEngine(UpstreamEngine):
    """Counts with a fixed figure instead of a processor, so the service can be driven alone."""

    async def prepare(self, messages: Any) -> UpstreamPrompt:
        return UpstreamPrompt(messages=[{"role": "user", "content": "hi"}], stats=await self.count(messages))

    async def count(self, messages: Any) -> PromptStats:
        return PromptStats(60, 0)


class NoImages:
    async def prepare(self, card: ModelCard, refs: Any) -> list[PreparedImage]:
        if len(refs) > card.max_images:
            raise AssertionError("the service checks the count first")
        return []

    async def plan(self, card: ModelCard, refs: Any) -> list[Any]:
        return []

    async def aclose(self) -> None:
        pass


@pytest.mark.asyncio
async def test_a_prompt_beyond_the_stated_context_is_refused_before_anything_is_sent() -> None:
    chats: list[dict[str, Any]] = []
    client = UpstreamClient(httpx.AsyncClient(transport=transport({"a": answer(models({"id": "up-model", "max_model_len": 50}))}, chats)))
    reports = ReplicaReports(lambda url: client.served(url, "up-model"), "up-model")
    e = CountingEngine(CARD, FakeProcessor(), ReplicaPool([A], reports.probe), client, "up-model", reports=reports)
    await e.start()
    chat = ChatService({"m": e}, NoImages())
    request = ChatRequest(model="m", messages=(Message(Role.USER, (TextPart("hi"),)),), sampling=SamplingParams())
    with pytest.raises(ContextLengthExceeded) as caught:
        await chat.start(request)
    assert "context of 50 tokens" in caught.value.message
    with pytest.raises(ContextLengthExceeded):
        await chat.estimate(request)
    assert chats == []
    await e.close()


@pytest.mark.asyncio
async def test_more_images_than_a_replica_states_are_refused_before_anything_is_sent() -> None:
    from loupe.domain import ImageRef

    chats: list[dict[str, Any]] = []
    e = engine_over(transport({"a": answer(models({"id": "up-model", "max_images": 1}))}, chats))
    await e.start()
    refs = tuple(ImageRef(url="data:,", detail=Detail.LOW, param=f"messages[0].content[{i}]") for i in range(2))
    request = ChatRequest(model="m", messages=(Message(Role.USER, (*refs, TextPart("hi"))),), sampling=SamplingParams())
    with pytest.raises(TooManyImages):
        await ChatService({"m": e}, NoImages()).start(request)
    assert chats == []
    await e.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(("api", "vllm_on"), [("auto", {"a"}), ("vllm", {"a", "b"}), ("openai", set())])
async def test_vllm_fields_go_only_to_replicas_that_take_them(api: UpstreamApi, vllm_on: set[str]) -> None:
    chats: list[dict[str, Any]] = []
    routes = {"a": answer(VLLM_MODELS), "b": answer(models({"id": "up-model", "owned_by": "loupe"}))}
    e = engine_over(transport(routes, chats), A, B, api=api)
    await e.start()
    prompt = UpstreamPrompt(messages=[], stats=PromptStats(10, 4), vllm_fields={"add_special_tokens": True})
    for _ in range(4):
        await _drain(e, prompt)
    assert {c["host"] for c in chats} == {"a", "b"}
    assert {c["host"] for c in chats if c.get("add_special_tokens") is True} == vllm_on
    await e.close()


async def _drain(e: UpstreamEngine, prompt: UpstreamPrompt) -> None:
    from contextlib import aclosing

    async with aclosing(e.generate(prompt, SamplingParams(), 4)) as events:
        async for _ in events:
            pass


def image(overrides: tuple[tuple[str, bool | int], ...]) -> PreparedImage:
    return PreparedImage(None, 8, 8, 8, 8, Detail.LOW, "h", 4, overrides)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((), {"add_special_tokens": False}),
        ((("do_image_splitting", False),), {"add_special_tokens": False, "mm_processor_kwargs": {"do_image_splitting": False}}),
        ((("size.longest_edge", 512),), {"add_special_tokens": False, "mm_processor_kwargs": {"size": {"longest_edge": 512}}}),
    ],
)
def test_vllm_fields_carry_the_processor_settings_of_the_detail(
    overrides: tuple[tuple[str, bool | int], ...], expected: dict[str, Any]
) -> None:
    messages = [PromptMessage(Role.USER, (image(overrides), image(overrides), TextPart("hi")))]
    assert vllm_fields(messages, add_special_tokens=False) == expected


def test_vllm_image_counts_are_read_from_multimodal_tokens() -> None:
    usage = {"prompt_tokens": 30, "completion_tokens": 2, "prompt_tokens_details": {"image_tokens": None, "multimodal_tokens": {"image": 12}}}
    assert parse_chunk(json.dumps({"choices": [], "usage": usage})).usage.image_tokens == 12  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_replica_that_does_not_list_the_model_stays_in_service_and_states_nothing() -> None:
    e = engine_over(transport({"a": answer(models({"id": "something-else", "max_model_len": 8}))}, []))
    await e.start()
    assert not e.pool.replicas[0].ejected and e.card == CARD
    assert isinstance((await collect(e))[-1].completion_tokens, int)  # type: ignore[union-attr]
    await e.close()
