"""The model under the scheduler: prefill a step's requests together, decode every sequence at once.

Each running sequence owns one row of a left-padded batch cache; the attention mask hides the
padding and each row gets its own position ids, so a batched step computes what each sequence
would alone. Rows join (after their prefill) and leave (when finished) between steps; the batch
cache is rebuilt only then, and keeps room so that a decode step writes in place. A prefill
reuses the key/value states of the longest cached token prefix and the embeddings of images the
vision encoder has already seen, so only the rest of the prompt is computed; where the family
allows it, the requests a step admits are prefilled in one forward pass (see batch_prefill). On
the CPU a decode step of a model the lean decoder covers skips transformers' forward (see
lean_decode).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from collections.abc import Sequence as Seq
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache

from loupe.domain import PromptStats, ToolSpec
from loupe.engines.local.batch_cache import Layers, RoomyLayer, layer_states
from loupe.engines.local.batch_prefill import grouped, split, stacked
from loupe.engines.local.families import Family, Features, ImageGroup, Prefill
from loupe.engines.local.grammar import Grammars
from loupe.engines.local.lean_decode import LeanDecoder
from loupe.engines.local.loader import LoadedModel
from loupe.lru import ByteLRU
from loupe.engines.local.prefill_cost import PrefillCost
from loupe.engines.local.prefix_cache import PrefixCache
from loupe.engines.local.prompt import LocalPrompt
from loupe.engines.local.sampler import Sampler
from loupe.engines.local.sequence import Request, Sequence
from loupe.engines.local.vocab import Vocabulary


@dataclass(slots=True)
class KeyedPrompt:
    """A processed prompt with the cache keys of its images and videos (content and geometry),
    in prompt order (see families.VIDEO).

    `cached_tokens` is set when its prefill starts: prompt tokens whose states were reused.
    A prompt prepared without pixel values (its images' embeddings were cached) carries
    `complete`, which computes them, for the rare prefill that finds them evicted since.
    """

    local: LocalPrompt
    image_keys: tuple[str, ...]
    cached_tokens: int = 0
    complete: Callable[[], LocalPrompt] | None = None
    tools: tuple[ToolSpec, ...] = ()  # offered to the model: its output is parsed for calls

    @property
    def stats(self) -> PromptStats:
        return self.local.stats

    def prefilled(self) -> None:
        """Its prefill is done: keep the token ids only. The images' pixel values (and what
        would compute them) are not needed again, and a request decoding for minutes would
        hold them all that time."""
        self.local = LocalPrompt({"input_ids": self.local.inputs["input_ids"]}, self.local.stats, self.local.pixels)
        self.complete = None


@dataclass(slots=True)
class _Row:
    layers: Layers | None  # states of a sequence not yet in the batch (fresh from its prefill)
    length: int  # tokens with states
    delta: int  # position offset of text after the prompt (M-RoPE)
    match: list[Hashable]  # the prompt as the prefix cache matches it


@dataclass(frozen=True, slots=True)
class _Plan:
    """A request's prefill, ready to run: its new tokens and the reused states before them."""

    request: Request
    prompt: KeyedPrompt
    prefill: Prefill
    past: Layers
    reused: int
    match: list[Hashable]
    delta: int


class ModelRunner:
    def __init__(
        self,
        loaded: LoadedModel,
        family: Family,
        vision_cache_bytes: int,
        prefix_cache_bytes: int,
        vocabulary: Callable[[], Vocabulary],
        grammars: Grammars | None = None,
    ) -> None:
        self._model = loaded.model
        self._device = loaded.device
        self._family = family
        config = loaded.model.config
        ids = {config.image_token_id, getattr(config, "video_token_id", None)}
        self._placeholders = torch.tensor(sorted(int(i) for i in ids if i is not None), device=self._device)
        self._placeholder_ids = frozenset(self._placeholders.tolist())
        self._vision: ByteLRU[str, Features] = ByteLRU(vision_cache_bytes)
        self._prefix: PrefixCache[Layers] = PrefixCache(prefix_cache_bytes)
        self._grammars = grammars
        self._sampler = Sampler(vocabulary, grammars)
        self._cost = PrefillCost()
        self._rows: dict[int, _Row] = {}
        self._batch: list[int] = []  # sequence ids, in cache row order
        self._cache: Cache | None = None
        self._mask: torch.Tensor | None = None
        self._lean = LeanDecoder.of(loaded.model) if loaded.device.type == "cpu" else None

    @torch.inference_mode()
    def prefill(self, requests: Seq[Request]) -> list[list[int]]:
        """Compute the prompts' states (reusing what the caches hold), prompts of like sizes in
        one forward pass where the family allows it; for each request, a first token per choice."""
        plans = [self._plan(request) for request in requests]
        done: dict[int, tuple[torch.Tensor, Layers]] = {}
        for group in self._grouped(plans):
            part = [plans[i] for i in group]
            start = time.perf_counter()
            logits, states = self._together(part) if len(part) > 1 else self._one_by_one(part)
            self._cost.observe_text(time.perf_counter() - start, sum(p.prefill.embeds.shape[1] for p in part))
            done.update(zip(group, zip(logits, states, strict=True), strict=True))
        firsts = []
        for i, plan in enumerate(plans):
            row, layers = done[i]
            seqs = plan.request.sequences
            constraint = plan.request.sampling.constraint
            for seq in seqs:
                self._rows[seq.id] = _Row(layers, len(plan.match), plan.delta, plan.match)
                if constraint is not None and self._grammars is not None:
                    seq.grammar = self._grammars.state(constraint)
            firsts.append(self._sampler.sample(row.expand(len(seqs), -1), seqs))
        for plan in plans:
            plan.prompt.prefilled()
        return firsts

    def _plan(self, request: Request) -> _Plan:
        prompt = request.payload
        assert isinstance(prompt, KeyedPrompt)
        inputs = {k: v.to(self._device) for k, v in prompt.local.inputs.items()}
        groups = self._family.groups(self._model, inputs, prompt.image_keys)
        match = self._match_tokens(inputs["input_ids"][0].tolist(), groups)
        states, reused = self._prefix.lookup(match)
        reused = min(reused, len(match) - 1)
        skip = int(torch.isin(inputs["input_ids"][0, :reused], self._placeholders).sum())  # media reused
        if prompt.complete is not None and not self._holds(groups, skip):
            prompt.local, prompt.complete = prompt.complete(), None  # evicted since it was prepared
            inputs = {k: v.to(self._device) for k, v in prompt.local.inputs.items()}
            groups = self._family.groups(self._model, inputs, prompt.image_keys)
        prompt.cached_tokens = request.cached_tokens = reused
        positions, delta = self._family.positions(self._model, inputs)
        prefill = self._prefill(inputs, reused, skip, positions, groups)
        past = _cropped(states, reused) if reused else []
        return _Plan(request, prompt, prefill, past, reused, match, delta)

    def _grouped(self, plans: list[_Plan]) -> list[list[int]]:
        if not self._family.batched:
            return [[i] for i in range(len(plans))]
        return grouped([(p.reused, p.prefill.embeds.shape[1]) for p in plans])

    def _together(self, plans: list[_Plan]) -> tuple[list[torch.Tensor], list[Layers]]:
        """One forward pass; each plan's logits row and states, as `_one_by_one` gives them."""
        reused = [p.reused for p in plans]
        prefill, cache = stacked([p.prefill for p in plans], [p.past for p in plans], reused)
        logits = self._family.forward(self._model, prefill, cache)
        return list(logits), split(cache, reused, [p.prefill.embeds.shape[1] for p in plans])

    def _one_by_one(self, plans: list[_Plan]) -> tuple[list[torch.Tensor], list[Layers]]:
        logits, states = [], []
        for plan in plans:
            cache = DynamicCache(ddp_cache_data=plan.past) if plan.past else DynamicCache()
            logits.append(self._family.forward(self._model, plan.prefill, cache)[0])
            states.append([layer_states(layer) for layer in cache.layers])
        return logits, states

    @torch.inference_mode()
    def decode(self, seqs: Seq[Sequence]) -> list[int]:
        """One batched forward pass: the next token of every sequence in `seqs`."""
        try:
            return self._decode(seqs)
        except BaseException:
            self._clear_batch()  # the cache may hold a half-applied step; its sequences are failed
            raise

    def _decode(self, seqs: Seq[Sequence]) -> list[int]:
        self._arrange([s.id for s in seqs])
        assert self._cache is not None and self._mask is not None
        rows = [self._rows[s.id] for s in seqs]
        ids = torch.tensor([[s.tokens[-1]] for s in seqs], device=self._device)
        places = torch.tensor([[len(s.tokens) - 1 + r.delta] for s, r in zip(seqs, rows, strict=True)])
        positions = places.to(self._device)
        if self._family.mrope:
            positions = positions[None].expand(3, -1, -1)
        self._mask = torch.cat([self._mask, self._mask.new_ones(len(seqs), 1)], dim=1)
        if self._lean is not None:
            logits = self._lean(ids, self._mask, positions, self._cache)
        else:
            out = self._model(
                input_ids=ids, attention_mask=self._mask, position_ids=positions, cache=self._cache, use_cache=True
            )
            logits = out.logits[:, -1]
        for row in rows:
            row.length += 1
        return self._sampler.sample(logits, seqs)

    def release(self, seq: Sequence) -> None:
        """A sequence is done: keep its states for a later turn (first choice only), free its row."""
        row = self._rows.pop(seq.id, None)
        if row is None:
            return
        if seq.index == 0 and (row.layers is not None or seq.id in self._batch):
            layers = row.layers if row.layers is not None else self._batch_row(seq.id, row.length)
            tokens = row.match + seq.tokens[len(row.match) : row.length]
            kept = [(k[..., : row.length, :].clone(), v[..., : row.length, :].clone()) for k, v in layers]
            self._prefix.store(tokens, kept, sum(k.nbytes + v.nbytes for k, v in kept))
        if seq.request.finished:
            self._sampler.release(seq.request.id)
        if not any(sid in self._rows for sid in self._batch):
            self._clear_batch()

    def prefill_tokens(self, request: Request) -> int:
        """What the request's prefill costs in the scheduler's budget (see prefill_cost)."""
        prompt = request.payload
        assert isinstance(prompt, KeyedPrompt)
        stats = prompt.stats
        encoded = 0 if self.holds_features(prompt.image_keys) else stats.image_tokens + stats.video_tokens
        return self._cost.tokens(request.prompt_length, encoded)

    def holds_features(self, keys: tuple[str, ...]) -> bool:
        """Whether the vision cache holds every one of these images and videos (a hint: it may
        evict them before their prefill, which then computes what is missing)."""
        return all(key in self._vision for key in keys)

    def _holds(self, groups: list[ImageGroup], skip: int) -> bool:
        """Whether the features of every group after the first `skip` placeholders are cached."""
        return all(group.key in self._vision for group in _after(groups, skip)[1])

    @property
    def stats(self) -> dict[str, int]:
        return {
            "vision_hits": self._vision.hits,
            "vision_misses": self._vision.misses,
            "vision_bytes": self._vision.size,
            "prefix_entries": len(self._prefix),
            "prefix_bytes": self._prefix.size,
        }

    def _match_tokens(self, ids: list[int], groups: list[ImageGroup]) -> list[Hashable]:
        """Token ids, with each image or video placeholder replaced by its group's key."""
        keys = iter([g.key for g in groups for _ in range(g.tokens)])
        return [next(keys) if t in self._placeholder_ids else t for t in ids]

    def _prefill(
        self, inputs: dict[str, torch.Tensor], reused: int, skip: int, positions: torch.Tensor, groups: list[ImageGroup]
    ) -> Prefill:
        """The prompt after its first `reused` tokens (`skip` of them placeholders), embedded
        with the features of its images and videos."""
        new = inputs["input_ids"][:, reused:]
        embeds = self._model.get_input_embeddings()(new)
        wanted = torch.isin(new, self._placeholders)
        features = self._features(groups, skip)
        if features is not None:
            embeds = embeds.masked_scatter(wanted[..., None], features.rows.to(embeds.dtype))
        deepstack = features.deepstack if features is not None else ()
        return Prefill(inputs, embeds, positions[..., reused:], wanted, deepstack)

    def _features(self, groups: list[ImageGroup], skip: int) -> Features | None:
        """The features of every placeholder after the first `skip` (whose states are reused)."""
        first, needed = _after(groups, skip)
        parts = [self._encoded(group) for group in needed]
        return Features.joined(parts, skip - first) if parts else None

    def _encoded(self, group: ImageGroup) -> Features:
        features = self._vision.get(group.key)
        if features is None:
            start = time.perf_counter()
            features = self._family.encode(self._model, group)
            self._cost.observe_vision(time.perf_counter() - start, group.tokens)
            self._vision.put(group.key, features, features.nbytes)
        return features

    def _arrange(self, order: list[int]) -> None:
        """Make the batch cache hold exactly these sequences' rows, in this order."""
        if order == self._batch:
            return
        # Live rows left out of this step (a paused stream) keep a copy of their states.
        kept = {sid: self._copied_row(sid) for sid in self._batch if sid in self._rows and sid not in order}
        per_row = [self._states(sid) for sid in order]
        lengths = [self._rows[sid].length for sid in order]
        width = max(lengths)
        layers = range(len(per_row[0]))
        self._cache = Cache(layers=[RoomyLayer.of_rows([row[i] for row in per_row], width) for i in layers])
        self._mask = torch.tensor(
            [[0] * (width - n) + [1] * n for n in lengths], dtype=torch.long, device=self._device
        )
        self._batch = list(order)
        for sid in order:
            self._rows[sid].layers = None
        for sid, states in kept.items():
            self._rows[sid].layers = states

    def _copied_row(self, sid: int) -> Layers:
        return [(k.clone(), v.clone()) for k, v in self._batch_row(sid, self._rows[sid].length)]

    def _states(self, sid: int) -> Layers:
        row = self._rows[sid]
        return row.layers if row.layers is not None else self._batch_row(sid, row.length)

    def _batch_row(self, sid: int, length: int) -> Layers:
        assert self._cache is not None
        i = self._batch.index(sid)
        return [(keys[i : i + 1, :, -length:], values[i : i + 1, :, -length:]) for keys, values in map(layer_states, self._cache.layers)]

    def _clear_batch(self) -> None:
        self._batch, self._cache, self._mask = [], None, None


def _after(groups: list[ImageGroup], skip: int) -> tuple[int, list[ImageGroup]]:
    """The groups with placeholders past the first `skip` (a group may be partly within them),
    and how many placeholders the groups before them hold."""
    start = 0
    for i, group in enumerate(groups):
        if start + group.tokens > skip:
            return start, groups[i:]
        start += group.tokens
    return start, []


def _cropped(states: Layers | None, length: int) -> Layers:
    return [(k[..., :length, :], v[..., :length, :]) for k, v in states or []]

