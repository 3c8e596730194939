"""Real music to hold generated pieces against: the "real" columns of `bench/quality.py`.

Reference sets from the shared data folder (`../shared/data` beside the repository; every
loader takes another root), each cut into excerpts of 8 bars like a default generated piece
(16 bars for the figures of 16-bar pieces), as plain notes per role at 480 ticks per beat
with bar 1 at tick 0:

- `gmd` / `gmd_all`: the Groove MIDI Dataset's 4/4 "beat" performances, drums only, as played:
  raw velocities and raw micro-timing (only moved by the drummer's constant offset from the
  click, so bar lines fall where the drummer heard them), TD-11 notes mapped to General MIDI;
  `RealPiece.snapped()` gives the grid-snapped version. `gmd` is the validation split (the
  reference issue 10 and 26 quote), `gmd_all` both splits (train + validation: per style,
  the validation split alone holds one hip-hop and no soul or reggae performance; the default
  corpus trained on both splits, so neither is held out from the model). Genre from the
  style, mapped as the default corpus maps it.
- `pop909` / `pop909_16`: POP909 melodies with their annotated chords and key; the bass is the
  lowest PIANO note of each onset in the bass register (POP909 has no bass track).
- `freedoom`: the Freedoom multitrack songs' bass and melody lines (and drums where the song
  has a kit part), as the corpus loader quantizes them; no key (not annotated).
- `wjd` / `wjd_16`: Weimar Jazz Database solos (`eval/wjd.py`): the solo line as the melody,
  the estimated bass pitch of every beat as the bass, the chord of every beat, the solo's key.
- `billboard`: McGill Billboard chords per bar (`eval/billboard.py`), no notes; the genre is
  the artist's style (`ARTIST_STYLES`: soul, rnb, funk, disco, rock, pop, hiphop).

`GENRE_SOURCES` says which set answers which figure for which genre (GMD hip-hop for lofi,
WJD for jazz lines, Billboard soul for soul chords...), `FIGURE_SOURCES` which set answers it
over all genres. The GMD, POP909 and Freedoom loaders reuse `symbolic/recipes/corpus.py` (the code
that built the default model's corpus from the same files), so "real" and "training" read the
data the same way. Nothing is cached or written. A missing folder raises `RealDataMissing`,
naming it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from stemforge.eval.billboard import bar_chord_spans, read_billboard
from stemforge.eval.music_features import (
    STYLE_FIGURES,
    Share,
    Stat,
    all_figures,
    grid_step,
    line,
    phrase_end_variations,
    snap_notes,
)
from stemforge.eval.wjd import read_wjd, solo_bass, solo_chords, solo_notes
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.genres import genre_table
from stemforge.symbolic.music.keys import Key
from stemforge.symbolic.recipes import corpus_rules as rules
from stemforge.symbolic.recipes.corpus import (
    CorpusConfig,
    cut_excerpt,
    gmd_genre,
    good_drum_bars,
    load_freedoom,
    load_pop909,
    read_gmd_hits,
    read_gmd_info,
)

TICKS_PER_BAR = TICKS_PER_BEAT * BEATS_PER_BAR
EXCERPT_BARS = 8  # the default piece length of `pipeline run`
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "corpus" / "default.yaml"
LONG_EXCERPT_BARS = 16  # the "16 bars" figures: a default long piece
DATASETS: dict[str, str] = {
    "gmd": "GMD validation drums (played: raw timing and velocities)",
    "gmd_all": "GMD drums, train + validation splits (played)",
    "pop909": "POP909 melodies, chords and keys (bass: lowest piano notes)",
    "pop909_16": "POP909 melodies, 16-bar excerpts",
    "pop909_rests": "POP909 melodies with the bars where they rest",
    "freedoom": "Freedoom bass and melody lines (+ drums)",
    "wjd": "WJD jazz solos (bass: estimated pitch per beat)",
    "wjd_16": "WJD solo lines, 16-bar excerpts",
    "billboard": "Billboard chords (style by artist)",
}
# Which reference set answers each figure over all genres: the one that holds that part as
# people made it.
FIGURE_SOURCES: dict[str, str] = {
    **{name: "pop909" for name in (
        "melody_self_similarity", "melody_self_similarity_lag1", "melody_self_similarity_lag2",
        "melody_self_similarity_lag4", "melody_bars_repeated", "melody_repeats", "melody_steps", "melody_leaps",
        "melody_notes_per_bar", "melody_overlaps", "melody_overlap_pieces", "key_found", "key_found_minor",
        "in_scale", "bass_roots_on_downbeats", "melody_chord_tones", "melody_repeat_lag4",
        "melody_similarity4_median", "melody_similar4_pieces", "melody_distinct_pitches", "melody_range",
        "melody_median_pitch", "melody_same_downbeat_pieces", "melody_high_point_phrases",
        "chords_per_4_bars", "one_chord_pieces", "bass_tonic_downbeats", "chord_scale_notes", "out_of_key_clashes",
        "altered_notes_followed",
        "strong_beat_clashes")},
    **{name: "pop909_16" for name in ("melody16_copied_bars", "melody16_repeat_lag8")},
    "melody_rest_bars": "pop909_rests",
    **{name: "freedoom" for name in (
        "bass_self_similarity_lag4", "bass_repeats", "bass_steps", "bass_leaps", "bass_notes_per_bar",
        "bass_overlaps", "bass_overlap_pieces", "bass_on_kick", "kicks_covered", "bass_distinct_pitches",
        "bass_few_pitch_pieces")},
    **{name: "gmd" for name in (
        "kick_snare_kept", "drum_swing", "drum_velocities_per_8_bars", "drums_notes_per_bar",
        "drum_duplicate_hits", "drum_duplicate_pieces", "snare_on_beat3", "hihat_roll_bars", "backbeat_bars",
        "half_time_bars", "kickless_pieces", "offbeat_8ths_swung", "swing_phase", "phrase_end_variations_4",
        "phrase_end_variations_8")},
}
# The part of the music each style figure reads: a genre's real column comes from the set that
# holds that part in that genre (GENRE_SOURCES).
FIGURE_PARTS: dict[str, str] = {
    **{name: "drums" for name in ("backbeat_bars", "half_time_bars", "kickless_pieces", "offbeat_8ths_swung",
                                  "swing_phase", "phrase_end_variations_4", "phrase_end_variations_8",
                                  "kick_snare_kept", "drum_swing", "drum_velocities_per_8_bars",
                                  "drums_notes_per_bar", "snare_on_beat3", "hihat_roll_bars")},
    **{name: "melody" for name in STYLE_FIGURES if name.startswith("melody_")},
    **{name: "melody" for name in ("melody_self_similarity", "melody_bars_repeated", "melody_repeats",
                                   "melody_steps", "melody_leaps", "melody_notes_per_bar")},
    **{name: "melody16" for name in ("melody16_copied_bars", "melody16_repeat_lag8")},
    "melody_rest_bars": "rests",  # the corpus's cuts of POP909 and Freedoom keep only bars with a melody
    **{name: "bass" for name in ("bass_distinct_pitches", "bass_few_pitch_pieces", "bass_self_similarity_lag4",
                                 "bass_repeats", "bass_steps", "bass_leaps", "bass_notes_per_bar", "bass_on_kick",
                                 "kicks_covered")},
    **{name: "chords" for name in ("chords_per_4_bars", "one_chord_pieces")},
    **{name: "harmony" for name in ("bass_tonic_downbeats", "chord_scale_notes", "out_of_key_clashes",
                                    "altered_notes_followed",
                                    "strong_beat_clashes", "key_found", "in_scale", "bass_roots_on_downbeats",
                                    "melody_chord_tones")},
}
# Where each genre's real music is: its `reference` in the genre table (configs/genres.yaml).
_REFERENCES = {g.name: g.reference for g in genre_table().genres.values() if g.reference}
# GMD style label (as the corpus maps styles to genres) whose grooves are a genre's real drums:
# boom-bap hip-hop for lofi (its drums are slowed, swung hip-hop).
GMD_GENRE_OF: dict[str, str] = {g: r.gmd_drums for g, r in _REFERENCES.items() if r.gmd_drums}
# genre -> {part: (set, the set's genre labels)}: where a genre's real column comes from.
_LINES: dict[str, tuple[str, tuple[str, ...]]] = {g: (r.lines, (g,)) for g, r in _REFERENCES.items() if r.lines}
# The line sets that hold more than lines: 16-bar melodies, rests, chords and harmony of the same pieces.
_LINE_SET_PARTS: dict[str, dict[str, str]] = {
    "pop909": {"melody16": "pop909_16", "rests": "pop909_rests", "chords": "pop909", "harmony": "pop909"},
    "wjd": {"melody16": "wjd_16", "rests": "wjd", "chords": "wjd", "harmony": "wjd"},
}


def _from_lines(part: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {g: (_LINE_SET_PARTS[source][part], labels) for g, (source, labels) in _LINES.items()
            if source in _LINE_SET_PARTS}


GENRE_SOURCES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "drums": {genre: ("gmd_all", (label,)) for genre, label in GMD_GENRE_OF.items()},
    "melody": _LINES,
    "bass": _LINES,
    "melody16": _from_lines("melody16"),
    "rests": _from_lines("rests"),
    "chords": {**_from_lines("chords"), **{g: ("billboard", r.billboard_chords) for g, r in _REFERENCES.items()
                                           if r.billboard_chords}},
    "harmony": _from_lines("harmony"),
}


def genre_source(figure: str, genre: str) -> tuple[str, tuple[str, ...]] | None:
    """(set, genre labels of its pieces) holding the real counterpart of `figure` in `genre`;
    None when no set has that part in that genre."""
    return GENRE_SOURCES.get(FIGURE_PARTS.get(figure, ""), {}).get(genre)


class RealDataMissing(FileNotFoundError):
    """A reference set's folder is not on this machine; the message names it."""


@dataclass
class RealPiece:
    """One excerpt of real music: notes per role (only the parts the set has), what it is."""

    dataset: str  # a name of DATASETS
    source: str  # the file or song and the excerpt's bars
    genre: str | None
    bars: int
    tracks: dict[str, list[Note]]
    key: Key | None = None
    chords: list[rules.ChordSpan] = field(default_factory=list)
    split: str = ""  # GMD: train | validation

    def snapped(self) -> dict[str, list[Note]]:
        """The tracks with onsets on the 1/12-beat grid (velocities kept)."""
        return {role: snap_notes(notes, TICKS_PER_BEAT) for role, notes in self.tracks.items()}

    @cached_property
    def figures(self) -> dict[str, Stat]:
        """`all_figures` of the excerpt (computed once)."""
        return all_figures(self.tracks, self.bars, TICKS_PER_BEAT, self.key, self.chords or None)


def _folder(root: Path, name: str) -> Path:
    folder = Path(root) / name
    if not folder.is_dir():
        raise RealDataMissing(f"{folder}: not on this machine (see ../shared/data/README.md)")
    return folder


def excerpt_starts(good_bars: list[bool], bars: int) -> list[int]:
    """Start bars of non-overlapping runs of `bars` usable bars, earliest first."""
    starts, start = [], 0
    while start + bars <= len(good_bars):
        if all(good_bars[start:start + bars]):
            starts.append(start)
            start += bars
        else:
            start += 1
    return starts


def cut(notes: Iterable[Note], start_bar: int, bars: int) -> list[Note]:
    """The notes whose snapped onset lies in the `bars` bars from `start_bar`, moved to start
    at tick 0 (an onset a few ticks before the first downbeat is put on it) and cut at the
    excerpt's end."""
    lo, hi = start_bar * TICKS_PER_BAR, (start_bar + bars) * TICKS_PER_BAR
    step_lo, step_hi = grid_step(lo, TICKS_PER_BEAT), grid_step(hi, TICKS_PER_BEAT)
    out = []
    for n in notes:
        if step_lo <= grid_step(n.start, TICKS_PER_BEAT) < step_hi:
            start = max(0, n.start - lo)
            out.append(Note(start, max(1, min(n.duration, hi - lo - start)), n.pitch, n.velocity))
    return sorted(out)


def played_performance(folder: Path, row: dict[str, str]) -> tuple[list[Note], list[bool]] | None:
    """A GMD performance (a row of info.csv) as played, moved by the drummer's constant offset
    from the click, and which of its bars are a played groove (as the corpus judges them);
    None when it is unreadable or empty."""
    hits = read_gmd_hits(folder / row["midi_filename"])
    if not hits:
        return None
    feel, offset = rules.detect_feel([t for t, _, _ in hits])
    played = [Note(max(0, t + offset), rules.DRUM_TICKS, p, v) for t, p, v in hits]
    return played, good_drum_bars(rules.quantize_hits(hits, feel, max(t for t, _, _ in hits) + TICKS_PER_BEAT, offset))


def gmd_beats(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS, max_files: int | None = None,
              styles: dict[str, str] | None = None, splits: tuple[str, ...] = ("train", "validation")) -> list[RealPiece]:
    """Excerpts of `bars` bars of the GMD 4/4 "beat" performances of `splits` (bars where the
    drummer plays a groove, as the corpus judges them), drums as played; at most `max_files`
    performances of each split."""
    folder = _folder(root, "gmd")
    styles = CorpusConfig.load(CORPUS_CONFIG).gmd_styles if styles is None else styles
    rows = [r for split in splits for r in [r for r in read_gmd_info(folder) if r["split"] == split
                                            and r["beat_type"] == "beat" and r["time_signature"] == "4-4"][:max_files]]
    pieces = []
    for row in rows:
        performance = played_performance(folder, row)
        if performance is None:
            continue
        played, good = performance
        for start in excerpt_starts(good, bars):
            pieces.append(RealPiece("gmd", f"gmd:{row['id']} bars {start + 1}-{start + bars}",
                                    gmd_genre(row["style"], styles), bars, {"drums": cut(played, start, bars)},
                                    split=row["split"]))
    return pieces


def gmd_validation(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS, max_files: int | None = None,
                   styles: dict[str, str] | None = None) -> list[RealPiece]:
    """`gmd_beats` of the validation split only."""
    return gmd_beats(root, bars, max_files, styles, ("validation",))


def pop909_excerpts(songs: list, bars: int, rests: bool = False) -> list[RealPiece]:
    """Excerpts of `bars` bars of POP909 songs (`symbolic.recipes.corpus.load_pop909`): the melody, the
    lowest piano note of each onset in the bass register as the bass, the annotated chords,
    and the annotated key (the one sounding in the excerpt). Bars as the corpus takes them
    (two or more melody onsets and a chord), or with `rests` every bar with a chord from the
    first to the last melody onset, so the bars where the singer breathes are in."""
    pieces = []
    for song in songs:
        good = song.good_bars
        if rests:
            first, last = song.melody[0].start // TICKS_PER_BAR, song.melody[-1].start // TICKS_PER_BAR
            chord_bars = {b for s in song.chords for b in range(s.start // TICKS_PER_BAR, (s.end - 1) // TICKS_PER_BAR + 1)}
            good = [first <= b <= last and b in chord_bars for b in range(last + 1)]
        for start in excerpt_starts(good, bars):
            excerpt = cut_excerpt(song, start, bars)
            bass = line(cut(song.piano_bass, start, bars), TICKS_PER_BEAT, lowest=True)
            pieces.append(RealPiece("pop909", f"pop909:{song.song_id} bars {start + 1}-{start + bars}", "pop", bars,
                                    {"melody": excerpt.melody, "bass": bass}, excerpt.key, excerpt.chords))
    return pieces


def load_pop909_songs(root: Path = DEFAULT_DATA_ROOT, max_songs: int | None = None) -> list:
    """POP909 songs in 4/4 by the index, as the corpus reads them."""
    return load_pop909(_folder(root, "pop909"), CorpusConfig(pop909_max_songs=max_songs), Counter())


def pop909_songs(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS,
                 max_songs: int | None = None) -> list[RealPiece]:
    """8-bar excerpts (`pop909_excerpts`) of POP909 songs, bars with melody and chords."""
    return pop909_excerpts(load_pop909_songs(root, max_songs), bars)


def wjd_excerpts(solos: list, bars: int = EXCERPT_BARS, per_solo: int | None = None) -> list[RealPiece]:
    """Excerpts of `bars` bars of WJD solos in 4/4 (`eval/wjd.py`): the solo line as the melody,
    the estimated bass pitch of each beat as the bass, the chords of the beats, the solo's key.
    A bar is usable when all four of its beats are annotated with a chord (the soloist may
    rest in it); a pickup or no-chord bar breaks a run. With `per_solo`, at most that many
    excerpts of a solo, spread over it (a long solo would otherwise weigh like ten short ones)."""
    pieces = []
    for solo in solos:
        if solo.signature != "4/4" or not solo.beats:
            continue
        first = min(b.bar for b in solo.beats)
        total = max(b.bar for b in solo.beats) - first + 1
        beats_with_chord = Counter(b.bar - first for b in solo.beats if b.chord not in ("NC", "", "nan"))
        good = [beats_with_chord[bar] == 4 for bar in range(total)]
        melody, bass = solo_notes(solo, first, TICKS_PER_BEAT), solo_bass(solo, first, TICKS_PER_BEAT)
        chords = solo_chords(solo, first, TICKS_PER_BEAT)
        starts = excerpt_starts(good, bars)
        if per_solo and len(starts) > per_solo:
            starts = [starts[i * len(starts) // per_solo] for i in range(per_solo)]
        for start in starts:
            lo, hi = start * TICKS_PER_BAR, (start + bars) * TICKS_PER_BAR
            spans = [rules.ChordSpan(max(lo, c.start) - lo, min(hi, c.end) - lo, c.chord) for c in chords
                     if c.start < hi and c.end > lo]
            pieces.append(RealPiece("wjd", f"wjd:{solo.melid} {solo.performer} - {solo.title} bars {start + 1}-"
                                           f"{start + bars}", "jazz", bars,
                                    {"melody": cut(melody, start, bars), "bass": cut(bass, start, bars)}, solo.key,
                                    spans))
    return pieces


def wjd_solos(root: Path = DEFAULT_DATA_ROOT) -> list:
    """Every WJD solo (`eval/wjd.py: read_wjd`) of the `wjd/` folder under `root`."""
    return read_wjd(_folder(root, "wjd"))


def billboard_excerpts(songs: list, bars: int = EXCERPT_BARS) -> list[RealPiece]:
    """Excerpts of `bars` bars of Billboard songs in 4/4: the chord spans only (no notes), the
    artist's style as the genre (None when `ARTIST_STYLES` does not name it). A bar is usable
    when it is 4 beats long and has a chord."""
    pieces = []
    for song in songs:
        if song.metre != "4/4":
            continue
        good = [bar.beats == 4 and any(c != "N" for c in bar.chords) for bar in song.bars]
        for start in excerpt_starts(good, bars):
            pieces.append(RealPiece("billboard", f"billboard:{song.song_id} {song.artist} - {song.title} bars "
                                                 f"{start + 1}-{start + bars}", song.style, bars, {},
                                    chords=bar_chord_spans(song.bars[start:start + bars], TICKS_PER_BEAT)))
    return pieces


def billboard_songs(root: Path = DEFAULT_DATA_ROOT) -> list:
    """Every Billboard song (`eval/billboard.py: read_billboard`) of the `billboard/` folder."""
    return read_billboard(_folder(root, "billboard"))


def freedoom_songs(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS) -> list[RealPiece]:
    """8-bar excerpts of the Freedoom songs in one tempo and 4/4 with a bass and a melody
    line (bars where both play), with their drums when the song has a kit part."""
    folder = _folder(root, "freedoom")
    pieces = []
    for song in load_freedoom(folder, Counter()):
        for start in excerpt_starts(song.good_bars, bars):
            tracks = {"bass": cut(song.bass, start, bars), "melody": cut(song.melody, start, bars)}
            if song.drums:
                tracks["drums"] = cut(song.drums, start, bars)
            pieces.append(RealPiece("freedoom", f"{song.group} bars {start + 1}-{start + bars}", song.genre, bars,
                                    tracks))
    return pieces


def melody_only(pieces: list[RealPiece]) -> list[RealPiece]:
    """The pieces with their melody alone (no bass, chords or key)."""
    return [RealPiece(p.dataset, p.source, p.genre, p.bars, {"melody": p.tracks["melody"]}, split=p.split)
            for p in pieces]


def load_reference_sets(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS, pop909_max_songs: int | None = None,
                        gmd_max_files: int | None = None, wanted: set[str] | None = None,
                        wjd_per_solo: int | None = None) -> tuple[dict[str, list[RealPiece]], dict[str, str]]:
    """The reference sets named in `wanted` (default: every set of DATASETS) found under `root`
    ({dataset: pieces}) and, for the others, why not ({dataset: reason}). Each folder is read
    once: `gmd` is `gmd_all`'s validation split, the 16-bar sets are cut from the same songs.
    The 16-bar and rest sets keep only the melody: they answer only the melody figures of
    16-bar pieces and of rests, and the rest of their figures would cost a third of the run.
    `wjd_per_solo` caps the excerpts of a WJD solo (`wjd_excerpts`)."""
    wanted = set(DATASETS) if wanted is None else set(wanted)
    loaders = {
        "gmd": lambda: gmd_beats(root, bars, gmd_max_files,
                                 splits=("train", "validation") if "gmd_all" in wanted else ("validation",)),
        "pop909": lambda: load_pop909_songs(root, pop909_max_songs),
        "freedoom": lambda: freedoom_songs(root, bars),
        "wjd": lambda: wjd_solos(root),
        "billboard": lambda: billboard_songs(root),
    }
    cutters = {
        "gmd": {"gmd": lambda pieces: [p for p in pieces if p.split == "validation"], "gmd_all": lambda pieces: pieces},
        "pop909": {"pop909": lambda songs: pop909_excerpts(songs, bars),
                   "pop909_rests": lambda songs: melody_only(pop909_excerpts(songs, bars, rests=True)),
                   "pop909_16": lambda songs: melody_only(pop909_excerpts(songs, LONG_EXCERPT_BARS))},
        "freedoom": {"freedoom": lambda pieces: pieces},
        "wjd": {"wjd": lambda solos: wjd_excerpts(solos, bars, wjd_per_solo),
                "wjd_16": lambda solos: melody_only(wjd_excerpts(solos, LONG_EXCERPT_BARS, wjd_per_solo))},
        "billboard": {"billboard": lambda songs: billboard_excerpts(songs, bars)},
    }
    found: dict[str, list[RealPiece]] = {}
    missing: dict[str, str] = {}
    for folder, load in loaders.items():
        sets = {name: cut_set for name, cut_set in cutters[folder].items() if name in wanted}
        if not sets:
            continue
        try:
            loaded = load()
        except (RealDataMissing, ValueError) as error:  # CorpusError, WjdError, BillboardError: a damaged folder
            missing.update({name: str(error) for name in sets})
            continue
        for name, cut_set in sets.items():
            found[name] = cut_set(loaded)
    return found, missing


def gmd_fill_check(root: Path = DEFAULT_DATA_ROOT, phrase_bars: int = 4, splits: tuple[str, ...] = ("validation",),
                   max_fills: int | None = None) -> dict[str, Share]:
    """`phrase_end_variations` on phrases built from GMD performances: `phrase_bars - 1` groove
    bars of a "beat" file followed by a "fill" file of the same session, style and tempo
    ("fill"); the same groove bars followed by a copy of the first ("copied"); and the phrase
    ends of the beat files themselves ("beats", how often drummers vary by this definition).
    The definition is right when "fill" is near 1 and "copied" 0."""
    folder = _folder(root, "gmd")
    rows = [r for r in read_gmd_info(folder) if r["split"] in splits and r["time_signature"] == "4-4"]
    grooves: dict[tuple[str, str, str], list[Note]] = {}
    beats = Share()
    for row in rows:
        performance = played_performance(folder, row) if row["beat_type"] == "beat" else None
        if performance is None:
            continue
        played, good = performance
        starts = excerpt_starts(good, phrase_bars)
        for start in starts:
            beats += phrase_end_variations(cut(played, start, phrase_bars), phrase_bars, TICKS_PER_BEAT, phrase_bars)
        if starts:
            grooves.setdefault((row["session"], row["style"], row["bpm"]), cut(played, starts[0], phrase_bars - 1))
    fill = copied = Share()
    fill_rows = [r for r in rows if r["beat_type"] == "fill" and (r["session"], r["style"], r["bpm"]) in grooves]
    for row in fill_rows[:max_fills]:
        groove = grooves[(row["session"], row["style"], row["bpm"])]
        hits = read_gmd_hits(folder / row["midi_filename"]) or []
        by_bar = Counter(grid_step(t, TICKS_PER_BEAT) // (4 * 12) for t, _, _ in hits)
        if not by_bar:
            continue
        bar = by_bar.most_common(1)[0][0]  # the fill: the file's busiest bar (a few start with a bar of groove)
        fill_bar = cut([Note(t, rules.DRUM_TICKS, p, v) for t, p, v in hits], bar, 1)
        end = (phrase_bars - 1) * TICKS_PER_BAR
        first_bar = [n for n in groove if n.start < TICKS_PER_BAR]
        fill += phrase_end_variations(groove + [Note(n.start + end, n.duration, n.pitch, n.velocity) for n in fill_bar],
                                      phrase_bars, TICKS_PER_BEAT, phrase_bars)
        copied += phrase_end_variations(groove + [Note(n.start + end, n.duration, n.pitch, n.velocity)
                                                  for n in first_bar], phrase_bars, TICKS_PER_BEAT, phrase_bars)
    return {"fill": fill, "copied": copied, "beats": beats}
