"""Composing a form: a track of sections (intro, verse, chorus, drop...) past one loop.

A piece longer than the model's reach (16 busy bars in its 2048-token context) or one asked
for as a form is composed section by section: each section that is new in the form is a
piece of its own (its bars, its density step, its chord progression: the run's chords for
the intro, verses and outro, a progression of its own drawn for a chorus, bridge or drop),
and all of them are sampled together as the rows of one batched decoder, so a 64-bar track
costs about its new sections' bars, not a 2048-token context per 16 bars. A section that
comes back is its first statement again (the second chorus is the first one); a section
longer than 8 bars is sampled as 8 (16 busy bars cut notes at the context's end) and those
bars' end again with a melody of its own. Between sections: a drum fill in the bar before a
new section (the model's, else beats 3-4 as a snare run down the toms, where drummers fill),
a crash (an accent where the genre has no crash: lofi, ambient) on its downbeat, a snare
build and an 8th of silence before a drop.
The parts a section kind plays (`form.SECTION_KINDS`: an intro of drums and bass, a break
without drums) are kept; the others rest there.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, replace

from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Arrangement, Note
from stemforge.symbolic.music.conditions import (
    DENSITIES,
    Conditions,
    default_chords,
    progression_of,
)
from stemforge.symbolic.music.drum_map import KICK_PITCHES as KICKS
from stemforge.symbolic.music.drum_map import drum_voice
from stemforge.symbolic.music.genres import genre_entry
from stemforge.symbolic.runtime.form import (
    GENRE_FORM_STYLE,
    MAX_FORM_BARS,
    Form,
    default_form,
    fitted_form,
    form_in_prompt,
    load_forms,
    parse_form,
)
from stemforge.symbolic.runtime.plan import FILL_KEEPS_BEATS, BarSource

FORM_FROM_BARS = 16  # a piece longer than this is a form (the default model's reach: 16 busy bars)
# A section is sampled as pieces of at most this many bars: 16 bars at the chorus's busier
# density filled the 2048-token context and cut notes in 10 of 60 64-bar forms
# (bench/forms.py); a longer section is its 8 bars and their end again (`join_halves`).
COMPOSE_BARS = 8
CRASH, SNARE = 49, 38
HOME_SECTIONS = frozenset({"intro", "verse", "head", "outro", "interlude"})  # on the run's own progression
ACCENT_VELOCITY_STEP = 18


def form_of(conditions: Conditions) -> Form | None:
    """The form a piece is composed in: the one it names, None for a loop."""
    return parse_form(conditions.form) if conditions.form else None


def with_form(conditions: Conditions, typed: str | None, bars_named: bool, inherited: str = "",
              notes: list[str] | None = None) -> Conditions:
    """The conditions with their form resolved: a typed `--form` (its bars are the piece's;
    with bars named too they must agree), else the prompt's words ('verse and chorus' fitted
    to the bars named, 'full track' 32 bars of the genre's form), else an earlier run's form
    (`inherited`, --from), else the genre's default form when more than FORM_FROM_BARS bars
    are asked; a piece of 16 bars or fewer without one stays one piece. A line in `notes`
    says which form and where it came from."""
    words, words_bars = form_in_prompt(conditions.prompt)
    form: Form | None = None
    if typed:
        form = parse_form(typed)
        if bars_named and conditions.bars != form.bars:
            raise ConditionError(f"form: its sections add up to {form.bars} bars but {conditions.bars} bars are "
                                 "asked; leave the bars out or make them agree", field="form")
    elif words:
        form = parse_form(words)
        if bars_named and conditions.bars != form.bars:
            form = fitted_form(form, conditions.bars, f"prompt: {words!r} fitted to {conditions.bars} bars")
        else:
            form = replace(form, source=f"prompt: {words!r}")
    elif inherited:
        form = replace(parse_form(inherited), source="the earlier run's")
    elif words_bars and not bars_named:
        form = default_form(conditions.genre, words_bars, conditions.seed)
    elif conditions.bars > FORM_FROM_BARS:
        if conditions.bars > MAX_FORM_BARS:
            raise ConditionError(f"bars: {conditions.bars} is more than a form holds; ask for at most "
                                 f"{MAX_FORM_BARS} bars", field="bars")
        form = default_form(conditions.genre, conditions.bars, conditions.seed)
    if form is None:
        return replace(conditions, form="")
    if notes is not None:
        notes.append(f"form: {form.text()} ({form.bars} bars; {form.source})")
    return replace(conditions, bars=form.bars, form=form.text())


def section_seed(seed: int, name: str) -> int:
    """The sampling seed of a form's section: the run's seed and the section's name."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (1 << 63)


def _stepped_density(density: str, step: int) -> str:
    index = DENSITIES.index(density) + step
    return DENSITIES[min(max(index, 0), len(DENSITIES) - 1)]


def _own_chords(conditions: Conditions, name: str, taken: set[str]) -> str:
    """A progression of its own for a section that leaves home (chorus, bridge, drop): drawn
    for the genre and key like the run's, by the section's seed, and not one already used."""
    text = ""
    for attempt in range(16):
        drawn = replace(conditions, seed=section_seed(conditions.seed + attempt, name) % (1 << 31), chords="")
        progression = progression_of(replace(drawn, chords=default_chords(drawn)))
        text = progression.text() if progression else ""
        if text not in taken:
            break
    return text


@dataclass(frozen=True)
class SectionOrder:
    """One new section of a form: what it is composed from."""

    index: int  # its first place in the form
    conditions: Conditions
    seed: int  # the sampling seed
    half: int = 0  # a section longer than COMPOSE_BARS: 0 its first 8 bars, 1 the melody of its rest
    bars: int = 0  # the section's bars (conditions.bars is what is sampled)
    fills_at_end: bool = False  # another section follows: its last bar is free for a fill
    chords_from: str | None = None  # the real song whose verse and chorus it plays, for run.json


def chords_were_drawn(conditions: Conditions) -> bool:
    """Whether a piece's chords are its genre's default draw (not typed or prompted)."""
    drawn = progression_of(replace(conditions, chords=default_chords(conditions)))
    return drawn is not None and drawn.text() == conditions.chords


def verse_and_chorus(conditions: Conditions) -> tuple[str, str, str] | None:
    """A real song's verse and chorus progressions (symbols in the run's key) and the song,
    for the genres with Billboard songs (`form.GENRE_FORM_STYLE`), drawn by the seed among the
    style's songs in the run's mode; None elsewhere, or when the piece loops every 1-2 bars
    (a 4-bar progression does not fit it)."""
    style = GENRE_FORM_STYLE.get(conditions.genre)
    if style is None or conditions.loop in (1, 2):
        return None
    found = load_forms().get("pairs", {}).get(style, {}).get(conditions.key_obj.mode, [])
    if not found:
        return None
    pair = random.Random(f"pair|{conditions.genre}|{conditions.key}|{conditions.seed}").choice(found)
    verse, chorus = (progression_of(replace(conditions, chords=pair[part])) for part in ("verse", "chorus"))
    return verse.text(), chorus.text(), f"Billboard {style} #{pair['song']}"


CHORUS_SECTIONS = frozenset({"chorus", "hook"})  # on the chorus of a real song's verse/chorus pair


def section_orders(conditions: Conditions, form: Form, seed: int, drawn_chords: bool) -> list[SectionOrder]:
    """The sections of `form` that are new (first statements), each as a piece: the run's
    conditions with the section's bars and density step; the run's chords at home, a
    progression of its own elsewhere when the run's chords were drawn (typed chords play in
    every section). The run's seed stays in the conditions (it draws the groove, which the
    whole track keeps); each section samples with a seed of its own."""
    orders: list[SectionOrder] = []
    pair = verse_and_chorus(conditions) if drawn_chords else None
    home = pair[0] if pair else conditions.chords
    taken = {home} | ({pair[1]} if pair else set())
    for index, section in enumerate(form.sections):
        if form.first_of(index) != index:
            continue
        chords = home
        if pair and section.name in CHORUS_SECTIONS:
            chords = pair[1]
        elif drawn_chords and section.name not in HOME_SECTIONS:
            chords = _own_chords(conditions, section.name, taken)
            taken.add(chords)
        bars = max(s.bars for s in form.sections if s.name == section.name)  # a return may be longer
        section_conditions = replace(conditions, bars=min(bars, COMPOSE_BARS), form="", chords=chords,
                                     density=_stepped_density(conditions.density, section.kind.density_step))
        fills_at_end = index + 1 < len(form.sections)
        source = pair[2] if pair else None
        orders.append(SectionOrder(index, section_conditions, section_seed(seed, section.name), 0, bars,
                                   fills_at_end, source))
        if bars > COMPOSE_BARS:
            orders.append(SectionOrder(index, section_conditions, section_seed(seed, section.name + "|2"), 1, bars,
                                       fills_at_end, source))
    return orders


def join_halves(first: Arrangement, second: Arrangement | None, bars: int) -> Arrangement:
    """A section of `bars` bars from its sampled 8: those bars, then their last `bars - 8`
    bars again (so the section ends on the fill its eighth bar has), the melody of the rest
    taken from `second`, a line of its own over the same chords."""
    if second is None or bars <= first.conditions.bars:
        return first
    sampled = first.conditions.bars
    bar_ticks = BEATS_PER_BAR * TICKS_PER_BEAT
    rest = bars - sampled
    cut_from, end = (sampled - rest) * bar_ticks, sampled * bar_ticks
    shift = end - cut_from

    def longer(notes: list[Note], source: list[Note]) -> list[Note]:
        return sorted(notes + [Note(n.start + shift, n.duration, n.pitch, n.velocity)
                               for n in source if cut_from <= n.start < end])

    tracks = {role: replace(track, notes=longer(track.notes, (second if role == "melody" else first)
                                                .tracks[role].notes))
              for role, track in first.tracks.items()}
    grid = {role: replace(track, notes=longer(track.notes, (second if role == "melody" else first)
                                              .grid_tracks[role].notes))
            for role, track in first.grid_tracks.items() if role in second.grid_tracks}
    chords = list(first.chords) + [replace(span, start=max(span.start, cut_from) + shift, end=span.end + shift)
                                   for span in first.chords if span.end > cut_from]
    return Arrangement(replace(first.conditions, bars=bars), tracks, [], chords=chords, grid_tracks=grid)


def with_fill_at_end(composition, bars: int):
    """The plan with a drum fill in the section's last bar (its first half kept)."""
    last = bars - 1
    if last < 1:
        return composition
    drums = dict(composition.sources.get("drums", {}))
    source = drums.get(last, BarSource(0))
    drums[last] = BarSource(source.source, FILL_KEEPS_BEATS)
    return replace(composition, sources={**composition.sources, "drums": drums},
                   fills=composition.fills | {last})


# ------------------------------------------------------------------ the track from its sections

def _shifted(notes: list[Note], ticks: int) -> list[Note]:
    return [Note(n.start + ticks, n.duration, n.pitch, n.velocity) for n in notes]


def _transition(drums: list[Note], start: int, bar_ticks: int, into: str | None, genre: str) -> list[Note]:
    """A section's drums (ticks from the section start) with what leads out of it: before a
    drop in the genres that build, 16th snares rising over the last two beats and the last
    8th silent."""
    if into != "drop" or genre_entry(genre).form.into_section != "build":
        return drums
    end = start + bar_ticks
    roll_from = end - 2 * TICKS_PER_BEAT
    silent_from = end - TICKS_PER_BEAT // 2
    kept = [n for n in drums if not roll_from <= n.start < end]
    step = TICKS_PER_BEAT // 4
    roll = [Note(tick, step, SNARE, 60 + (tick - roll_from) * 60 // (silent_from - roll_from))
            for tick in range(roll_from, silent_from, step)]
    return sorted(kept + roll)




FILL_LIKENESS = 0.5  # a last bar whose second half is less alike than this to every earlier bar's is a fill


def _second_half(drums: list[Note], bar_start: int, bar_ticks: int) -> frozenset[tuple[int, str]]:
    """(16th of the bar, voice) of the hits in a bar's beats 3-4."""
    sixteenth = TICKS_PER_BEAT // 4
    return frozenset(((n.start - bar_start) // sixteenth, drum_voice(n.pitch)) for n in drums
                     if bar_start + bar_ticks // 2 <= n.start < bar_start + bar_ticks)


def _is_fill(last: frozenset[tuple[int, str]], earlier: list[frozenset[tuple[int, str]]]) -> bool:
    """A last bar that fills: unlike every earlier bar of its section in its second half, or
    with toms or a snare run (3+ snares) there that no earlier bar has."""
    def alike(a: frozenset, b: frozenset) -> float:
        return len(a & b) / len(a | b) if a | b else 1.0

    def has(half: frozenset, voice: str, hits: int) -> bool:
        return sum(v == voice for _, v in half) >= hits

    return (all(alike(last, bar) < FILL_LIKENESS for bar in earlier)
            or (has(last, "tom", 1) and not any(has(bar, "tom", 1) for bar in earlier))
            or (has(last, "snare", 3) and not any(has(bar, "snare", 3) for bar in earlier)))


FILL = (SNARE, SNARE, SNARE, SNARE, 50, 47, 45, 43)  # beats 3-4: a snare run, then the toms high to low


def _fill_into(drums: list[Note], section_start: int, last_bar: int, bar_ticks: int, genre: str) -> list[Note]:
    """The bar before a new section with a fill: the model's own where it already fills
    (`_is_fill` against the section's earlier bars: a long section's last bar is a copy of
    its eighth), else beats 3-4 as 16ths, a snare run down the toms, the kick on beat 3 kept
    (the genres whose drummers fill into a section, `form.into_section`; dance music builds)."""
    if genre_entry(genre).form.into_section != "fill":
        return drums
    earlier = [_second_half(drums, bar, bar_ticks) for bar in range(section_start, last_bar, bar_ticks)]
    if not earlier or _is_fill(_second_half(drums, last_bar, bar_ticks), earlier):
        return drums
    half = last_bar + bar_ticks // 2
    step = TICKS_PER_BEAT // 4
    kept = [n for n in drums if not (half <= n.start < last_bar + bar_ticks) or (n.pitch in KICKS and n.start == half)]
    run = [Note(half + i * step, step, pitch, 72 + 5 * i) for i, pitch in enumerate(FILL)]
    return sorted(kept + run)


def _downbeat_mark(drums: list[Note], start: int, genre: str) -> list[Note]:
    """A crash on a new section's downbeat, or (lofi, ambient) its downbeat kick accented."""
    if genre_entry(genre).form.downbeat == "crash":
        return sorted([n for n in drums if not (n.pitch == CRASH and n.start == start)]
                      + [Note(start, TICKS_PER_BEAT, CRASH, 112)])
    window = TICKS_PER_BEAT // 8
    return [replace(n, velocity=min(127, n.velocity + ACCENT_VELOCITY_STEP))
            if n.pitch in KICKS and abs(n.start - start) <= window else n for n in drums]


def assemble(conditions: Conditions, form: Form, firsts: dict[int, Arrangement]) -> tuple[Arrangement, list[dict]]:
    """The track: each section its first statement's parts, placed at its bars, with the
    parts its kind does not play left out and the transitions between sections; and what
    run.json says of each section (name, bars, chords, parts, where its material comes from)."""
    bar_ticks = BEATS_PER_BAR * TICKS_PER_BEAT
    sample = next(iter(firsts.values()))
    roles = tuple(sample.tracks)
    notes: dict[str, list[Note]] = {role: [] for role in roles}
    grid_notes: dict[str, list[Note]] = {role: [] for role in sample.grid_tracks}
    chords: list = []
    described: list[dict] = []
    for index, (section, start_bar) in enumerate(zip(form.sections, form.starts)):
        first = form.first_of(index)
        piece = firsts[first]
        start = start_bar * bar_ticks
        end = start + section.bars * bar_ticks
        parts = [r for r in roles if r in section.kind.parts]
        following = form.sections[index + 1].name if index + 1 < len(form.sections) else None
        for role in parts:
            placed = _shifted(piece.tracks[role].notes, start)
            if role == "drums":
                if following is not None:
                    placed = _fill_into(placed, start, end - bar_ticks, bar_ticks, conditions.genre)
                placed = _transition(placed, end - bar_ticks, bar_ticks, following, conditions.genre)
                if index > 0:
                    placed = _downbeat_mark(placed, start, conditions.genre)
            notes[role].extend(n for n in placed if n.start < end)
            if role in grid_notes:
                grid_notes[role].extend(n for n in _shifted(piece.grid_tracks[role].notes, start) if n.start < end)
        chords.extend(replace(span, start=span.start + start, end=min(span.end + start, end))
                      for span in piece.chords if span.start + start < end)
        described.append({"name": section.name, "start_bar": start_bar, "bars": section.bars,
                          "chords": piece.conditions.chords, "density": piece.conditions.density,
                          "parts": parts, "material": "new" if first == index else f"section {first + 1} again"})
    tracks = {role: replace(sample.tracks[role], notes=sorted(notes[role])) for role in roles}
    grid_tracks = {role: replace(sample.grid_tracks[role], notes=sorted(grid_notes[role])) for role in grid_notes}
    arrangement = Arrangement(conditions, tracks, [], chords=chords, grid_tracks=grid_tracks)
    return arrangement, described
