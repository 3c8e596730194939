"""Grammar-constrained sampling: condition prefix -> tokens for every requested role.

Context tracks (a kept track, the bars of a seed clip) are forced token by token through
the same grammar, so a bad context fails loudly and a good one is continued, never
re-sampled. Runs of forced tokens go through the model in one forward call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from stemforge.symbolic.decoding.kernels import decode_threads, kernels
from stemforge.symbolic.decoding.model import Composer
from stemforge.symbolic.runtime.grammar import NOTE_TOKENS, GrammarState, GrammarTables, Kind
from stemforge.symbolic.runtime.guide import SAMPLE_PITCH, Guide, GuideStrengths
from stemforge.symbolic.runtime.plan import CompositionPlan
from stemforge.symbolic.runtime.sampling_settings import SamplingSettings, SettingsError  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from stemforge.symbolic.decoding.compiled_decoder import DecoderWeights, StepMatrices
    from stemforge.symbolic.decoding.decoder import FastDecoder


@dataclass
class SamplePlan:
    prefix_ids: list[int]  # BOS + condition tokens
    roles: tuple[str, ...]  # emission order: context roles first
    bars: int
    # role -> forced tokens from Track_Start on: a whole track (ends with Track_End) or
    # the first bars of one (no Track_End: the rest is generated)
    context: dict[str, list[int]] = field(default_factory=dict)
    key: str | None = None  # the requested key, for key guidance
    composition: CompositionPlan | None = None  # loops, chords, kick lock, density
    genre: str | None = None  # the model's genre token, for genre emphasis

    def context_tokens(self) -> int:
        return sum(len(tokens) for tokens in self.context.values())


@contextmanager
def _one_thread(decoder: str) -> Iterator[None]:
    """The torch decoder in one thread: OpenMP hand-offs made each step up to 10x slower on a
    busy 2-core machine (bench/symbolic.py). The compiled decoders are one thread each already
    (their step is plain loops; takes go to threads of their own: `sample_takes`)."""
    if decoder != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _one_at_a_time(callback: Callable[[int], None]) -> Callable[[int], None]:
    lock = threading.Lock()

    def call(token: int) -> None:
        with lock:
            callback(token)

    return call


def _decode_rows(takes: list[Take], decoder: RowsDecoder, stop: threading.Event | None = None) -> list[list[int]]:
    """Run `takes` to their end as the rows of `decoder` (take n is row n): each step feeds every
    unfinished take's pending tokens at once and sends each its logits. Returns their sequences
    (an empty one for a take cut short because `stop` was set)."""
    results: list[list[int]] = [[] for _ in takes]
    pending: dict[int, list[int]] = {}
    for row, take in enumerate(takes):
        try:
            pending[row] = next(take)
        except StopIteration as done:  # every token forced (the context holds the whole piece)
            results[row] = done.value
    while pending and not (stop is not None and stop.is_set()):
        waiting: dict[int, list[int]] = {}
        for row, logits in decoder.forward_rows(pending).items():
            try:
                waiting[row] = takes[row].send(logits)
            except StopIteration as done:
                results[row] = done.value
        pending = waiting
    return results


def _wants_a_note(logits: np.ndarray, state: GrammarState) -> bool:
    """Whether the model puts more than half its probability (over what the grammar allows)
    on starting another note, where the context budget closed the bar."""
    allowed = state.allowed()
    values = np.asarray(logits, dtype=np.float64)[allowed]
    weights = np.exp(values - values.max())
    return float(weights[state.tables.note_start[allowed]].sum()) > 0.5 * float(weights.sum())


@dataclass
class SampleStats:
    """What the last `sample` call did: tokens the model chose vs tokens it was fed."""

    sampled: int = 0
    forced: int = 0  # grammar-forced, context and repeated bars
    repeated: int = 0  # of `forced`: tokens of bars the plan repeats
    # bars (per role) the context budget closed while the model wanted another note there
    # (more than half its probability on starting one): what the model's context cut
    capped_bars: dict[str, set[int]] = field(default_factory=dict)
    bar_caps: dict[str, int] = field(default_factory=dict)  # the budget (tokens a bar) of each capped role

    def capped_summary(self, bars: int) -> str:
        """"bass in 16 of 16 bars (room for ~2 notes a bar), ..." or ""."""
        return ", ".join(f"{role} in {len(capped)} of {bars} bars (room for ~{self.bar_caps[role] // 4} notes a bar)"
                         for role, capped in self.capped_bars.items())


Take = Generator[list[int], np.ndarray, list[int]]  # yields tokens to feed, is sent their logits


class RowsDecoder(Protocol):
    """What sampling needs of a decoder (`CompiledDecoder`, the torch `BatchDecoder`)."""

    def reset(self) -> None: ...

    def forward_rows(self, feeds: dict[int, list[int]]) -> dict[int, np.ndarray]:
        """row -> tokens to feed; returns row -> next-token logits after its last token."""
        ...


class Sampler:
    """Holds the per-model tables and decoder; `sample` is cheap to call repeatedly."""

    def __init__(self, composer: Composer, strengths: GuideStrengths | None = None) -> None:
        self.composer = composer
        self.tables = GrammarTables(composer.tokenizer)
        self.max_tokens = composer.shape.n_positions
        self._decoders: dict[str, RowsDecoder] = {}  # decoder name -> its one-row decoder, kept
        self._weights: DecoderWeights | None = None  # the compiled decoder's, read on first use
        self._matrices: dict[str, StepMatrices] = {}  # decoder name -> the step's matrices, made on first use
        self._torch_decoder: FastDecoder | None = None  # only where the torch decoder is asked for
        self.strengths = strengths or GuideStrengths()
        self.stats = SampleStats()
        self.take_stats: list[SampleStats] = []

    def sample(
        self,
        plan: SamplePlan,
        settings: SamplingSettings,
        seed: int,
        on_token: Callable[[int], None] | None = None,
    ) -> list[int]:
        """The whole sequence (prefix included, EOS at the end)."""
        self.stats = SampleStats()
        take = self._take(plan, settings, seed, self.stats, on_token)
        decoder = self.single_decoder(settings.decoder)
        with _one_thread(settings.decoder):
            decoder.reset()
            return _decode_rows([take], decoder)[0]

    def warm(self) -> Sampler:
        """Load what the first piece would otherwise wait for (the compiled decoder's weights and
        kernels, the draw): a worker calls this before it takes jobs."""
        decoder = self.single_decoder(SamplingSettings().decoder)
        decoder.forward_rows({0: [self.composer.tokenizer.bos_id]})
        decoder.reset()
        kernels().draw_token(np.zeros(2, np.float32), np.ones(2, np.bool_), 1.0, 0, 0.95, 0.5)
        return self

    def single_decoder(self, name: str) -> RowsDecoder:
        """The batch-1 decoder called `name` (sampling_settings.DECODERS), kept between pieces."""
        if name not in self._decoders:
            self._decoders[name] = self.rows_decoder(name, 1)
        return self._decoders[name]

    def rows_decoder(self, name: str, rows: int) -> RowsDecoder:
        """A decoder of `rows` sequences at once over this model: `CompiledDecoder` over float32
        ("compiled") or int8 matrices ("int8"; numpy, no torch) or the torch `BatchDecoder`."""
        if name == "torch":
            from stemforge.symbolic.decoding.decoder import BatchDecoder

            if self._torch_decoder is None:
                self._torch_decoder = self.composer.decoder()
            return BatchDecoder(self._torch_decoder, rows)
        from stemforge.symbolic.decoding.compiled_decoder import CompiledDecoder, StepMatrices

        if self._weights is None:
            self._weights = self.composer.decoder_weights()
        if name not in self._matrices:
            self._matrices[name] = StepMatrices.of(self._weights, int8=name == "int8")
        return CompiledDecoder(self._weights, rows, self._matrices[name])

    def sample_takes(
        self,
        plans: list[SamplePlan],
        settings: SamplingSettings,
        seeds: list[int],
        on_token: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        """Several pieces at once (takes): each follows its own plan, grammar and seed; the
        model runs once per step for all of them (the decoder's rows: sampled tokens and forced
        runs alike), so the weights are read once per step instead of once per take. With the
        compiled decoders a take is token-identical to the same seed alone (their step sums each
        token the same way whatever else it holds), and the takes are shared out over the threads
        `decode_threads()` allows (its kernels release the GIL), each thread with its own
        decoder of its takes' rows; with torch's, one decoder of all rows, equal to the seed alone
        up to float rounding in the batched matrix products (see docs/benchmarks.md for how
        often that changes a token)."""
        threads = 1 if settings.decoder == "torch" else min(decode_threads(), len(plans))
        if on_token is not None and threads > 1:
            on_token = _one_at_a_time(on_token)  # a progress bar or a job's status file is not thread-safe
        self.take_stats = [SampleStats() for _ in plans]
        takes = [self._take(plan, settings, seed, stats, on_token)
                 for plan, seed, stats in zip(plans, seeds, self.take_stats, strict=True)]
        groups = [takes[first::threads] for first in range(threads)]  # take n: thread n % threads
        # made here, not in the threads: the first one reads the weights, once
        decoders = [self.rows_decoder(settings.decoder, len(group)) for group in groups]
        with _one_thread(settings.decoder):
            if threads == 1:
                return _decode_rows(takes, decoders[0])
            stop = threading.Event()  # one thread failed or the caller was interrupted (Ctrl-C)
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="takes") as pool:
                futures = [pool.submit(_decode_rows, group, decoder, stop) for group, decoder in zip(groups, decoders)]
                try:
                    wait(futures, return_when=FIRST_EXCEPTION)
                    if any(future.done() and future.exception() for future in futures):
                        stop.set()  # the other threads end at their next step, not at their takes' end
                    results = [future.result() for future in futures]
                except BaseException:
                    stop.set()
                    raise
        return [results[n % threads][n // threads] for n in range(len(takes))]

    def _take(self, plan: SamplePlan, settings: SamplingSettings, seed: int, stats: SampleStats,
              on_token: Callable[[int], None] | None) -> Take:
        """One piece as a coroutine: it yields the tokens the model must read next and is sent
        the logits after them, so one decoder can serve one take (`sample`) or many
        (`sample_takes`) with the same sampling code."""
        uniforms = np.random.default_rng(seed)
        draw_token = kernels().draw_token
        tables = self.tables
        state = GrammarState(tables, plan.roles, plan.bars, max_tokens=self.max_tokens,
                             length=len(plan.prefix_ids))
        style = self.composer.style if plan.genre else None
        guide = Guide(tables, plan.composition, plan.key, replace(self.strengths, key=settings.key_bias),
                      style=style, genre=plan.genre)
        sequence = list(plan.prefix_ids)
        pending = list(plan.prefix_ids)
        queue: list[int] = []
        queue_is_context = False
        logits = None
        while True:
            if not queue and state.stage == "track_start" and state.role_index + 1 < len(plan.roles):
                queue = list(plan.context.get(plan.roles[state.role_index + 1], []))
                queue_is_context = True
            from_model = from_context = False
            echo = bool(queue) and not queue_is_context and queue[0] == SAMPLE_PITCH
            if echo:  # a bar's rhythm over new chords: this note's pitch is sampled
                queue.pop(0)
                if state.bar_cap is not None and state.bar_tokens + NOTE_TOKENS > state.bar_cap:
                    queue.clear()
                    guide.closed = False
                    echo = False
            if queue and not queue_is_context and not echo:
                token = self._fit_repeat(queue.pop(0), state, queue)
                if token is None:
                    queue.clear()
                    guide.closed = False
                    continue
                stats.repeated += 1
            elif queue and not echo:
                token = queue.pop(0)
                from_context = True
            else:
                forced = state.forced_token
                if forced is not None:
                    token = forced
                else:
                    if pending:
                        logits = yield pending
                        pending = []
                    allowed = state.sampling_mask()
                    if echo:
                        pitched = allowed & tables.pitched
                        if bool(pitched.any()):
                            allowed = pitched
                        else:  # no pitch fits here: the rest of the bar is sampled
                            queue.clear()
                            guide.closed = False
                    if state.capping and logits is not None and _wants_a_note(logits, state):
                        stats.capped_bars.setdefault(str(state.role), set()).add(state.bar_index)
                        stats.bar_caps[str(state.role)] = int(state.bar_cap or 0)
                    mask, guided = guide.steer(state, allowed, logits)
                    token = int(draw_token(np.ascontiguousarray(guided, np.float32), mask, settings.temperature,
                                           settings.top_k, settings.top_p, uniforms.random()))
                    if token < 0:
                        raise RuntimeError(f"grammar: no token allowed at stage {state.stage!r}")
                    from_model = True
            stats.sampled += from_model
            stats.forced += not from_model
            state.advance(token)
            guide.observe(token, state)
            sequence.append(token)
            if on_token is not None:
                on_token(token)
            if state.finished:
                return sequence
            pending.append(token)
            if from_context and not queue and state.stage == "body":
                state.rebudget()  # the context's bars took what they took; the rest shares what is left
            if not queue and token == self.composer.tokenizer.bar_id and (from_model or not queue_is_context):
                queue = guide.bar_tokens(state)
                queue_is_context = False

    def _fit_repeat(self, token: int, state: GrammarState, queue: list[int]) -> int | None:
        """A token of a repeated bar as it can be played here: a note that would run past the
        piece's end is shortened; a note the bar's budget has no room for ends the repeat
        (None), and the rest of the bar is sampled."""
        tables = self.tables
        allowed = state.allowed()
        kind = int(tables.kind[token])
        if kind in (Kind.POSITION, Kind.PITCH, Kind.PITCH_DRUM) and state.bar_cap is not None \
                and state.bar_tokens + NOTE_TOKENS > state.bar_cap:
            return None
        if bool(allowed[token]):
            return token
        if kind == Kind.DURATION:
            fitting = np.flatnonzero(allowed & tables.duration)
            if len(fitting):
                return int(fitting[tables.value[fitting].argmax()])
        return None
