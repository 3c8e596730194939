"""Grammar-constrained sampling: condition prefix -> tokens for every requested role.

Context tracks (a kept track, the bars of a seed clip) are forced token by token through
the same grammar, so a bad context fails loudly and a good one is continued, never
re-sampled. Runs of forced tokens go through the model in one forward call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from symbolic.grammar import GrammarState, GrammarTables
from symbolic.model import Composer


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 0.95  # 1.0 = off
    key_bias: float = 1.5  # nats added to in-key pitches of bass and melody (0 = off)

    def validate(self) -> SamplingSettings:
        if self.temperature <= 0:
            raise ValueError(f"temperature: {self.temperature} must be > 0")
        if self.top_k < 0:
            raise ValueError(f"top-k: {self.top_k} must be >= 0 (0 switches it off)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p: {self.top_p} must be in (0, 1]")
        if self.key_bias < 0:
            raise ValueError(f"key-bias: {self.key_bias} must be >= 0 (0 switches it off)")
        return self


@dataclass
class SamplePlan:
    prefix_ids: list[int]  # BOS + condition tokens
    roles: tuple[str, ...]  # emission order: context roles first
    bars: int
    # role -> forced tokens from Track_Start on: a whole track (ends with Track_End) or
    # the first bars of one (no Track_End: the rest is generated)
    context: dict[str, list[int]] = field(default_factory=dict)
    key: str | None = None  # the requested key, for key guidance


def filter_logits(logits: torch.Tensor, allowed: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    logits = logits.masked_fill(~allowed, float("-inf")) / settings.temperature
    if settings.top_k > 0:
        k = min(settings.top_k, int(allowed.sum()))
        threshold = torch.topk(logits, k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) > settings.top_p
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return logits


def guide_pitches(logits: torch.Tensor, bias: torch.Tensor, pitches: torch.Tensor) -> torch.Tensor:
    """Shift probability among the allowed pitches by `bias`, keeping their total mass: the
    guidance changes which note is played, never whether one is."""
    if not bool(pitches.any()):
        return logits
    before = logits[pitches]
    after = before + bias[pitches]
    out = logits.clone()
    out[pitches] = after - torch.logsumexp(after, 0) + torch.logsumexp(before, 0)
    return out


class Sampler:
    """Holds the per-model tables and decoder; `sample` is cheap to call repeatedly."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer
        self.tables = GrammarTables(composer.tokenizer)
        self.decoder = composer.decoder()

    def sample(
        self,
        plan: SamplePlan,
        settings: SamplingSettings,
        seed: int,
        on_token: Callable[[int], None] | None = None,
    ) -> list[int]:
        """The whole sequence (prefix included, EOS at the end)."""
        threads = torch.get_num_threads()
        # batch-1 decoding is latency-bound: one thread avoids OpenMP hand-off costs that
        # made each step 10x slower on a busy 2-core machine (bench/symbolic.py)
        torch.set_num_threads(1)
        try:
            return self._sample(plan, settings, seed, on_token)
        finally:
            torch.set_num_threads(threads)

    def _sample(self, plan: SamplePlan, settings: SamplingSettings, seed: int,
                on_token: Callable[[int], None] | None) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        state = GrammarState(self.tables, plan.roles, plan.bars)
        # Key guidance: the key token alone steers the small default model only loosely
        # (41% of bass/melody notes in key at temperature 1); shifting probability toward
        # in-key pitches (bias in nats) fixes that and leaves chromatic notes possible.
        bias = self.tables.in_key(plan.key) * settings.key_bias if plan.key and settings.key_bias else None
        self.decoder.reset()
        sequence = list(plan.prefix_ids)
        pending = list(plan.prefix_ids)
        queue: list[int] = []
        logits = None
        while True:
            if not queue and state.stage == "track_start" and state.role_index + 1 < len(plan.roles):
                queue = list(plan.context.get(plan.roles[state.role_index + 1], []))
            if queue:
                token = queue.pop(0)
            else:
                forced = state.forced_token
                if forced is not None:
                    token = forced
                else:
                    if pending:
                        logits = self.decoder.forward(pending)
                        pending = []
                    allowed = state.allowed()
                    guided = logits if bias is None else guide_pitches(logits, bias, allowed & self.tables.pitched)
                    filtered = filter_logits(guided, allowed, settings)
                    probabilities = torch.softmax(filtered, dim=-1)
                    token = int(torch.multinomial(probabilities, 1, generator=generator))
            state.advance(token)
            sequence.append(token)
            if on_token is not None:
                on_token(token)
            if state.finished:
                return sequence
            pending.append(token)
