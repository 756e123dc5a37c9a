"""The replica pool: least-outstanding choice, ejection after failures, probes back into service."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loupe.engines.upstream.client import UpstreamClient
from loupe.engines.upstream.replicas import ReplicaPool
from loupe.engines.upstream.served import ReplicaReports

A, B, C = "http://a/v1", "http://b/v1", "http://c/v1"


async def always(ok: bool, url: str = "") -> bool:
    return ok


def pool(*urls: str, max_failures: int = 2) -> ReplicaPool:
    return ReplicaPool(urls, lambda url: always(True), health_interval_s=0.01, max_failures=max_failures)


def test_least_outstanding_wins() -> None:
    p = pool(A, B, C)
    a, b, c = p.replicas
    with p.lease(a), p.lease(a), p.lease(b):
        assert p.pick() is c
        assert p.outstanding == 3
    assert p.outstanding == 0


def test_ties_are_taken_in_turn() -> None:
    p = pool(A, B)
    assert {p.pick().base_url for _ in range(4)} == {A, B}


def test_excluded_replicas_are_skipped_unless_none_is_left() -> None:
    p = pool(A, B)
    assert all(p.pick(frozenset({A})).base_url == B for _ in range(3))
    assert p.pick(frozenset({A, B})).base_url in {A, B}


def test_ejection_after_consecutive_failures_only() -> None:
    p = pool(A, B, max_failures=2)
    a, _ = p.replicas
    p.failed(a)
    p.succeeded(a)
    p.failed(a)
    assert not a.ejected
    p.failed(a)
    assert a.ejected and p.ejections == 1
    assert all(p.pick().base_url == B for _ in range(4))


def test_when_all_are_ejected_all_are_tried() -> None:
    p = pool(A, B, max_failures=1)
    for replica in p.replicas:
        p.failed(replica)
    assert {p.pick().base_url for _ in range(4)} == {A, B}


@pytest.mark.asyncio
async def test_a_failed_probe_ejects_and_a_good_one_restores() -> None:
    healthy = {A: True, B: True}

    async def probe(url: str) -> bool:
        return healthy[url]

    p = ReplicaPool([A, B], probe, health_interval_s=0.01)
    healthy[B] = False
    await p.check()
    assert [r.ejected for r in p.replicas] == [False, True]
    healthy[B] = True
    await p.check()
    assert [r.ejected for r in p.replicas] == [False, False]
    assert p.replicas[1].failures == 0


@pytest.mark.asyncio
async def test_a_raising_probe_counts_as_failed() -> None:
    async def probe(url: str) -> bool:
        raise RuntimeError("probe bug")

    p = ReplicaPool([A], probe)
    await p.check()
    assert p.replicas[0].ejected


@pytest.mark.asyncio
async def test_background_health_loop_probes_back_in() -> None:
    up = {"b": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "b" and not up["b"]:
            raise httpx.ConnectError("refused", request=request)
        assert request.url.path == "/v1/models"
        return httpx.Response(200, json={"object": "list", "data": []})

    client = UpstreamClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    reports = ReplicaReports(lambda url: client.served(url, "m"), "m")
    p = ReplicaPool([A, B], reports.probe, health_interval_s=0.02)
    await p.start()
    await p.start()  # idempotent
    assert p.replicas[1].ejected
    up["b"] = True
    for _ in range(100):
        if not p.replicas[1].ejected:
            break
        await asyncio.sleep(0.01)
    assert not p.replicas[1].ejected
    await p.close()
    await client.aclose()


def test_a_pool_needs_a_replica() -> None:
    with pytest.raises(ValueError):
        pool()
