"""Feel: swing, micro-timing and velocity accents taken from real drummers.

The composer writes every note on the 1/12-beat token grid with 8 velocity levels, which
sounds like a drum machine with the swing knob at zero. This module holds a groove pool, as
DAWs have: per genre, where real drummers of the Groove MIDI Dataset (GMD) put each drum
group at each position of the bar, how much that placement wanders, and how hard they hit
there relative to their own average. `apply_feel` lays such a template over grid notes
when MIDI and stems are written; `amount=0` with no swing gives the quantized notes back.

Units, chosen by measurement (docs/groove.md): the typical placement of a position is in
fractions of a beat (`offset_beats`), like the swing percentage, so a groove keeps its shape
at any tempo; the random spread around it is in milliseconds (`offset_std_ms`), because a
drummer's onset scatter in GMD stays 11-14 ms from 60 to 200+ bpm while in ticks it more
than doubles (7 -> 16 at 480 per beat). Velocities are ratios to the drummer's mean for
that drum, so the template reshapes the model's dynamics instead of replacing them.

`symbolic/runtime/grooves.json` is built from the GMD train split by `scripts/build_grooves.py`
(with symbolic/recipes/grooves.py)
(Groove MIDI Dataset, Gillick et al. 2019, CC BY 4.0); a user's own drum take becomes a
template with `template_from_midi`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.core.ticks import (
    GRID_PER_BEAT as SLOTS_PER_BEAT,  # 16ths every 3rd slot, triplets every 4th
)
from stemforge.symbolic.core.ticks import STEP_TICKS as SLOT_TICKS
from stemforge.symbolic.core.ticks import (
    TICKS_PER_BEAT as TPB,  # extraction works at 480 per beat, as the corpus
)
from stemforge.symbolic.music import drum_map
from stemforge.symbolic.music.arrangement import Note, Track
from stemforge.symbolic.music.conditions import MAX_SWING_PERCENT
from stemforge.symbolic.music.feel import clamp_velocity, detect_feel, snap
from stemforge.symbolic.music.genres import genre_table

GROOVES_PATH = Path(__file__).resolve().parent / "grooves.json"
GROOVES_FORMAT = 1
SOURCE = "Groove MIDI Dataset, Gillick et al. 2019 (train split, 4/4 beat performances)"
LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/): derived statistics of the GMD"

SLOTS_PER_BAR = SLOTS_PER_BEAT * BEATS_PER_BAR

# Drum groups as a producer reads a groove (GM notes). Cymbals ride with the hats: they
# keep the subdivision. Same split as eval.music_features (which symbolic may not import).
DRUM_GROUPS: tuple[str, ...] = ("kick", "snare", "hat", "other")
_GROUP_OF_PITCH: dict[int, str] = {
    **dict.fromkeys((35, 36), "kick"),
    **dict.fromkeys((37, 38, 39, 40), "snare"),
    **dict.fromkeys((22, 26, 42, 44, 46, 49, 51, 52, 53, 55, 57, 59), "hat"),
}

# A position needs this many hits before its own figures are trusted; rarer positions fall
# back to the same position inside the beat, then to the whole group.
MIN_SLOT_HITS = 24
MIN_PERFORMANCE_HITS = 16
MIN_OWN_HITS = 4  # a drummer's own placement of a drum at a position needs 4+ hits to measure scatter
MIN_SPREAD_HITS = 16
MIN_SWING_HITS = 8  # off-beats a take needs before its swing is measured
# Genres GMD does not name borrow the takes of donor genres (genres as configs/corpus/default.yaml
# gmd_styles maps the GMD styles: "house" = dance/disco, "dnb" = dance/breakbeat): each genre's
# `groove.donors` in the genre table (configs/genres.yaml).
DONORS: dict[str, tuple[str, ...]] = {g.name: g.groove.donors for g in genre_table().genres.values() if g.groove.donors}
# Default swing (DAW percentage: 50 straight, 66.7 triplet) per genre, the genre table's
# `groove.swing`: `default_swing` of the measured GMD swing for the genres GMD plays (tests hold
# them equal to symbolic/runtime/grooves.json), a stated choice for the genres that borrow a donor's
# takes (docs/groove.md).
GENRE_SWING: dict[str, float] = {g.name: g.groove.swing for g in genre_table().genres.values()}


def default_swing(measured_percent: float) -> float:
    """A measured swing as a default: whole percent, and straight (50) below 52, where
    nobody hears swing and the template's own off-beat offsets already carry the lateness."""
    rounded = math.floor(measured_percent + 0.5)
    return float(rounded) if rounded >= 52 else 50.0


SWING_UNITS: dict[str, int] = {"8th": 2, "16th": 4}  # unit -> notes of that unit per beat
SWUNG_SLOT_SHIFT: dict[str, int] = {"8th": 2, "16th": 1}  # slots from the straight off-beat to its triplet slot

# Bass and melody get a light feel: the timing of a drum group of the same genre (the bass
# locks to the kick, the melody rides with the hats), half its spread, velocity humanize only.
PITCHED_FOLLOWS: dict[str, str] = {"bass": "kick", "melody": "hat"}
PITCHED_SPREAD_SCALE = 0.5
PITCHED_VELOCITY_RATIO_STD = 0.05
MAX_Z = 2.5  # random draws are clipped to +-2.5 standard deviations
MAX_SHIFT_BEATS = 1 / 16  # micro-timing never moves a note further than a 64th: beyond is another position
MAX_ACCENT_FACTOR = 1.5  # the accent reshape scales a velocity by 2/3 to 3/2 at most


class GrooveError(UserError):
    """A groove file or template that cannot be used; the message names the file and field."""


# ----------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class SlotFeel:
    """How one drum group is played at one position, from the hits there."""

    hits: int
    offset_beats: float  # median placement from the grid position (+ = late), in beats
    offset_std_ms: float  # robust spread of one drummer's placement there, in ms
    velocity_ratio: float  # median velocity / the drummer's mean velocity for that drum
    velocity_ratio_std: float  # robust spread of that ratio: the humanize

    def to_list(self) -> list[float]:
        return [self.hits, round(self.offset_beats, 4), round(self.offset_std_ms, 2),
                round(self.velocity_ratio, 3), round(self.velocity_ratio_std, 3)]


SLOT_FIELDS: tuple[str, ...] = ("hits", "offset_beats", "offset_std_ms", "velocity_ratio", "velocity_ratio_std")


@dataclass(frozen=True)
class GroupFeel:
    """One drum group of a template: its figures per bar position (1/12-beat slot index
    0-47), per position inside the beat (0-11) and over all its hits."""

    overall: SlotFeel
    by_beat_slot: dict[int, SlotFeel] = field(default_factory=dict)
    by_bar_slot: dict[int, SlotFeel] = field(default_factory=dict)
    velocity_mean: float = 0.0  # absolute mean MIDI velocity, for reading the template

    def at(self, bar_slot: int) -> SlotFeel:
        """The figures of a bar position, falling back to its beat position, then the group."""
        return (self.by_bar_slot.get(bar_slot) or self.by_beat_slot.get(bar_slot % SLOTS_PER_BEAT)
                or self.overall)


@dataclass(frozen=True)
class GrooveTemplate:
    """The feel of one genre (or one user take)."""

    name: str
    swing_unit: str  # "8th" | "16th": the straight off-beats that swing moves late
    swing_percent: float  # measured: position of those off-beats in their pair of notes, %
    groups: dict[str, GroupFeel]
    performances: int = 0
    median_bpm: float = 0.0
    gmd_styles: tuple[str, ...] = ()
    donors: tuple[str, ...] = ()  # genres whose performances a GMD-less genre borrows
    swing_8th_percent: float = 50.0
    swing_16th_percent: float = 50.0

    def slot(self, group: str, bar_slot: int, swung: bool = False) -> SlotFeel:
        """The figures for a note of `group` at `bar_slot`. A swung note takes the figures
        of the drummers' swung notes (the triplet slot its straight slot swings to) when the
        template has them: a swung "and" is accented like one, not like a straight "and"."""
        feel = self.groups.get(group) or self.groups.get("other") or next(iter(self.groups.values()))
        if swung:
            late = bar_slot + SWUNG_SLOT_SHIFT[self.swing_unit]
            found = feel.by_bar_slot.get(late % SLOTS_PER_BAR) or feel.by_beat_slot.get(late % SLOTS_PER_BEAT)
            if found is not None:
                return found
        return feel.at(bar_slot)


@dataclass(frozen=True)
class Performance:
    """A played drum take: (tick at 480 per beat, GM pitch, velocity) hits, bar 1 at tick 0."""

    name: str
    genre: str
    bpm: float
    hits: list[tuple[int, int, int]]
    style: str = ""


def drum_group(pitch: int) -> str:
    return _GROUP_OF_PITCH.get(pitch, "other")


def _robust_std(values: np.ndarray) -> float | None:
    """1.4826 x median absolute deviation of the known (not NaN) values: the standard
    deviation of the bulk, so a flam or a hit snapped to the wrong slot does not inflate it.
    None when fewer than MIN_SPREAD_HITS values are known."""
    known = values[~np.isnan(values)]
    if len(known) < MIN_SPREAD_HITS:
        return None
    return float(1.4826 * np.median(np.abs(known - np.median(known))))


def _index_groups(keys: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the elements sharing a key, in key order."""
    order = np.argsort(keys, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(keys[order])) + 1) if len(keys) else []


def _minus_group_median(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value minus the median of its group (equal keys); NaN where the group has fewer
    than MIN_OWN_HITS known values: a lone hit's deviation from itself says nothing."""
    out = np.full_like(values, np.nan)
    for indices in _index_groups(keys):
        known = values[indices][~np.isnan(values[indices])]
        if len(known) >= MIN_OWN_HITS:
            out[indices] = values[indices] - np.median(known)
    return out


@dataclass(frozen=True)
class _Hits:
    """Aligned hits as columns (one take, or many concatenated)."""

    group: np.ndarray  # index into DRUM_GROUPS
    bar_slot: np.ndarray  # 1/12-beat slot of the grid position the hit belongs to, 0-47
    offset_beats: np.ndarray  # played minus grid position, the drummer's lead/lag on the click removed
    jitter_ms: np.ndarray  # the same, minus the drummer's own placement there and their drift per bar
    velocity: np.ndarray
    velocity_ratio: np.ndarray  # velocity / the drummer's mean for that drum
    ratio_jitter: np.ndarray  # the same, minus the drummer's own median there

    def take(self, indices: np.ndarray) -> _Hits:
        return _Hits(*(column[indices] for column in astuple(self)))

    @staticmethod
    def concat(parts: Sequence[_Hits]) -> _Hits:
        return _Hits(*(np.concatenate(columns) for columns in zip(*(astuple(p) for p in parts))))


@dataclass(frozen=True)
class _Take:
    hits: _Hits
    swing_8th: float | None  # median position of the off-beat 8ths in their pair, %
    swing_16th: float | None  # median position of the off-beat 16ths in their pair, %


def _align(performance: Performance) -> _Take:
    """Snap each hit to the grid its drummer plays on (straight 16ths, triplets or swung
    16ths, as the corpus builder detects it) and measure how far off it was played. The
    drummer's steady lead or lag on the click is removed (the median offset of the hits on a
    beat), so offsets say where a position sits relative to the drummer's own beat. The
    spread is onset-to-onset scatter: `apply_feel` draws each onset on its own, so the
    drummer's placement of that drum there and their slow drift per bar are taken out."""
    ticks = np.array([tick for tick, _, _ in performance.hits])
    pitches = np.array([pitch for _, pitch, _ in performance.hits])
    velocities = np.array([velocity for _, _, velocity in performance.hits], dtype=float)
    feel, shift = detect_feel(list(ticks))
    snapped = np.array([snap(int(tick) + shift, feel) for tick in ticks])
    offsets = (ticks + shift - snapped).astype(float)
    on_beat = snapped % TPB == 0
    offsets -= float(np.median(offsets[on_beat])) if on_beat.any() else 0.0
    keep = snapped >= 0
    pitches, velocities, snapped, offsets = (a[keep] for a in (pitches, velocities, snapped, offsets))
    bar_slots = (snapped % (TPB * BEATS_PER_BAR)) // SLOT_TICKS
    drum_slot = pitches * SLOTS_PER_BAR + bar_slots
    ratios = velocities.copy()
    for indices in _index_groups(pitches):
        ratios[indices] /= max(1.0, float(velocities[indices].mean()))
    residual = _minus_group_median(drum_slot, offsets)
    jitter = _minus_group_median(snapped // (TPB * BEATS_PER_BAR), residual)

    def take_median(positions: list[float]) -> float | None:
        return float(np.median(positions)) if len(positions) >= MIN_SWING_HITS else None

    in_beat = snapped % TPB
    played = snapped + offsets
    and_slot = 320 if feel == "triplet" else 240
    swing_8th = [100 * (played[i] - snapped[i] + in_beat[i]) / TPB for i in np.flatnonzero(in_beat == and_slot)]
    swing_16th = [] if feel == "triplet" else [
        100 * (played[i] - snapped[i] + in_beat[i] % (TPB // 2)) / (TPB // 2)
        for i in np.flatnonzero(np.isin(in_beat, (120, 360, 160, 400)))]
    hits = _Hits(
        group=np.array([DRUM_GROUPS.index(drum_group(int(p))) for p in pitches], dtype=int),
        bar_slot=bar_slots, offset_beats=offsets / TPB, jitter_ms=jitter / TPB * 60000.0 / performance.bpm,
        velocity=velocities, velocity_ratio=ratios, ratio_jitter=_minus_group_median(drum_slot, ratios),
    )
    return _Take(hits, take_median(swing_8th), take_median(swing_16th))


def _slot_feel(hits: _Hits, fallback: SlotFeel | None = None) -> SlotFeel:
    """Figures of a set of hits; spreads it cannot measure come from `fallback`."""
    timing = _robust_std(hits.jitter_ms)
    velocity = _robust_std(hits.ratio_jitter)
    return SlotFeel(
        hits=len(hits.group),
        offset_beats=float(np.median(hits.offset_beats)),
        offset_std_ms=timing if timing is not None else (fallback.offset_std_ms if fallback else 0.0),
        velocity_ratio=float(np.median(hits.velocity_ratio)),
        velocity_ratio_std=velocity if velocity is not None else (fallback.velocity_ratio_std if fallback else 0.0),
    )


def _slot_table(hits: _Hits, keys: np.ndarray, fallback: SlotFeel) -> dict[int, SlotFeel]:
    """Figures per key (a slot number), for the keys with enough hits to trust."""
    return {int(keys[ix[0]]): _slot_feel(hits.take(ix), fallback)
            for ix in _index_groups(keys) if len(ix) >= MIN_SLOT_HITS}


def template_from_performances(name: str, performances: Sequence[Performance],
                               donors: Sequence[str] = ()) -> GrooveTemplate:
    """The groove template of a set of drum takes (one genre, its donors, or one user take).
    Swing is measured per take and the genre gets the median take: a genre's takes are
    either straight or swung (GMD jazz: 18 near 50%, 20 at 63-77%), and pooling their hits
    would describe neither."""
    usable = [p for p in performances if len(p.hits) >= MIN_PERFORMANCE_HITS]
    if not usable:
        raise GrooveError(f"groove {name!r}: no drum take with {MIN_PERFORMANCE_HITS}+ hits to learn a feel from")
    takes = [_align(p) for p in usable]
    hits = _Hits.concat([t.hits for t in takes])
    groups: dict[str, GroupFeel] = {}
    for indices in _index_groups(hits.group):
        in_group = hits.take(indices)
        overall = _slot_feel(in_group)
        groups[DRUM_GROUPS[in_group.group[0]]] = GroupFeel(
            overall=overall,
            by_beat_slot=_slot_table(in_group, in_group.bar_slot % SLOTS_PER_BEAT, overall),
            by_bar_slot=_slot_table(in_group, in_group.bar_slot, overall),
            velocity_mean=float(in_group.velocity.mean()),
        )
    swing = {}
    for unit, column in (("8th", "swing_8th"), ("16th", "swing_16th")):
        measured = [getattr(t, column) for t in takes if getattr(t, column) is not None]
        swing[unit] = float(np.median(measured)) if measured else 50.0
    unit = "8th" if abs(swing["8th"] - 50) >= abs(swing["16th"] - 50) else "16th"
    return GrooveTemplate(
        name=name, swing_unit=unit, swing_percent=swing[unit],
        groups=groups, performances=len(usable), median_bpm=float(np.median([p.bpm for p in usable])),
        gmd_styles=tuple(sorted({p.style for p in usable if p.style})), donors=tuple(donors),
        swing_8th_percent=swing["8th"], swing_16th_percent=swing["16th"],
    )


def template_from_midi(path: Path, name: str | None = None) -> GrooveTemplate:
    """A template from one drum performance (any tempo, General MIDI drums, bar 1 at the
    start of the file): what `--groove my_take.mid` uses."""
    import symusic

    path = Path(path)
    try:
        score = symusic.Score(str(path))
    except Exception as error:  # symusic raises plain RuntimeError on bad bytes
        raise GrooveError(f"{path}: not a readable MIDI file ({error})") from error
    bpm = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    score = score.resample(TPB, min_dur=1)
    tracks = [t for t in score.tracks if t.is_drum] or list(score.tracks)
    pitches = {n.pitch for t in tracks for n in t.notes}
    table = drum_map.folded_table(drum_map.kit_of(pitches), pitches)  # the one drum map, folded
    hits = drum_map.map_drums([(n.time, n.pitch, n.velocity) for t in tracks for n in t.notes], table, keep_gm=False)
    performance = Performance(path.stem, name or path.stem, bpm, sorted(hits))
    try:
        return template_from_performances(name or path.stem, [performance])
    except GrooveError as error:
        raise GrooveError(f"{path}: {error}") from error


# ----------------------------------------------------------------------------- the JSON file


def _template_json(template: GrooveTemplate) -> dict:
    def slots(table: dict[int, SlotFeel]) -> dict[str, list[float]]:
        return {str(slot): feel.to_list() for slot, feel in sorted(table.items())}

    return {
        "gmd_styles": list(template.gmd_styles), "donors": list(template.donors),
        "performances": template.performances, "median_bpm": round(template.median_bpm, 1),
        "swing_unit": template.swing_unit, "swing_percent": round(template.swing_percent, 1),
        "swing_8th_percent": round(template.swing_8th_percent, 1),
        "swing_16th_percent": round(template.swing_16th_percent, 1),
        "groups": {group: {"velocity_mean": round(feel.velocity_mean, 1), "overall": feel.overall.to_list(),
                           "by_beat_slot": slots(feel.by_beat_slot), "by_bar_slot": slots(feel.by_bar_slot)}
                   for group, feel in template.groups.items()},
    }


def _slot_from_json(values: object, where: str) -> SlotFeel:
    if not isinstance(values, list) or len(values) != len(SLOT_FIELDS) or not all(
            isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise GrooveError(f"{where}: expected [{', '.join(SLOT_FIELDS)}] as {len(SLOT_FIELDS)} numbers")
    hits, offset, spread, ratio, ratio_std = values
    if spread < 0 or ratio <= 0 or ratio_std < 0:
        raise GrooveError(f"{where}: spreads must be >= 0 and velocity_ratio > 0")
    return SlotFeel(int(hits), float(offset), float(spread), float(ratio), float(ratio_std))


def _template_from_json(name: str, data: object, where: str) -> GrooveTemplate:
    if not isinstance(data, dict):
        raise GrooveError(f"{where}: a template is a mapping")
    try:
        unit, swing, groups = data["swing_unit"], float(data["swing_percent"]), data["groups"]
    except (KeyError, TypeError, ValueError) as error:
        raise GrooveError(f"{where}: needs swing_unit, swing_percent and groups ({error!r})") from error
    if unit not in SWING_UNITS:
        raise GrooveError(f"{where}.swing_unit: {unit!r} is not one of {', '.join(SWING_UNITS)}")
    if not isinstance(groups, dict) or not groups or not set(groups) <= set(DRUM_GROUPS):
        raise GrooveError(f"{where}.groups: a mapping of {', '.join(DRUM_GROUPS)}")
    feels = {}
    for group, entry in groups.items():
        at = f"{where}.groups.{group}"
        if not isinstance(entry, dict) or "overall" not in entry:
            raise GrooveError(f"{at}: needs 'overall'")
        tables = []
        for table_name, size in (("by_beat_slot", SLOTS_PER_BEAT), ("by_bar_slot", SLOTS_PER_BAR)):
            table = entry.get(table_name, {})
            if not isinstance(table, dict) or any(not k.isdigit() or int(k) >= size for k in table):
                raise GrooveError(f"{at}.{table_name}: keys are slot numbers 0-{size - 1}")
            tables.append({int(k): _slot_from_json(v, f"{at}.{table_name}.{k}") for k, v in table.items()})
        feels[group] = GroupFeel(_slot_from_json(entry["overall"], f"{at}.overall"), tables[0], tables[1],
                                 float(entry.get("velocity_mean", 0.0)))
    return GrooveTemplate(
        name=name, swing_unit=unit, swing_percent=swing, groups=feels,
        performances=int(data.get("performances", 0)), median_bpm=float(data.get("median_bpm", 0.0)),
        gmd_styles=tuple(data.get("gmd_styles", ())), donors=tuple(data.get("donors", ())),
        swing_8th_percent=float(data.get("swing_8th_percent", 50.0)),
        swing_16th_percent=float(data.get("swing_16th_percent", 50.0)),
    )


@dataclass(frozen=True)
class GroovePool:
    """The shipped groove templates, one per genre."""

    templates: dict[str, GrooveTemplate]
    source: str = SOURCE
    licence: str = LICENCE

    def template(self, genre: str) -> GrooveTemplate:
        if genre not in self.templates:
            raise GrooveError(f"groove pool: no template for genre {genre!r} "
                              f"(has {', '.join(sorted(self.templates))})")
        return self.templates[genre]

    def to_json(self) -> str:
        """Deterministic text: same templates, same bytes."""
        data = {
            "format": GROOVES_FORMAT, "source": self.source, "licence": self.licence,
            "built_by": "scripts/build_grooves.py",
            "slot_fields": list(SLOT_FIELDS),
            "units": {
                "offset_beats": "median placement from the grid position, beats (+ = late)",
                "offset_std_ms": "robust spread of one drummer's placement at the position, ms",
                "velocity_ratio": "median velocity / the drummer's mean velocity for the drum group",
                "slots": "1/12-beat slot index: by_bar_slot 0-47, by_beat_slot 0-11",
                "swing_percent": "where the swung off-beats sit in their pair of notes: 50 straight, 66.7 triplet",
            },
            "templates": {name: _template_json(t) for name, t in sorted(self.templates.items())},
        }
        text = json.dumps(data, sort_keys=True, indent=1)
        # one line per slot's numbers: a readable file a third the size
        return re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: Path = GROOVES_PATH) -> GroovePool:
        """Read a groove pool; any missing or malformed field is a GrooveError naming the
        file and the field."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise GrooveError(f"{path}: cannot read the groove pool ({error})") from error
        if not isinstance(data, dict) or data.get("format") != GROOVES_FORMAT:
            raise GrooveError(f"{path}: format: expected {GROOVES_FORMAT} (rebuild with scripts/build_grooves.py)")
        templates = data.get("templates")
        if not isinstance(templates, dict) or not templates:
            raise GrooveError(f"{path}: templates: a non-empty mapping of genre -> template")
        return cls({name: _template_from_json(name, t, f"{path}: templates.{name}") for name, t in templates.items()},
                   str(data.get("source", "")), str(data.get("licence", "")))


@functools.cache
def default_pool() -> GroovePool:
    """The shipped pool, read once per process."""
    return GroovePool.load(GROOVES_PATH)


# ----------------------------------------------------------------------------- application


def _unit_ticks(template: GrooveTemplate, ticks_per_beat: int) -> int:
    return ticks_per_beat // SWING_UNITS[template.swing_unit]


def _swing_tick(tick: int, unit_ticks: int, swing_percent: float | None) -> int:
    """A straight off-beat of the swing unit moved late to `swing_percent` of its pair;
    every other tick (on-beats, triplets, other subdivisions) stays."""
    if swing_percent is None or tick % (2 * unit_ticks) != unit_ticks:
        return tick
    return tick - unit_ticks + round(2 * unit_ticks * swing_percent / 100)


def _draw(*key: object) -> float:
    """A standard normal draw fixed by `key` (seed, what, where), clipped to +-MAX_Z: each
    note's feel depends only on the seed and that note, not on the other notes. A hash and
    Box-Muller, ten times faster than seeding a random.Random per note."""
    digest = hashlib.blake2b(":".join(map(str, key)).encode(), digest_size=16).digest()
    u1 = (int.from_bytes(digest[:8], "big") + 1) / 2.0**64  # (0, 1]
    u2 = int.from_bytes(digest[8:], "big") / 2.0**64
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return max(-MAX_Z, min(MAX_Z, z))


def apply_feel(
    tracks: dict[str, Track],
    template: GrooveTemplate,
    *,
    swing_percent: float | None,
    amount: float = 1.0,
    seed: int,
    total_ticks: int,
    bpm: float,
    ticks_per_beat: int = TICKS_PER_BEAT,
) -> dict[str, Track]:
    """Grid notes with a human feel: swing, micro-timing and velocity from `template`.

    - swing: the straight off-beat 8ths or 16ths (the template's `swing_unit`) start late
      at `swing_percent` (50 or None = straight), and pitched notes ending on one end late;
      notes already on triplet or other positions stay where they are.
    - micro-timing: each note moves by its drum group's typical offset at that bar position
      plus a random spread (one draw per tick, shared by every note struck together, so a
      kick and hat on a beat stay together and the bass moves with the kick); a swung note
      takes only the spread, its placement being the swing. Bass follows the kick's timing,
      melody the hats', at half the spread.
    - velocity: each drum takes the template's accent pattern (relative to the accents it
      already has, its overall level kept); every note is humanized by a seeded random ratio.
    `amount` (0-1) scales micro-timing and velocity; amount 0 with no swing returns the notes
    unchanged (--quantize). Guarantees: same seed, same notes; bar 1 beat 1 stays at tick
    0; every note starts in [0, total_ticks) and ends by total_ticks with duration > 0;
    same-pitch notes of a track never overlap or share a tick (the earlier is shortened;
    exact duplicates on the grid are merged, the loudest kept); drum pitches are kept.
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"feel amount {amount} must be between 0 and 1")
    if swing_percent is not None and not 50.0 <= swing_percent <= MAX_SWING_PERCENT:
        raise GrooveError(f"swing {swing_percent}% must be between 50 (straight) and {MAX_SWING_PERCENT:g}")
    if bpm <= 0 or ticks_per_beat % SLOTS_PER_BEAT:
        raise ValueError("bpm must be > 0 and ticks_per_beat a multiple of 12")
    for track in tracks.values():
        if any(not 0 <= n.start < total_ticks or n.duration <= 0 for n in track.notes):
            raise ValueError(f"{track.role}: notes must start in [0, {total_ticks}) with duration > 0")
    swing = None if swing_percent is None or swing_percent == 50.0 else swing_percent
    if amount == 0.0 and swing is None:
        return {role: Track(t.role, t.program, t.is_drum, list(t.notes)) for role, t in tracks.items()}
    return {role: Track(t.role, t.program, t.is_drum,
                        _feel_track(t, role, template, swing, amount, seed, total_ticks, bpm, ticks_per_beat))
            for role, t in tracks.items()}


def _accent_factors(notes: list[Note], positions: list[int], slots: list[SlotFeel]) -> list[float]:
    """Velocity factors that give one drum's notes the template's accent pattern while
    keeping its overall level: the template's ratio at each position over the ratio these
    notes already have there (the model learned accents too; multiplying the template on
    top would count them twice), bounded, then normalized to a mean of 1."""
    mean_velocity = sum(n.velocity for n in notes) / len(notes)
    at_position: dict[int, list[int]] = defaultdict(list)
    for note, position in zip(notes, positions):
        at_position[position].append(note.velocity)
    raw = []
    for position, slot in zip(positions, slots):
        present = sum(at_position[position]) / len(at_position[position]) / mean_velocity
        raw.append(min(MAX_ACCENT_FACTOR, max(1 / MAX_ACCENT_FACTOR, slot.velocity_ratio / present)))
    mean_raw = sum(raw) / len(raw)
    return [factor / mean_raw for factor in raw]


def _feel_track(track: Track, role: str, template: GrooveTemplate, swing: float | None, amount: float,
                seed: int, total_ticks: int, bpm: float, ticks_per_beat: int) -> list[Note]:
    unit = _unit_ticks(template, ticks_per_beat)
    ticks_per_ms = ticks_per_beat * bpm / 60000.0
    max_shift = ticks_per_beat * MAX_SHIFT_BEATS
    slot_ticks = ticks_per_beat // SLOTS_PER_BEAT
    by_pitch: dict[int, dict[int, Note]] = defaultdict(dict)
    for note in track.notes:  # duplicates on the grid: keep the loudest
        kept = by_pitch[note.pitch].get(note.start)
        if kept is None or note.velocity > kept.velocity:
            by_pitch[note.pitch][note.start] = note
    out: list[Note] = []
    for pitch, by_start in sorted(by_pitch.items()):
        notes = [by_start[start] for start in sorted(by_start)]
        group = drum_group(pitch) if track.is_drum else PITCHED_FOLLOWS.get(role, "hat")
        swung_starts = [_swing_tick(n.start, unit, swing) for n in notes]
        positions = [round(n.start / slot_ticks) % SLOTS_PER_BAR for n in notes]
        slots = [template.slot(group, position, moved != n.start)
                 for n, position, moved in zip(notes, positions, swung_starts)]
        accents = _accent_factors(notes, positions, slots) if track.is_drum else [1.0] * len(notes)
        placed: list[tuple[int, int, int]] = []  # (start, end, velocity), in grid order
        for note, slot, accent, swung_start in zip(notes, slots, accents, swung_starts):
            # a drum is a one-shot and keeps its length; a pitched note ending on a swung
            # off-beat ends there swung, so legato lines stay legato
            end = note.start + note.duration
            swung_end = swung_start + note.duration if track.is_drum else _swing_tick(end, unit, swing)
            spread_ms = slot.offset_std_ms * (1.0 if track.is_drum else PITCHED_SPREAD_SCALE)
            placement = 0.0 if swung_start != note.start else slot.offset_beats * ticks_per_beat
            shift = amount * (placement + spread_ms * ticks_per_ms * _draw(seed, "time", note.start))
            shift = 0 if note.start == 0 else round(max(-max_shift, min(max_shift, shift)))
            humanize = slot.velocity_ratio_std if track.is_drum else PITCHED_VELOCITY_RATIO_STD
            velocity = note.velocity * accent**amount * (1 + amount * humanize * _draw(seed, role, note.start, pitch))
            start = max(0, swung_start + shift)
            placed.append((start, max(start + 1, swung_end + shift), clamp_velocity(velocity)))
        out += _untangle(pitch, placed, total_ticks)
    return sorted(out)


def _untangle(pitch: int, placed: list[tuple[int, int, int]], total_ticks: int) -> list[Note]:
    """Same-pitch notes in their grid order: starts kept strictly increasing and inside
    [0, total_ticks), each note ending by the next one's start and by total_ticks."""
    starts = [start for start, _, _ in placed]
    for index in range(1, len(starts)):
        starts[index] = max(starts[index], starts[index - 1] + 1)
    for index in range(len(starts) - 1, -1, -1):
        limit = starts[index + 1] - 1 if index + 1 < len(starts) else total_ticks - 1
        starts[index] = max(0, min(starts[index], limit))
    notes = []
    for index, (start, (_, end, velocity)) in enumerate(zip(starts, placed)):
        limit = starts[index + 1] if index + 1 < len(starts) else total_ticks
        notes.append(Note(start, max(1, min(end, limit) - start), pitch, velocity))
    return notes
