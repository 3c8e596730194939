"""The composition plan: the structure a producer hears, decided before a note is sampled.

The model writes every note; the plan says which bars repeat which (the loop), which chord
sounds where (the harmony the bass roots and melody strong beats follow), how tightly the
bass locks to the kick, and how dense each part is. The sampler follows it
(`symbolic.guide`): repeated bars are forced tokens (run through the model in one forward
call), everything else is sampled with the plan's biases. Any model `pipeline train` makes
is steered the same way, because the plan lives at sampling time, not in the weights.

Loop shape, per role (period P, cell C, a phrase of 4 bars):
- bars [0, C) are sampled; a bar in [C, P) varies bar `b % C`: its first three beats are
  copied, the last is sampled (an A A' pattern: the same groove, a new turn at its end);
- a bar b >= P copies bar `b % P`, except the last bar of each 4-bar phrase, which varies
  it (first two beats kept, the rest free for a fill or a variation).
"""

from __future__ import annotations

from dataclasses import dataclass

from stemforge.symbolic.arrangement import TICKS_PER_BEAT
from stemforge.symbolic.conditions import ROLES, Conditions, progression_of
from stemforge.symbolic.harmony import ChordSpan, chord_tones

PHRASE_BARS = 4
TURN_KEEPS_BEATS = 3  # A': the loop's second bar keeps three beats of its first
FILL_KEEPS_BEATS = 2  # a phrase's last bar keeps its first half and is free for a fill


@dataclass(frozen=True)
class GenreStyle:
    """How a genre's loops are built (its default loop length: `conditions.GENRE_DEFAULT_LOOP`)."""

    drum_period_bars: int  # drums repeat every 1 or 2 bars inside the loop
    kick_lock: float  # 0..1: how strongly bass onsets are pulled onto the kicks (off-kick notes cost)
    kick_cover: float | None = None  # 0..1: how strongly every kick must get a bass note; None: kick_lock

    @property
    def cover(self) -> float:
        return self.kick_lock if self.kick_cover is None else self.kick_cover


# The drum pattern turns over every 2 bars, every bar in four-on-the-floor music. The bass
# locks to the kick in the kick-locked genres, house and techno included (their training
# bass is on the kicks too: house with a bounce into the bar, techno a short note per kick;
# the default model's earlier off-beat and rolling training bass made a locked house read
# as reggae to the genre classifier); rock's bass covers every kick but keeps its driving
# 8ths between them (locked at 0.5 it thinned to 5.5 notes a bar against the training
# data's 8 and read as rock in 59% of 96 windows; covering, 6.8 notes and 69%); jazz walks,
# reggae/afrobeat have their own bass rhythms and keep a lighter pull; latin's tumbao (the
# "and" of 2 and beat 4) is left free: pulled at 0.5 onto the kicks, the classifier heard
# latin in 7 of 20 windows, left free in 20 of 20.
GENRE_STYLES: dict[str, GenreStyle] = {
    "lofi": GenreStyle(1, 0.7),
    "hiphop": GenreStyle(2, 1.0),
    "trap": GenreStyle(2, 1.0),
    "house": GenreStyle(1, 1.0),
    "techno": GenreStyle(1, 1.0),
    "dnb": GenreStyle(2, 1.0),
    "funk": GenreStyle(2, 1.0),
    "rock": GenreStyle(2, 0.0, kick_cover=1.0),
    "jazz": GenreStyle(2, 0.3),
    "pop": GenreStyle(2, 1.0),
    "reggae": GenreStyle(2, 0.7),
    "latin": GenreStyle(2, 0.0),
    "afrobeat": GenreStyle(2, 0.7),
    "soul": GenreStyle(2, 1.0),
    "ambient": GenreStyle(2, 0.3),
}
DEFAULT_STYLE = GenreStyle(2, 0.7)


@dataclass(frozen=True)
class BarSource:
    """Bar `bar` of a track is made from bar `source` of the same track."""

    source: int
    keep_beats: int | None = None  # None: a verbatim repeat; n: a variation keeping n beats

    @property
    def whole(self) -> bool:
        return self.keep_beats is None


def bar_sources(bars: int, period: int | None, cell: int | None = None) -> dict[int, BarSource]:
    """Which bars repeat which (see the module docstring); bars missing are sampled."""
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


@dataclass(frozen=True)
class CompositionPlan:
    """Everything the sampler follows besides the grammar. Ticks are at the grid of the
    tokens (`grid_per_beat` per beat); chords are (start, end, root pc, bass pc, tone pcs)."""

    bars: int
    loop_bars: int | None
    sources: dict[str, dict[int, BarSource]]
    chords: tuple[tuple[int, int, int, int, frozenset[int]], ...] = ()
    kick_lock: float = 0.0
    density: str = "normal"
    kick_cover: float = 0.0

    def bar_map(self, role: str) -> str:
        """What each bar of a role is, for people: 'new ~1 =1 ~2' = bar 1 new, bar 2 a
        variation of bar 1, bar 3 a repeat of bar 1, bar 4 a variation of bar 2."""
        sources = self.sources.get(role, {})
        return " ".join("new" if bar not in sources else f"{'=' if sources[bar].whole else '~'}{sources[bar].source + 1}"
                        for bar in range(self.bars))

    def to_dict(self) -> dict:
        return {
            "loop_bars": self.loop_bars,
            "bars": {role: self.bar_map(role) for role in ROLES},
            "kick_lock": self.kick_lock,
            "kick_cover": self.kick_cover,
            "density": self.density,
        }


def build_plan(
    *,
    genre: str,
    bars: int,
    loop_bars: int | None,
    chord_cycle_bars: int | None = None,
    chords: tuple[tuple[int, int, int, int, frozenset[int]], ...] = (),
    density: str = "normal",
    kick_lock: float | None = None,
    kick_cover: float | None = None,
) -> CompositionPlan:
    """The plan for one piece. Bass and melody repeat at the loop period, stretched to a
    whole number of chord cycles so a repeated bar always sounds over the same chord."""
    style = GENRE_STYLES.get(genre, DEFAULT_STYLE)
    sources: dict[str, dict[int, BarSource]] = {}
    if loop_bars:
        pitched = loop_bars
        if chord_cycle_bars and pitched % chord_cycle_bars:
            pitched = chord_cycle_bars * -(-pitched // chord_cycle_bars)
        for role in ROLES:
            if role == "drums":
                sources[role] = bar_sources(bars, min(style.drum_period_bars, loop_bars), cell=1)
            else:
                sources[role] = bar_sources(bars, pitched)
    lock = style.kick_lock if kick_lock is None else kick_lock
    if kick_cover is None:  # the genre's cover goes with the genre's lock; a lock asked for covers as much
        kick_cover = style.cover if kick_lock is None else lock
    return CompositionPlan(bars, loop_bars, sources, tuple(chords), lock, density, kick_cover)


def plan_for(conditions: Conditions, grid_per_beat: int) -> tuple[CompositionPlan, list[ChordSpan]]:
    """The plan of a piece from its conditions (loop, chords, density, genre) and its chord
    spans in ticks at `TICKS_PER_BEAT`; the plan's chords are on the token grid."""
    progression = progression_of(conditions)
    spans = progression.spans(conditions.bars, TICKS_PER_BEAT) if progression else []
    grid = TICKS_PER_BEAT // grid_per_beat
    plan = build_plan(
        genre=conditions.genre, bars=conditions.bars, loop_bars=conditions.loop or None,
        chord_cycle_bars=progression.cycle_bars if progression else None,
        chords=tuple((span.start // grid, span.end // grid, span.chord.root, span.chord.bass, chord_tones(span.chord))
                     for span in spans),
        density=conditions.density,
    )
    return plan, spans
