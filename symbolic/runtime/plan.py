"""The composition plan: the structure a producer hears, decided before a note is sampled.

The model writes every note; the plan says which bars come back and how (the phrase form),
which chord sounds where (the harmony the bass roots and melody strong beats follow), the
kick+snare skeleton of the groove (drawn from the genre's real grooves), where the drums fill,
where the melody breathes, how tightly the bass locks to the kick, and how dense each part
is. The sampler follows it (`symbolic.runtime.guide`): a bar that comes back is forced tokens (run
through the model in one forward call), or its rhythm is forced and its pitches sampled
anew over its own chords; everything else is sampled with the plan's biases. Any model
`pipeline train` makes is steered the same way, because the plan lives at sampling time.

Two kinds of structure (`Conditions.loop`):

- `--loop 8` (the default): phrases that develop, as songs and real loops do. A 4-bar phrase
  is a call (bars 1-2) and a response (bar 3 starts as the call did, bar 4 cadences); the
  second phrase comes back varied (A A': its first bar starts as bar 1 did, its second is
  bar 2 again, its last is new); 16 bars add a contrasting B and the A phrase returns with
  its first cadence (A A' B A''). The bass rides the chord cycle and varies at phrase ends;
  the drums keep a 1-2 bar groove with a variation in the last bar of each 4-bar phrase and
  a fill in the last bar of each 8-bar phrase.
- `--loop 1|2|4`: an exact loop for producers who want one. Per role a period P and a cell
  C: bars [0, C) are sampled; a bar in [C, P) varies bar `b % C` (its first three beats
  copied, the last new: the A A' of a 2-bar drum loop); a bar b >= P copies bar `b % P`,
  except the last bar of each 4-bar phrase, which keeps its first two beats (a turn).
- `--loop off`: bass and melody through-composed; the drums still keep their groove (the
  first two beats of every bar come from the groove, the rest is new), so a through-composed
  piece does not wander.

A bar copied onto another chord keeps its rhythm and samples new pitches (a sequence, not a
clash): `BarSource.rhythm_only`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from stemforge.symbolic.core.ticks import TICKS_PER_BEAT
from stemforge.symbolic.music.conditions import ROLES, Conditions, progression_of
from stemforge.symbolic.music.genres import GenreStyle, genre_entry, genre_table
from stemforge.symbolic.music.harmony import ChordSpan, chord_scale, chord_tones

if TYPE_CHECKING:
    from stemforge.symbolic.decoding.style import StyleStats

PHRASE_BARS = 4
SECTION_BARS = 8  # two phrases: A A'
DEVELOP = 8  # the `loop` value of phrases that develop (the default)
TURN_KEEPS_BEATS = 3  # A': the loop's second bar keeps three beats of its first
FILL_KEEPS_BEATS = 2  # a phrase's last bar keeps its first half and is free for a fill
ECHO_KEEPS_BEATS = 2  # a response (and a varied phrase) starts as the call did, for two beats
KICK, KICKS = 36, frozenset({35, 36})
ONE_FEEL_SHARE = 0.95  # a genre whose grooves are this much one feel has no feel to draw

# (start, end, root pc, bass pc, chord tones, the chord's scale in the key: `harmony.chord_scale`)
Chords = tuple[tuple[int, int, int, int, frozenset[int], frozenset[int]], ...]


# Each genre's `loops` in the genre table (configs/genres.yaml; GenreStyle is defined in
# symbolic/music/genres.py); the label-free material's are the table's `unlabelled` entry.
GENRE_STYLES: dict[str, GenreStyle] = {g.name: g.loops for g in genre_table().genres.values()}
DEFAULT_STYLE = genre_table().unlabelled.loops


@dataclass(frozen=True)
class BarSource:
    """Bar `bar` of a track is made from bar `source` of the same track."""

    source: int
    keep_beats: int | None = None  # None: the whole bar; n: its first n beats, the rest new
    rhythm_only: bool = False  # the source's onsets and lengths, with pitches sampled anew

    @property
    def whole(self) -> bool:
        return self.keep_beats is None


def bar_sources(bars: int, period: int | None, cell: int | None = None) -> dict[int, BarSource]:
    """An exact loop (see the module docstring); bars missing are sampled."""
    if not period:
        return {}
    cell = min(cell or period, period)
    sources: dict[int, BarSource] = {}
    for bar in range(cell, min(period, bars)):
        sources[bar] = BarSource(bar % cell, TURN_KEEPS_BEATS)
    for bar in range(period, bars):
        phrase_end = (bar + 1) % PHRASE_BARS == 0
        sources[bar] = BarSource(bar % period, FILL_KEEPS_BEATS if phrase_end else None)
    return sources


# The melody's phrase form, 16 bars (A A' B A''): bar -> (source bar, beats kept; None = whole).
# Past 16 bars the form starts again with the A'' phrase's material varied.
MELODY_FORM: dict[int, tuple[int, int | None]] = {
    2: (0, ECHO_KEEPS_BEATS),  # response: starts as the call did
    4: (0, ECHO_KEEPS_BEATS), 5: (1, None), 6: (2, ECHO_KEEPS_BEATS),  # A': varied, new cadence in bar 8
    10: (8, ECHO_KEEPS_BEATS),  # B: its own call and response
    12: (0, ECHO_KEEPS_BEATS), 13: (1, None), 14: (2, ECHO_KEEPS_BEATS), 15: (3, None),  # A'': the first cadence
}


def melody_sources(bars: int) -> dict[int, BarSource]:
    """The melody's developing phrases (see MELODY_FORM)."""
    sources: dict[int, BarSource] = {}
    for bar in range(bars):
        if bar < 16:
            entry = MELODY_FORM.get(bar)
            if entry is not None:
                sources[bar] = BarSource(entry[0], entry[1])
        else:  # the 16-bar form again, every bar a variation of its counterpart
            sources[bar] = BarSource(bar % 16, ECHO_KEEPS_BEATS)
    return sources


def bass_sources(bars: int, period: int) -> dict[int, BarSource]:
    """The bass rides the chord cycle: bars [0, period) new, then each bar comes back with
    the chords, varied (first two beats kept) in the last bar of each 4-bar phrase and, in a
    B section (bars 8-11 of 16), on alternate bars."""
    sources: dict[int, BarSource] = {}
    for bar in range(period, bars):
        phrase_end = (bar + 1) % PHRASE_BARS == 0
        in_b = SECTION_BARS <= bar % 16 < SECTION_BARS + PHRASE_BARS and bar % 2 == 0
        sources[bar] = BarSource(bar % period, FILL_KEEPS_BEATS if phrase_end or in_b else None)
    return sources


def drum_sources(bars: int, period: int, loose: bool) -> tuple[dict[int, BarSource], frozenset[int]]:
    """A groove of `period` bars (its second bar an A' of its first), a variation in the last
    bar of each 4-bar phrase, a fill in the last bar of each 8-bar phrase (returned as the
    fill bars). `loose` (through-composed pieces): every bar keeps only the groove's first
    two beats."""
    sources: dict[int, BarSource] = {}
    fills = frozenset(bar for bar in range(bars) if (bar + 1) % SECTION_BARS == 0)
    for bar in range(1, min(period, bars)):
        sources[bar] = BarSource(0, TURN_KEEPS_BEATS)
    for bar in range(period, bars):
        if bar in fills:
            keep: int | None = FILL_KEEPS_BEATS
        elif (bar + 1) % PHRASE_BARS == 0:
            keep = TURN_KEEPS_BEATS
        else:
            keep = FILL_KEEPS_BEATS if loose else None
        sources[bar] = BarSource(bar % period, keep)
    return sources, fills


@dataclass(frozen=True)
class CompositionPlan:
    """Everything the sampler follows besides the grammar. Ticks are at the grid of the
    tokens (`grid_per_beat` per beat); chords are (start, end, root pc, bass pc, tone pcs,
    scale pcs)."""

    bars: int
    loop_bars: int | None
    sources: dict[str, dict[int, BarSource]]
    chords: Chords = ()
    kick_lock: float = 0.0
    density: str = "normal"
    kick_cover: float = 0.0
    drum_skeleton: dict[int, frozenset[int]] = field(default_factory=dict)  # position -> kick/snare pitches
    feel: str | None = None  # the groove's grid (style.FEELS) where the genre plays more than one
    fills: frozenset[int] = frozenset()  # drum bars whose free beats are a fill
    rests: dict[str, frozenset[int]] = field(default_factory=dict)  # role -> bars left silent
    walking: bool = False  # the bass walks (GenreStyle.walking)

    def bar_map(self, role: str) -> str:
        """What each bar of a role is, for people: 'new ~1 =1 ~2 fill rest' = bar 1 new, bar
        2 a variation of bar 1, bar 3 a repeat of bar 1, bar 4 a variation of bar 2 ('^'
        instead of '=' or '~': the source's rhythm with new pitches), a drum fill, a rest."""
        sources = self.sources.get(role, {})
        rests = self.rests.get(role, frozenset())
        shown = []
        for bar in range(self.bars):
            if bar in rests:
                shown.append("rest")
            elif bar not in sources:
                shown.append("new")
            else:
                source = sources[bar]
                mark = "^" if source.rhythm_only else "=" if source.whole else "~"
                fill = "+fill" if role == "drums" and bar in self.fills else ""
                shown.append(f"{mark}{source.source + 1}{fill}")
        return " ".join(shown)

    def to_dict(self) -> dict:
        return {
            "loop_bars": self.loop_bars,
            "bars": {role: self.bar_map(role) for role in ROLES},
            "kick_lock": self.kick_lock,
            "kick_cover": self.kick_cover,
            "density": self.density,
            "drum_skeleton": {str(p): sorted(d) for p, d in sorted(self.drum_skeleton.items())},
            "feel": self.feel,
        }


def _bar_harmony(chords: Chords, bar: int, positions_per_bar: int, upto: int | None = None) -> tuple:
    """The chords sounding in `bar` (its first `upto` positions), relative to the bar start."""
    start = bar * positions_per_bar
    end = start + (positions_per_bar if upto is None else upto)
    return tuple((max(c[0], start) - start, min(c[1], end) - start, c[2], c[3], c[4])
                 for c in chords if c[0] < end and c[1] > start)


def _over_its_chords(sources: dict[int, BarSource], chords: Chords, positions_per_bar: int) -> dict[int, BarSource]:
    """A bar that comes back over other chords keeps its rhythm and gets new pitches."""
    if not chords:
        return sources
    out = {}
    for bar, source in sources.items():
        upto = None if source.keep_beats is None else source.keep_beats * positions_per_bar // 4
        same = _bar_harmony(chords, bar, positions_per_bar, upto) == _bar_harmony(chords, source.source,
                                                                                 positions_per_bar, upto)
        out[bar] = source if same else replace(source, rhythm_only=True)
    return out


GOLDEN = (math.sqrt(5) - 1) / 2


def spread_draw(weights: list[float], stream: str, seed: int) -> int:
    """An index drawn in proportion to `weights` by the seed, spread evenly over consecutive
    seeds (the golden-ratio sequence from a point fixed by `stream`): any run of seeds takes
    each choice about as often as its weight says, where independent draws would leave 8
    seeds of a genre to luck."""
    start = random.Random(stream).random()
    point = (start + seed * GOLDEN) % 1.0 * sum(weights)
    for index, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return index
    return len(weights) - 1


SNARES = frozenset({37, 38, 39, 40})


def _snare_kind(hits: tuple) -> int:
    """0: a backbeat (snare on 2 and 4), 1: half-time (on 3), 2: anything else."""
    snares = {int(position) for position, pitch in hits if int(pitch) in SNARES}
    return 0 if {12, 36} <= snares else 1 if 24 in snares else 2


def draw_groove(style: StyleStats | None, genre: str, seed: int) -> tuple[str | None, dict[int, frozenset[int]]]:
    """The feel (straight, triplet or swung 16ths) and the kick+snare skeleton of this piece's
    groove: one of the genre's real patterns (the commonest bar of each training groove,
    `StyleStats.skeletons`), drawn by the seed in proportion to how many grooves play it, its
    feel first. So a genre's pieces back-beat, half-time, shuffle or four-on-the-floor as
    often as its real grooves do (GMD jazz: 24 of 44 performances swung), and none lacks a
    kick where they all have one."""
    if style is None:
        return None, {}
    patterns = style.skeletons.get(genre, [])
    if not patterns:
        return None, {}
    feels: dict[str, int] = {}
    for _, count, feel in patterns:
        feels[feel] = feels.get(feel, 0) + count
    names = sorted(feels)
    feel: str | None = names[spread_draw([feels[n] for n in names], f"feel|{genre}", seed)]
    # grouped by where the snare falls (backbeat, half-time, elsewhere), so that a run of
    # seeds takes each kind of groove in proportion (the draw is spread along this order)
    mine = sorted((p for p in patterns if p[2] == feel), key=lambda p: (_snare_kind(p[0]), -p[1]))
    if max(feels.values()) >= ONE_FEEL_SHARE * sum(feels.values()):
        feel = None  # the genre plays one feel: nothing to choose (and its rolls may use any slot)
    hits = mine[spread_draw([count for _, count, _ in mine], f"skeleton|{genre}|{feel}", seed)][0]
    skeleton: dict[int, set[int]] = {}
    for position, pitch in hits:
        skeleton.setdefault(int(position), set()).add(int(pitch))
    if not any(pitches & KICKS for pitches in skeleton.values()):
        skeleton.setdefault(0, set()).add(KICK)  # a groove bar without a kick is a break, not a piece's groove
    return feel, {position: frozenset(pitches) for position, pitches in sorted(skeleton.items())}


def build_plan(
    *,
    genre: str,
    bars: int,
    loop_bars: int | None,
    chord_cycle_bars: int | None = None,
    chords: Chords = (),
    density: str = "normal",
    kick_lock: float | None = None,
    kick_cover: float | None = None,
    positions_per_bar: int = 48,
    seed: int = 0,
    drum_skeleton: dict[int, frozenset[int]] | None = None,
    feel: str | None = None,
) -> CompositionPlan:
    """The plan for one piece (see the module docstring). Exact loops repeat bass and melody
    at the loop period, stretched to a whole number of chord cycles so a repeated bar always
    sounds over the same chord."""
    style = genre_entry(genre).loops
    sources: dict[str, dict[int, BarSource]] = {}
    fills: frozenset[int] = frozenset()
    rests: dict[str, frozenset[int]] = {}
    cycle = chord_cycle_bars or 1
    if loop_bars == DEVELOP:
        pitched_period = math.lcm(PHRASE_BARS, cycle)
        sources["drums"], fills = drum_sources(bars, style.drum_period_bars, loose=False)
        sources["bass"] = bass_sources(bars, pitched_period)
        sources["melody"] = melody_sources(bars)
        breathes = spread_draw([style.breathes, 1 - style.breathes], f"rests|{genre}", seed) == 0
        rests["melody"] = frozenset(bar for bar in range(SECTION_BARS - 1, bars, SECTION_BARS)
                                    if breathes and (bar + 1 < bars or bars <= SECTION_BARS))
    elif loop_bars:
        pitched = loop_bars
        if chord_cycle_bars and pitched % chord_cycle_bars:
            pitched = chord_cycle_bars * -(-pitched // chord_cycle_bars)
        for role in ROLES:
            if role == "drums":
                sources[role] = bar_sources(bars, min(style.drum_period_bars, loop_bars), cell=1)
            else:
                sources[role] = bar_sources(bars, pitched)
    else:  # through-composed lines over a groove that stays
        sources["drums"], fills = drum_sources(bars, style.drum_period_bars, loose=True)
    if not style.fills:
        fills = frozenset()
    for role in ("bass", "melody"):
        if role in sources:
            sources[role] = _over_its_chords(sources[role], chords, positions_per_bar)
    lock = style.kick_lock if kick_lock is None else kick_lock
    if kick_cover is None:  # the genre's cover goes with the genre's lock; a lock asked for covers as much
        kick_cover = style.cover if kick_lock is None else lock
    return CompositionPlan(bars, loop_bars, sources, tuple(chords), lock, density, kick_cover,
                           drum_skeleton or {}, feel, fills, rests, style.walking)


def plan_for(conditions: Conditions, grid_per_beat: int, style: StyleStats | None = None,
             genre: str | None = None) -> tuple[CompositionPlan, list[ChordSpan]]:
    """The plan of a piece from its conditions (loop, chords, density, genre), the model's
    style statistics (its genres' real groove skeletons; `genre` is the model's genre token)
    and its chord spans in ticks at `TICKS_PER_BEAT`; the plan's chords are on the token grid."""
    progression = progression_of(conditions)
    spans = progression.spans(conditions.bars, TICKS_PER_BEAT) if progression else []
    grid = TICKS_PER_BEAT // grid_per_beat
    feel, skeleton = draw_groove(style, genre or conditions.genre, conditions.seed)
    plan = build_plan(
        genre=conditions.genre, bars=conditions.bars, loop_bars=conditions.loop or None,
        chord_cycle_bars=progression.cycle_bars if progression else None,
        chords=tuple((span.start // grid, span.end // grid, span.chord.root, span.chord.bass, chord_tones(span.chord),
                      chord_scale(span.chord, conditions.key_obj)) for span in spans),
        density=conditions.density, positions_per_bar=4 * grid_per_beat, seed=conditions.seed,
        drum_skeleton=skeleton, feel=feel,
    )
    return plan, spans
