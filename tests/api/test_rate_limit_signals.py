"""A 429's message, retry-after and x-ratelimit-reset-* headers tell one story."""

from __future__ import annotations

import math

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from loupe.api.errors import install_handlers
from loupe.billing import InProcessRateLimiter, Limits
from loupe.billing.throttle import Throttle
from loupe.errors import RateLimited


class Clock:
    """A hand-moved clock for the limiter: the limiter is real, only time is chosen."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal(limits: Limits, tokens: int, draws: int, clock: Clock) -> RateLimited:
    throttle = Throttle(InProcessRateLimiter(clock=clock))
    for _ in range(draws):
        throttle.take("key_a", limits, "m", tokens)
        clock.now += 0.4
    with pytest.raises(RateLimited) as caught:
        throttle.take("key_a", limits, "m", tokens)
    return caught.value


def answered(error: RateLimited) -> tuple[dict[str, str], str]:
    app = FastAPI()
    install_handlers(app)

    @app.get("/refused")
    def refused() -> None:
        raise error

    response = TestClient(app).get("/refused")
    assert response.status_code == 429
    return dict(response.headers), response.json()["error"]["message"]


@pytest.mark.parametrize(
    "limits, tokens, draws, kind",
    [(Limits(rpm=2), 1, 2, "requests"), (Limits(tpm=1000), 400, 2, "tokens")],
)
def test_message_and_headers_agree(limits: Limits, tokens: int, draws: int, kind: str) -> None:
    headers, message = answered(refusal(limits, tokens, draws, Clock()))
    wait_ms = int(headers["retry-after-ms"])
    assert int(headers["retry-after"]) == math.ceil(wait_ms / 1000)
    assert f"fit{'s' if kind == 'requests' else ''} in {headers['retry-after']}s (retry-after)" in message
    reset = float(headers[f"x-ratelimit-reset-{kind}"].removesuffix("s"))
    assert reset * 1000 >= wait_ms  # the whole limit is back no sooner than the next request fits
    assert f"again in {math.ceil(reset - 1e-6)}s (x-ratelimit-reset-{kind})" in message
    assert headers[f"x-ratelimit-remaining-{kind}"] == "0" or kind == "tokens"
