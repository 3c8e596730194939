"""Composing one piece: conditions and a loaded model in, an `Arrangement` out.

The symbolic stage's end-to-end call, shared by `pipeline run` (which adds the run folder,
the files and the stems around it), the service's workers and the benches: the context parts
(kept parts of an earlier run, the bars of a seed clip) snapped to their feel and encoded,
the composition plan (loops, chords, kick lock, density), grammar-constrained sampling, then
the groove (swing, micro-timing, accents) on the generated parts and the context parts back
in verbatim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.decoding.model import Composer
from stemforge.symbolic.music.arrangement import (
    Arrangement,
    Note,
    Track,
    without_overlaps,
)
from stemforge.symbolic.music.conditions import ROLES, Conditions
from stemforge.symbolic.music.genres import genre_entry
from stemforge.symbolic.runtime.form import Form
from stemforge.symbolic.runtime.groove import GrooveError
from stemforge.symbolic.runtime.plan import CompositionPlan, plan_for
from stemforge.symbolic.runtime.sampling import SamplePlan, Sampler, SampleStats, SamplingSettings
from stemforge.symbolic.runtime.sections import (
    FORM_FROM_BARS,
    SectionOrder,
    assemble,
    chords_were_drawn,
    form_of,
    join_halves,
    section_orders,
    with_fill_at_end,
)


class ComposeError(UserError):
    """A context part that does not fit the piece, or that the grammar cannot continue."""


@dataclass
class Feel:
    """How the generated parts are played: `quantize` (exactly on the grid) or the genre's
    groove with `swing_percent` (None = the genre's own)."""

    quantize: bool = False
    swing_percent: float | None = None


@dataclass
class Composed:
    arrangement: Arrangement
    token_ids: list[int]
    composition: CompositionPlan
    feel: dict  # what was applied, for run.json
    stats: SampleStats
    warnings: list[str] = field(default_factory=list)  # what the user should hear (a context that cut notes)
    form: dict | None = None  # a form's sections (name, bars, chords, parts), for run.json; None for a loop


_SAMPLERS: dict[int, Sampler] = {}


def sampler_for(composer: Composer) -> Sampler:
    """One sampler (grammar tables + KV cache) per loaded model; not shared across threads."""
    sampler = _SAMPLERS.get(id(composer))
    if sampler is None or sampler.composer is not composer:
        sampler = _SAMPLERS[id(composer)] = Sampler(composer)
    return sampler


def on_feel_grid(track: Track) -> Track:
    """A played or grooved part (a kept part carries its swing and micro-timing, a seed clip
    may be a live take) snapped to the grid its feel implies: straight 16ths, triplets or
    swung 16ths, as the corpus quantizes performances. Rounding it to the nearest 1/12 beat
    instead would put a swung "and" on positions the model never saw."""
    from stemforge.symbolic.core.ticks import STEP_TICKS as GRID
    from stemforge.symbolic.music.feel import detect_feel, snap

    feel, _ = detect_feel([n.start for n in track.notes])
    notes = []
    for note in track.notes:
        start = snap(note.start, feel)
        end = max(start + GRID, round((note.start + note.duration) / GRID) * GRID)
        notes.append(Note(start, end - start, note.pitch, note.velocity))
    return replace(track, notes=without_overlaps(notes))


def apply_groove(tracks: dict[str, Track], conditions: Conditions, feel: Feel, kept: set[str], seed: int,
                 grid_feel: str | None = None) -> dict:
    """Swing, micro-timing and accents from the genre's groove template (taken from real
    GMD drummers) on the generated parts, in place; kept parts stay as they were. A piece the
    plan made straight in a genre that also swings (`grid_feel`, a straight jazz or rock
    groove) gets no swing unless asked. Returns what was applied, for run.json."""
    if feel.quantize:
        return {"quantized": True, "swing_percent": 50.0}
    from stemforge.symbolic.runtime.groove import apply_feel, default_pool

    pool = default_pool()
    # material without a genre label (`--genre none`) has its own entry: a plain straight groove
    groove = genre_entry(conditions.genre).groove
    if groove.template not in pool.templates:
        raise ComposeError(f"genre {conditions.genre!r}, groove: no template {groove.template!r} in the groove "
                           f"pool ({', '.join(sorted(pool.templates))}); build it with scripts/build_grooves.py")
    template = pool.template(groove.template)
    genre_swing = 50.0 if grid_feel == "straight" else groove.swing
    swing = feel.swing_percent if feel.swing_percent is not None else genre_swing
    total = conditions.bars * BEATS_PER_BAR * TICKS_PER_BEAT
    generated = {r: t for r, t in tracks.items() if r not in kept}
    try:
        tracks.update(apply_feel(generated, template, swing_percent=swing, seed=seed, total_ticks=total,
                                 bpm=conditions.bpm))
    except GrooveError as error:
        raise ComposeError(f"--swing: {error}") from error
    return {"quantized": False, "groove": template.name, "swing_percent": swing}


def _with_programs(tracks: dict[str, Track], genre: str) -> dict[str, Track]:
    programs = genre_entry(genre).instruments
    return {r: replace(t, program=0 if t.is_drum else programs.get(r, t.program)) for r, t in tracks.items()}


@dataclass
class _Piece:
    """What one piece samples from and how its tokens become an Arrangement."""

    conditions: Conditions
    plan: SamplePlan
    composition: CompositionPlan
    chord_spans: list
    seed_bars: dict[str, int]


def _prepare(composer: Composer, conditions: Conditions, model_genre: str, kept: dict[str, Track],
             seed_clip: dict[str, Track]) -> _Piece:
    bar_ticks = BEATS_PER_BAR * TICKS_PER_BEAT
    total_ticks = conditions.bars * bar_ticks
    seed_bars = {r: max(1, math.ceil(t.end_tick() / bar_ticks)) for r, t in seed_clip.items()}
    for role, clip_bars in seed_bars.items():
        if clip_bars > conditions.bars:
            raise ComposeError(f"--seed-midi: the clip's {role} part is {clip_bars} bars, longer than --bars "
                               f"{conditions.bars}; ask for more bars or trim the clip")
    given_whole = [r for r in ROLES if r in kept or seed_bars.get(r) == conditions.bars]
    if seed_clip and len(given_whole) == len(ROLES):
        raise ComposeError(f"--bars: the seed clip already fills all {conditions.bars} bars of its "
                           f"{', '.join(r for r in ROLES if r in seed_clip)} part(s), so nothing is left to compose; "
                           f"ask for more bars to continue it (--bars {min(2 * conditions.bars, composer.max_bars)})",
                           field="bars")
    for role, track in kept.items():
        if track.end_tick() > total_ticks + bar_ticks // 2:
            raise ComposeError(f"--keep: the kept {role} part is longer than {conditions.bars} bars; "
                               f"use --bars {math.ceil(track.end_tick() / bar_ticks)}")

    tokenizer = composer.tokenizer
    context: dict[str, list[int]] = {}
    for role, track in kept.items():
        context[role] = tokenizer.encode_track(on_feel_grid(track), TICKS_PER_BEAT, conditions.bars)
    for role, track in seed_clip.items():
        if role in context:
            continue
        full = seed_bars[role] == conditions.bars
        context[role] = tokenizer.encode_track(on_feel_grid(track), TICKS_PER_BEAT, conditions.bars,
                                               bars_kept=None if full else seed_bars[role])
    roles = tuple(r for r in ROLES if r in kept) + tuple(r for r in ROLES if r in seed_clip and r not in kept)
    roles += tuple(r for r in ROLES if r not in roles)
    composition, chord_spans = plan_for(conditions, tokenizer.spec.grid_per_beat, composer.style, model_genre)
    plan = SamplePlan(
        prefix_ids=tokenizer.prefix_ids(model_genre, conditions.bpm, conditions.key, conditions.density,
                                        conditions.bars),
        roles=roles, bars=conditions.bars, context=context, key=conditions.key, composition=composition,
        genre=model_genre,
    )
    return _Piece(conditions, plan, composition, chord_spans, seed_bars)


def _finish(composer: Composer, piece: _Piece, ids: list[int], stats: SampleStats, feel: Feel, seed: int,
            kept: dict[str, Track], seed_clip: dict[str, Track]) -> Composed:
    conditions = piece.conditions
    bar_ticks = BEATS_PER_BAR * TICKS_PER_BEAT
    tracks = composer.tokenizer.decode_tracks(ids, TICKS_PER_BEAT)
    grid_tracks = dict(tracks)
    applied = apply_groove(tracks, conditions, feel, kept=set(kept), seed=seed, grid_feel=piece.composition.feel)
    for role, clip in seed_clip.items():  # the clip's own bars, verbatim (tokens quantize)
        if role in kept:
            continue
        kept_end = piece.seed_bars[role] * bar_ticks
        generated = [n for n in tracks[role].notes if n.start >= kept_end]
        tracks[role] = replace(tracks[role], notes=sorted(clip.notes + generated))
    for role, track in kept.items():
        tracks[role] = replace(tracks[role], notes=list(track.notes))
    tracks = _with_programs({r: tracks[r] for r in ROLES if r in tracks}, conditions.genre)
    for role in kept:  # a kept part keeps its own program too
        tracks[role] = replace(tracks[role], program=kept[role].program)
    arrangement = Arrangement(conditions, tracks, ids, chords=piece.chord_spans,
                              grid_tracks={r: replace(tracks[r], notes=grid_tracks[r].notes) for r in tracks
                                           if r in grid_tracks and r not in kept and r not in seed_clip})
    return Composed(arrangement, ids, piece.composition, applied, stats, _budget_warnings(composer, piece, stats))


def _budget_warnings(composer: Composer, piece: _Piece, stats: SampleStats) -> list[str]:
    """A line when the model's context made the grammar close bars the model wanted to go on
    with: the piece is thinner than asked, and the user should know where and why."""
    cut = stats.capped_summary(piece.conditions.bars)
    if not cut:
        return []
    seed = ""
    if piece.seed_bars:
        seed = (f"; the seed clip's {', '.join(piece.seed_bars)} ({piece.plan.context_tokens()} tokens) took part of "
                "it")
    return [f"context: this model holds {composer.shape.n_positions} tokens, too few for {piece.conditions.bars} bars "
            f"at this density{seed}: notes were cut short in {cut}; ask for fewer --bars, a sparser --density or a "
            "shorter --seed-midi, or use a model with a larger n_positions"]


def compose(composer: Composer, conditions: Conditions, settings: SamplingSettings, seed: int, *,
            model_genre: str | None = None, kept: dict[str, Track] | None = None,
            seed_clip: dict[str, Track] | None = None, feel: Feel | None = None,
            on_token: Callable[[int], None] | None = None) -> Composed:
    """One piece. `model_genre`: the genre token the model is asked for (a genre it lacks is
    composed as its nearest; default the conditions' genre). `kept`: whole parts of an earlier
    run, kept verbatim. `seed_clip`: parts whose first bars are kept and continued."""
    return compose_takes(composer, [(conditions, seed)], settings, model_genre=model_genre, kept=kept,
                         seed_clip=seed_clip, feel=feel, on_token=on_token)[0]


def compose_takes(composer: Composer, takes: list[tuple[Conditions, int]], settings: SamplingSettings, *,
                  model_genre: str | None = None, kept: dict[str, Track] | None = None,
                  seed_clip: dict[str, Track] | None = None, feel: Feel | None = None,
                  on_token: Callable[[int], None] | None = None) -> list[Composed]:
    """Several pieces (takes), each with its own conditions and seed, the same context parts
    and feel. One take samples through the batch-1 decoder; several sample together through
    the batched one (`Sampler.sample_takes`): N takes cost far less than N runs."""
    feel = feel or Feel()
    pieces = [PieceOrder(conditions, seed, model_genre or conditions.genre, feel) for conditions, seed in takes]
    return compose_pieces(composer, pieces, settings, kept=kept, seed_clip=seed_clip, on_token=on_token)


@dataclass(frozen=True)
class PieceOrder:
    """One piece of a `compose_pieces` call: the takes of one run, or the jobs a service
    worker composes together (each its own genre token and feel)."""

    conditions: Conditions
    seed: int
    model_genre: str  # the genre token the model is asked for
    feel: Feel


def compose_pieces(composer: Composer, orders: list[PieceOrder], settings: SamplingSettings, *,
                   kept: dict[str, Track] | None = None, seed_clip: dict[str, Track] | None = None,
                   on_token: Callable[[int], None] | None = None) -> list[Composed]:
    """Pieces sampled together as the rows of one batched decoder (one alone: the batch-1
    decoder). With the int8 and compiled decoders a piece comes out token for token as it
    does alone (their step sums each row in the same order whatever the batch;
    bench/symbolic.py counts it), so batching changes the time, never the music."""
    kept, seed_clip = kept or {}, seed_clip or {}
    rows = _rows(orders, bool(kept or seed_clip), composer.max_bars)
    pieces = [_prepare(composer, row.piece.conditions, row.piece.model_genre, kept, seed_clip) for row in rows]
    for piece, row in zip(pieces, rows, strict=True):
        if row.section is not None and row.section.fills_at_end:
            piece.composition = with_fill_at_end(piece.composition, piece.conditions.bars)
            piece.plan.composition = piece.composition
    seeds = [row.piece.seed for row in rows]
    sampler = sampler_for(composer)
    try:
        if len(pieces) == 1:
            sequences = [sampler.sample(pieces[0].plan, settings, seeds[0], on_token=on_token)]
            stats = [sampler.stats]
        else:
            sequences = sampler.sample_takes([p.plan for p in pieces], settings, seeds, on_token=on_token)
            stats = sampler.take_stats
    except UserError as error:  # a bad seed clip or kept part; anything else is a bug, not bad input
        raise ComposeError(f"compose: {error}") from error
    finished = [_finish(composer, piece, ids, take_stats, row.piece.feel, row.piece.seed, kept, seed_clip)
                for piece, ids, take_stats, row in zip(pieces, sequences, stats, rows, strict=True)]
    return [_gathered(order, [(row, done) for row, done in zip(rows, finished, strict=True) if row.order == number])
            for number, order in enumerate(orders)]


@dataclass(frozen=True)
class _Row:
    """One row of the batch: a piece, or one new section of a form (`section`, in `form`)."""

    order: int  # the number of the PieceOrder it belongs to
    piece: PieceOrder
    form: Form | None = None
    section: SectionOrder | None = None


def _rows(orders: list[PieceOrder], has_context: bool, max_bars: int) -> list[_Row]:
    """What is sampled: a piece as one row; a piece in a form as its new sections, each a row
    of its own (two for a long one: `sections.section_orders`)."""
    rows: list[_Row] = []
    for number, order in enumerate(orders):
        form = form_of(order.conditions)
        if form is None:
            rows.append(_Row(number, order))
            continue
        if has_context:
            raise ComposeError("--form: a form is composed without kept parts or a seed clip for now; ask for "
                               f"{FORM_FROM_BARS} bars or fewer to use --keep/--seed-midi", field="form")
        for section in section_orders(order.conditions, form, order.seed, chords_were_drawn(order.conditions)):
            if section.conditions.bars > max_bars:
                raise ComposeError(f"--form: {form.sections[section.index].name}:{section.conditions.bars} is beyond "
                                   f"this model's reach of {max_bars} bars a section; split it", field="form")
            rows.append(_Row(number, replace(order, conditions=section.conditions, seed=section.seed), form, section))
    return rows


def _gathered(order: PieceOrder, done: list[tuple[_Row, Composed]]) -> Composed:
    """A piece's result from its rows: a loop's one row as it is, a form's sections laid out."""
    first_row, opening = done[0]
    if first_row.form is None:
        return opening
    form = first_row.form
    halves = {(row.section.index, row.section.half): composed.arrangement for row, composed in done}
    firsts = {row.section.index: join_halves(halves[(row.section.index, 0)], halves.get((row.section.index, 1)),
                                             row.section.bars)
              for row, _ in done if row.section.half == 0}
    arrangement, described = assemble(order.conditions, form, firsts)
    arrangement.tracks = _with_programs(arrangement.tracks, order.conditions.genre)
    stats = SampleStats(sampled=sum(c.stats.sampled for _, c in done), forced=sum(c.stats.forced for _, c in done),
                        repeated=sum(c.stats.repeated for _, c in done))
    warnings = [f"{form.sections[row.section.index].name}: {line}" for row, c in done for line in c.warnings]
    return Composed(arrangement, [], opening.composition, opening.feel, stats, warnings,
                    form={"text": form.text(), "bars": form.bars, "sections": described,
                          "verse_and_chorus_from": first_row.section.chords_from})
