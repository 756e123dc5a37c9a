"""What Loupe counts for operators, in Prometheus' terms, on a registry the composition root owns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from loupe.domain import Usage

# Seconds: from a fast text answer to a slow CPU prefill of several large images.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


Reader = Callable[[], Mapping[tuple[str, ...], float]]


def _source(kind: type[Any], name: str, doc: str, labels: list[str], read: Reader) -> Callable[[], Iterator[Metric]]:
    def collect() -> Iterator[Metric]:
        family = kind(name, doc, labels=labels)
        for label_values, value in read().items():
            family.add_metric(list(label_values), value)
        yield family

    return collect


class _Gauges(Collector):
    """Gauges read at scrape time from live objects (queues, caches, replicas)."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Iterator[Metric]]] = []

    def add(self, source: Callable[[], Iterator[Metric]]) -> None:
        self._sources.append(source)

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()


# The label of every model name a client sent that is not served: a client cannot grow the series.
OTHER_MODEL = "other"


class Metrics:
    """Counters and histograms of requests, tokens, images, queues and engine work.

    Model labels are the served models' ids (`served`); any other name a request carries is
    counted under `other`, so the number of series is bounded by the configuration."""

    def __init__(self, served: Iterable[str] = ()) -> None:
        self._served = frozenset(served)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("loupe_requests", "Chat requests by model and final status", ["model", "status"], registry=r)
        self.latency = Histogram(
            "loupe_request_duration_seconds", "Chat request latency", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "loupe_time_to_first_token_seconds", "Time to first token", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.prompt_tokens = Counter(
            "loupe_prompt_tokens", "Prompt tokens (image and video tokens included)", ["model"], registry=r
        )
        self.image_tokens = Counter("loupe_image_tokens", "Image tokens of prompts", ["model"], registry=r)
        self.video_tokens = Counter("loupe_video_tokens", "Video tokens of prompts", ["model"], registry=r)
        self.completion_tokens = Counter("loupe_completion_tokens", "Completion tokens", ["model"], registry=r)
        self.cached_tokens = Counter("loupe_cached_prompt_tokens", "Prompt tokens served from cache", ["model"], registry=r)
        self.image_bytes = Counter("loupe_image_bytes", "Encoded bytes of accepted images", ["model"], registry=r)
        self.images = Counter("loupe_images", "Accepted images", ["model"], registry=r)
        self.image_failures = Counter("loupe_image_failures", "Refused images by reason", ["code"], registry=r)
        self.batch_size = Histogram(
            "loupe_engine_batch_size", "Sequences per decode step", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self._gauges = _Gauges()
        r.register(self._gauges)

    def add_gauge(self, name: str, doc: str, labels: list[str], read: Reader) -> None:
        """A gauge whose values (label values -> value) are read when Prometheus scrapes."""
        self._gauges.add(_source(GaugeMetricFamily, name, doc, labels, read))

    def add_counter(self, name: str, doc: str, labels: list[str], read: Reader) -> None:
        """A counter kept by a live object (cumulative values), read when Prometheus scrapes."""
        self._gauges.add(_source(CounterMetricFamily, name, doc, labels, read))

    def model_label(self, model: str) -> str:
        return model if model in self._served else OTHER_MODEL

    def run_finished(
        self, model: str, status: int, usage: Usage, seconds: float, ttft: float | None
    ) -> None:
        model = self.model_label(model)
        self.requests.labels(model, str(status)).inc()
        self.latency.labels(model).observe(seconds)
        if ttft is not None:
            self.ttft.labels(model).observe(ttft)
        self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.image_tokens.labels(model).inc(usage.image_tokens)
        self.video_tokens.labels(model).inc(usage.video_tokens)
        self.completion_tokens.labels(model).inc(usage.completion_tokens)
        self.cached_tokens.labels(model).inc(usage.cached_tokens)

    def request_refused(self, model: str, status: int) -> None:
        self.requests.labels(self.model_label(model), str(status)).inc()

    def image_accepted(self, model: str, byte_size: int) -> None:
        self.images.labels(self.model_label(model)).inc()
        self.image_bytes.labels(self.model_label(model)).inc(byte_size)

    def image_refused(self, code: str) -> None:
        self.image_failures.labels(code).inc()
