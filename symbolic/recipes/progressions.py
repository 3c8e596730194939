"""The default progressions' recipe: real chord progressions counted from POP909, the McGill
Billboard songs (by artist style) and the Weimar Jazz Database into
symbolic/music/progressions.json, which symbolic/music/harmony.py reads at run time, and the
figures of what the defaults draw.

    python -m stemforge.symbolic.recipes.progressions build     # rewrite the table
    python -m stemforge.symbolic.recipes.progressions figures   # what the defaults do per genre

The data set readers are in harmony_data.py; `docs/harmony.md` explains the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemforge.symbolic.core.ticks import BEATS_PER_BAR
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT as TPB
from stemforge.symbolic.music.harmony import (
    _SCALE_STEPS,
    _TRIAD_OF,
    BILLBOARD_STYLES,
    GENRE_HARMONY,
    SOURCE,
    SOURCE_NAMES,
    TABLE_PATH,
    Chord,
    ChordSpan,
    chord_quality,
    default_candidates,
    default_progression,
    load_table,
    make_chord,
    out_of_key,
    parse_progression,
    parse_roman,
    roman_numeral,
)
from stemforge.symbolic.music.keys import Key, parse_key

HALF_BAR = BEATS_PER_BAR * TPB // 2
WINDOW_BARS = 4
KEY_CHANGE_MARGIN_BARS = 2  # key_audio.txt times are audio seconds: keep clear of key changes
SEVENTH_SOURCES = ("wjd", "billboard_soul", "billboard_funk", "billboard_disco")  # count 7ths (see docs)
TOP = 150  # progressions kept per mode and source
CREDITS = {
    "pop909": SOURCE,
    "billboard": "McGill Billboard Project, Burgoyne, Wild and Fujinaga 2011 (CC0)",
    "wjd": "Weimar Jazz Database (Pfleiderer, Frieler, Abesser, Zaddach, Burkhart 2017), via jazzodata (MIT)",
}


def _diatonic_triad(root: int, key: Key) -> str:
    steps = sorted((s + key.tonic) % 12 for s in _SCALE_STEPS[key.mode])
    if root not in steps:
        return "maj"
    i = steps.index(root)
    third, fifth = (steps[(i + 2) % 7] - root) % 12, (steps[(i + 4) % 7] - root) % 12
    return {(4, 7): "maj", (3, 7): "min", (3, 6): "dim"}.get((third, fifth), "maj")


def window_label(chord: Chord, key: Key, sevenths: bool = False) -> str:
    """The roman numeral a progression count uses: the chord's triad on its root (7ths,
    extensions and inversions dropped, so G7/B and G count as V); a chord without a major
    or minor third (sus, a power chord) as the key's own triad on that root (Fsus2 in C is
    IV). With `sevenths` a 7th or 6th chord keeps its quality (ii7 V7 Imaj7, V7sus4)."""
    quality = chord_quality(chord)
    if chord.third not in (3, 4):
        if sevenths and quality == "7sus4":
            return roman_numeral(make_chord(chord.root, quality), key)
        return roman_numeral(make_chord(chord.root, _diatonic_triad(chord.root, key)), key)
    if not sevenths or not chord.has_seventh:
        quality = _TRIAD_OF.get(quality) or _diatonic_triad(chord.root, key)
    return roman_numeral(make_chord(chord.root, quality), key)


def half_bar_slots(spans: list[ChordSpan], total_bars: int) -> list[Chord | None]:
    """The chord of every half bar: the one sounding longest in it (the earlier on a tie);
    None when chords cover less than half of it."""
    best: list[tuple[int, Chord | None]] = [(0, None)] * (2 * total_bars)
    for span in sorted(spans, key=lambda s: s.start):
        for slot in range(max(0, span.start // HALF_BAR), min(len(best), -(-span.end // HALF_BAR))):
            overlap = min(span.end, (slot + 1) * HALF_BAR) - max(span.start, slot * HALF_BAR)
            if overlap > best[slot][0]:
                best[slot] = (overlap, span.chord)
    return [chord if overlap >= HALF_BAR // 2 else None for overlap, chord in best]


def cycle_of(labels: list[str]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Half-bar labels of a window -> (chords, beats) of its shortest cycle: a 2-bar pattern
    played twice is a 2-bar cycle, one chord held 4 bars a 1-bar cycle."""
    while len(labels) > 2 and len(labels) % 2 == 0 and labels[: len(labels) // 2] == labels[len(labels) // 2:]:
        labels = labels[: len(labels) // 2]
    romans: list[str] = []
    beats: list[int] = []
    for label in labels:
        if romans and romans[-1] == label:
            beats[-1] += BEATS_PER_BAR // 2
        else:
            romans.append(label)
            beats.append(BEATS_PER_BAR // 2)
    return tuple(romans), tuple(beats)


@dataclass(frozen=True)
class Window:
    """Four 4/4 bars of one song in one key: the chord of each of its 8 half bars."""

    song: str  # what songs are counted by: a song id, a jazz tune's title
    key: Key
    chords: tuple[Chord, ...]


def beat_window(song: str, key: Key, beat_chords: list[Chord | None], skipped: Counter) -> Window | None:
    """A window from the chord of each of its 16 beats; None (counted in `skipped`) when a
    half bar has no chord."""
    spans = [ChordSpan(i * TPB, (i + 1) * TPB, c) for i, c in enumerate(beat_chords) if c is not None]
    slots = half_bar_slots(spans, WINDOW_BARS)
    if any(c is None for c in slots):
        skipped["window without a chord on every half bar"] += 1
        return None
    return Window(song, key, tuple(slots))  # type: ignore[arg-type]  # no None left


def _window_key(key_spans: list[tuple[int, int, Key]], lo: int, hi: int) -> Key | None:
    """The annotated key of ticks [lo, hi): one key span holds it, clear of key changes."""
    margin = KEY_CHANGE_MARGIN_BARS * BEATS_PER_BAR * TPB
    for index, (start, end, key) in enumerate(key_spans):
        after_change = index > 0 and lo < start + margin
        before_change = index + 1 < len(key_spans) and hi > end - margin
        if (start <= lo or index == 0) and (hi <= end or index + 1 == len(key_spans)) \
                and not after_change and not before_change:
            return key
    return None


def pop909_windows(song: str, spans: list[ChordSpan], key_spans: list[tuple[int, int, Key]],
                   relative_minor: bool, skipped: Counter) -> list[Window]:
    """A POP909 song's 4-bar windows, one every 4 bars. A window needs a chord on each half
    bar and one key.

    Phrases rarely start on the first annotated downbeat (pickups, odd intros), and a loop
    read from the middle of a phrase starts on the wrong chord: the windows start at the
    phase (0-3 bars after the first downbeat) where most of them begin on the tonic (the
    earliest phase on a tie). With `relative_minor`, a major-key window that starts and
    ends on vi counts in the relative minor too."""
    total_bars = max(s.end for s in spans) // (BEATS_PER_BAR * TPB)
    slots = half_bar_slots(spans, total_bars)
    options: list[tuple[float, int, list[tuple[Key, list[Chord]]], Counter]] = []
    for phase in range(WINDOW_BARS):
        found: list[tuple[Key, list[Chord]]] = []
        missed: Counter = Counter()
        for bar in range(phase, total_bars - WINDOW_BARS + 1, WINDOW_BARS):
            window = [c for c in slots[2 * bar: 2 * (bar + WINDOW_BARS)] if c is not None]
            key = _window_key(key_spans, bar * BEATS_PER_BAR * TPB, (bar + WINDOW_BARS) * BEATS_PER_BAR * TPB)
            if len(window) < 2 * WINDOW_BARS:
                missed["window without a chord on every half bar"] += 1
            elif key is None:
                missed["window near a key change"] += 1
            else:
                found.append((key, window))
        on_tonic = sum(1 for key, window in found if window[0].root == key.tonic)
        options.append((on_tonic / max(1, len(found)), -phase, found, missed))
    _, _, found, missed = max(options, key=lambda o: (o[0], o[1]))
    skipped.update(missed)
    out = []
    for key, window in found:
        out.append(Window(song, key, tuple(window)))
        if relative_minor and key.mode == "major" and window_label(window[0], key) == window_label(window[-1], key) \
                == "vi":
            out.append(Window(song, Key((key.tonic + 9) % 12, "minor"), tuple(window)))
    return out


def song_windows(spans: list[ChordSpan], key_spans: list[tuple[int, int, Key]], relative_minor: bool,
                 skipped: Counter) -> list[tuple[str, tuple[str, ...], tuple[int, ...]]]:
    """(mode, romans, beats) of a POP909 song's 4-bar windows (`pop909_windows`)."""
    return [(w.key.mode, *cycle_of([window_label(c, w.key) for c in w.chords]))
            for w in pop909_windows("", spans, key_spans, relative_minor, skipped)]


# Billboard sections whose chords are counted: the body of a song. Intros, outros, solos,
# interludes and fade-outs idle on one chord two to five times as often (docs/harmony.md).
BODY_SECTIONS = ("verse", "chorus", "bridge", "refrain", "theme")


def billboard_windows(songs: list, skipped: Counter) -> list[Window]:
    """Billboard songs (harmony_data.BillboardSong) -> 4-bar windows, every 4 bars from the
    first bar of each body section (BODY_SECTIONS: the annotators mark where phrases start,
    so no phase is guessed as for POP909). A window needs 4 bars of 4 beats (4/4; 12/8
    counts its 4 dotted beats) whose chords divide them, one key, and a chord on every half
    bar."""
    out: list[Window] = []
    for song in songs:
        for section in song.sections:
            if not any(word in section.function.lower() for word in BODY_SECTIONS):
                skipped["section not of the song's body (intro, outro, solo, interlude...)"] += 1
                continue
            for start in range(0, len(section.bars) - WINDOW_BARS + 1, WINDOW_BARS):
                bars = section.bars[start: start + WINDOW_BARS]
                if any(bar.beats != BEATS_PER_BAR for bar in bars):
                    skipped["window not in 4/4"] += 1
                    continue
                beats = [bar.beat_chords() for bar in bars]
                if any(b is None for b in beats):
                    skipped["window with a bar whose chords do not divide its beats"] += 1
                    continue
                if len({bar.key for bar in bars}) > 1:
                    skipped["window across a change of tonic"] += 1
                    continue
                window = beat_window(song.song_id, bars[0].key, [c for b in beats for c in b or ()], skipped)
                if window:
                    out.append(window)
    return out


def wjd_windows(solos: list, skipped: Counter) -> list[Window]:
    """WJD solos (harmony_data.WjdSolo) -> 4-bar windows, every 4 bars from the start of
    each form section (A1, B1, ... of every chorus; intros I1 left out), in the window's local key: the one the
    database's analysis gives most of its beats (the earlier on a tie), so a ii-V-I into
    the key counts in it and a passing ii-V to another key counts as secondary chords.
    Songs are counted by tune (title): many solos over one tune's changes count once."""
    out: list[Window] = []
    for solo in solos:
        sections: list[list] = []
        for bar in solo.bars:
            last = sections[-1][-1] if sections else None
            if last is None or (bar.chorus, bar.form) != (last.chorus, last.form) or bar.number != last.number + 1:
                sections.append([])
            sections[-1].append(bar)
        for section in sections:
            if section[0].form.startswith("I"):
                skipped["intro section"] += 1
                continue
            for start in range(0, len(section) - WINDOW_BARS + 1, WINDOW_BARS):
                bars = section[start: start + WINDOW_BARS]
                keys = Counter(k for bar in bars for k in bar.local_keys if k is not None)
                if not keys:
                    skipped["window without a local key (chromatic or no chord)"] += 1
                    continue
                key = keys.most_common(1)[0][0]
                window = beat_window(solo.title.lower(), key, [c for bar in bars for c in bar.chords], skipped)
                if window:
                    out.append(window)
    return out


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def count_windows(windows: list[Window], sevenths: bool, top: int = TOP) -> dict[str, Any]:
    """The 4-bar cycles of `windows` as roman numerals per mode (triads, or with `sevenths`
    7th chords kept), ranked by the songs using them (ties: more windows), the `top` of
    each mode kept; and what the windows show, per mode and overall: the share that hold
    one chord (one root: a vamp), chords per 4 bars (root changes on half bars, plus one),
    the share of bars whose downbeat chord sits on the tonic, and the share of windows
    with a chord outside the key (as counted: a triad source's V7/ii is its VI), of all
    windows and of those with two chords or more. Every song weighs the same in these
    shares, however many windows it has: WJD's minor windows are 43% one chord, but a few
    modal tunes soloed over for many choruses make most of them; its minor tunes are 13%."""
    patterns: Counter = Counter()
    songs: dict[tuple, set[str]] = defaultdict(set)
    per_window: list[tuple[Window, dict[str, float]]] = []
    for window in windows:
        key = window.key
        labels = [window_label(c, key, sevenths) for c in window.chords]
        pattern = (key.mode, *cycle_of(labels))
        patterns[pattern] += 1
        songs[pattern].add(window.song)
        roots = [c.root for c in window.chords]
        moving = len(set(roots)) > 1
        outside = any(out_of_key(parse_roman(label, key) or window.chords[0], key) for label in set(labels))
        per_window.append((window, {
            "one_chord": not moving, "moving": moving, "out_of_key": outside, "moving_out_of_key": outside and moving,
            "chords": 1 + sum(a != b for a, b in zip(roots, roots[1:])),
            "tonic_bars": sum(roots[2 * bar] == key.tonic for bar in range(WINDOW_BARS)) / WINDOW_BARS}))
    figures = {}
    for mode in ("major", "minor", "all"):
        chosen = [(w, f) for w, f in per_window if mode in ("all", w.key.mode)]
        in_song = Counter(w.song for w, _ in chosen)
        totals: Counter = Counter()
        for window, counted in chosen:
            totals["songs"] += 1 / in_song[window.song]
            for name, value in counted.items():
                totals[name] += value / in_song[window.song]
        figures[mode] = totals

    def share(name: str, per: str = "songs") -> dict[str, float]:
        return {mode: _ratio(totals[name], totals[per]) for mode, totals in figures.items()}

    modes: dict[str, list[dict[str, Any]]] = {}
    for mode in ("major", "minor"):
        ranked = sorted((p for p in patterns if p[0] == mode),
                        key=lambda p: (-len(songs[p]), -patterns[p], " ".join(p[1]), p[2]))
        modes[mode] = [{"romans": " ".join(p[1]), "beats": list(p[2]), "cycle_bars": sum(p[2]) // BEATS_PER_BAR,
                        "songs": len(songs[p]), "windows": patterns[p]} for p in ranked[:top]]
    return {
        "labels": "sevenths" if sevenths else "triads",
        "songs_used": len({w.song for w in windows}),
        "windows": {mode: sum(1 for w in windows if w.key.mode == mode) for mode in ("major", "minor")},
        "distinct": {mode: sum(1 for p in patterns if p[0] == mode) for mode in ("major", "minor")},
        "vamp_share": share("one_chord"),
        "chords_per_4_bars": share("chords"),
        "tonic_bar_share": share("tonic_bars"),
        "out_of_key_share": share("out_of_key"),
        "out_of_key_share_moving": share("moving_out_of_key", "moving"),
        "modes": modes,
    }


POP909_METHOD = ("4-bar windows every 4 bars from each song's phrase phase (the bar 0-3 after its first downbeat "
                 "where most windows start on the tonic), chords snapped to half bars, triads on their roots as "
                 "roman numerals of the annotated key, reduced to the shortest cycle; ranked by songs using them")


def extract_progressions(pop909: Path, max_songs: int | None = None, top: int = TOP,
                         relative_minor: bool = False) -> dict[str, Any]:
    """Count the 4-bar chord cycles of POP909 (chord_midi.txt, key_audio.txt, beat_midi.txt,
    index.xlsx) as roman numerals per mode; the `top` of each mode by songs using them."""
    from stemforge.symbolic.recipes.corpus import (  # heavy: only to build
        _read_pop909_index,
        load_pop909_harmony,
    )

    index = _read_pop909_index(pop909 / "index.xlsx")
    folders = sorted(p for p in pop909.iterdir() if p.is_dir() and p.name.isdigit())[:max_songs]
    windows: list[Window] = []
    skipped: Counter = Counter()
    for folder in folders:
        harmony = load_pop909_harmony(folder, index.get(folder.name.zfill(3)))
        if isinstance(harmony, str):
            skipped[f"song: {harmony}"] += 1
            continue
        windows += pop909_windows(harmony.song_id, harmony.chords, harmony.key_spans, relative_minor, skipped)
    counted = count_windows(windows, sevenths=False, top=top)
    return {"credit": CREDITS["pop909"], "method": POP909_METHOD, "relative_minor": relative_minor,
            "songs_read": len(folders), **counted, "skipped": dict(sorted(skipped.items()))}


def billboard_tables(folder: Path, max_songs: int | None = None, top: int = TOP) -> dict[str, dict[str, Any]]:
    """One table per Billboard style (harmony_data.ARTIST_STYLES), 7ths counted where the
    style voices them (SEVENTH_SOURCES)."""
    from stemforge.symbolic.recipes.harmony_data import read_billboard

    read_skipped: Counter = Counter()
    songs = read_billboard(folder, read_skipped, max_songs)
    out = {}
    for style in BILLBOARD_STYLES:
        name = f"billboard_{style}"
        chosen = [song for song in songs if song.style == style]
        skipped = Counter(read_skipped) if style == BILLBOARD_STYLES[0] else Counter()
        counted = count_windows(billboard_windows(chosen, skipped), name in SEVENTH_SOURCES, top)
        out[name] = {"credit": CREDITS["billboard"],
                     "method": "4-bar windows every 4 bars from each section's first bar, in the song's tonic "
                               "(mode from its tonic chords); songs by artist style (harmony_data.ARTIST_STYLES); "
                               "the first style's skipped count includes the songs read twice",
                     "songs_read": len(chosen), **counted, "skipped": dict(sorted(skipped.items()))}
    return out


def wjd_table(folder: Path, max_songs: int | None = None, top: int = TOP) -> dict[str, Any]:
    from stemforge.symbolic.recipes.harmony_data import read_wjd

    skipped: Counter = Counter()
    solos = read_wjd(folder, skipped, max_songs)
    counted = count_windows(wjd_windows(solos, skipped), True, top)
    return {"credit": CREDITS["wjd"],
            "method": "4-bar windows every 4 bars from each form section of each chorus, in the local key "
                      "holding most of the window's beats; songs counted by tune",
            "songs_read": len({s.title.lower() for s in solos}), **counted, "skipped": dict(sorted(skipped.items()))}


def build_table(pop909: Path, billboard: Path, wjd: Path, max_songs: int | None = None, top: int = TOP,
                relative_minor: bool = False) -> dict[str, Any]:
    """The shipped table: POP909's lists at the top level (as the POP909-only table had
    them), and every source's lists and figures under `sources`."""
    pop = extract_progressions(pop909, max_songs, top, relative_minor)
    sources = {"pop909": {k: v for k, v in pop.items() if k != "modes"}}
    sources.update(billboard_tables(billboard, max_songs, top))
    sources["wjd"] = wjd_table(wjd, max_songs, top)
    head = {"source": SOURCE, "built_by": "python -m stemforge.symbolic.recipes.progressions build", "method": POP909_METHOD,
            "relative_minor": relative_minor, "songs_read": pop["songs_read"], "songs_used": pop["songs_used"],
            "windows": pop["windows"], "distinct": pop["distinct"], "skipped": pop["skipped"]}
    return {**head, "modes": pop["modes"], "sources": sources}


def _json_lines(value: Any, indent: int, expand: bool) -> list[str]:
    """`value` as JSON lines: dicts holding progression lists one key a line, each
    progression on its own line, everything else inline."""
    pad = "  " * indent
    if isinstance(value, list) and expand:
        return ["["] + [f"{pad}  {json.dumps(v, ensure_ascii=False)}{',' if i + 1 < len(value) else ''}"
                        for i, v in enumerate(value)] + [f"{pad}]"]
    if not (isinstance(value, dict) and expand):
        return [json.dumps(value, ensure_ascii=False)]
    lines = ["{"]
    for i, (name, item) in enumerate(value.items()):
        nested = _json_lines(item, indent + 1, name in ("modes", "sources", "major", "minor")
                             or (expand and isinstance(item, dict) and "modes" in item))
        comma = "," if i + 1 < len(value) else ""
        lines.append(f"{pad}  {json.dumps(name)}: {nested[0]}" + (comma if len(nested) == 1 else ""))
        lines += nested[1:-1] + ([nested[-1] + comma] if len(nested) > 1 else [])
    return lines + [f"{pad}}}"]


def write_table(table: dict[str, Any], path: Path) -> None:
    """JSON with one progression per line: small, diffable, deterministic; written to a
    temporary file and moved into place."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join(_json_lines(table, 0, True)) + "\n")
    temporary.replace(path)


# ------------------------------------------------------------------------------ figures


@dataclass(frozen=True)
class DefaultFigures:
    """What a genre's default progressions do over many draws (`default_figures`)."""

    genre: str
    candidates: dict[str, int]  # per mode
    draws: int
    moving_share: float  # progressions with 2 or more chords (roots) in 4 bars
    chords_per_4_bars: float  # root changes on half bars in the first 4 bars, plus one
    tonic_bar_share: float  # bars of an 8-bar loop whose downbeat chord sits on the tonic
    tonic_bar_share_drawn: float  # the same for the draws before default_chords's choice of a tonic opening
    out_of_key_share: float  # progressions with a chord tone outside the key's scale
    sources: dict[str, int]  # draws per source


FIGURE_KEYS = ("C major", "G major", "Eb major", "A major", "A minor", "E minor", "C minor", "F# minor")


def default_figures(genre: str, seeds: int = 200, keys: tuple[str, ...] = FIGURE_KEYS,
                    loop_bars: int = 8) -> DefaultFigures:
    """The genre's defaults as a piece gets them (`conditions.default_chords`, which prefers
    a progression that opens on the tonic and fits the loop) over `seeds` seeds in `keys`."""
    from stemforge.symbolic.music.conditions import Conditions, default_chords

    moving = changes = tonic_bars = drawn_tonic_bars = outside = 0
    sources: Counter = Counter()
    draws = 0
    for key_name in keys:
        key = parse_key(key_name)
        for seed in range(seeds):
            text = default_chords(Conditions(genre=genre, key=key_name, seed=seed, loop=loop_bars, bars=loop_bars))
            progression = parse_progression(text, key)
            spans = progression.spans(loop_bars)
            half_bars = [next(s.chord for s in spans if s.start <= slot * HALF_BAR < s.end)
                         for slot in range(2 * loop_bars)]
            roots = [c.root for c in half_bars[: 2 * WINDOW_BARS]]
            moving += len(set(roots)) >= 2
            changes += 1 + sum(a != b for a, b in zip(roots, roots[1:]))
            tonic_bars += sum(chord.bass == key.tonic for chord in half_bars[::2])
            outside += any(out_of_key(c, key) for c in progression.chords)
            drawn = default_progression(genre, key, seed, loop_bars)
            sources[drawn.source.split(f" {key.mode} #")[0]] += 1
            drawn_spans = drawn.spans(loop_bars)
            drawn_tonic_bars += sum(next(s.chord for s in drawn_spans if s.start <= bar * 2 * HALF_BAR < s.end).bass
                                    == key.tonic for bar in range(loop_bars))
            draws += 1
    return DefaultFigures(genre, {m: len(default_candidates(genre, m)) for m in ("major", "minor")}, draws,
                          _ratio(moving, draws), _ratio(changes, draws), _ratio(tonic_bars, draws * loop_bars),
                          _ratio(drawn_tonic_bars, draws * loop_bars), _ratio(outside, draws),
                          dict(sorted(sources.items())))


def print_figures(seeds: int) -> None:
    """The source figures of the table and the defaults' figures per genre, as markdown."""
    from stemforge.symbolic.music.conditions import GENRES

    print("| source | songs | windows (major/minor) | one-chord windows | chords per 4 bars | tonic bars "
          "| windows with an out-of-key chord |")
    print("|---|---|---|---|---|---|---|")
    for name, table in load_table()["sources"].items():
        print(f"| {SOURCE_NAMES[name]} | {table['songs_used']} | {table['windows']['major']}/"
              f"{table['windows']['minor']} | {table['vamp_share']['all']:.1%} | "
              f"{table['chords_per_4_bars']['all']:.2f} | {table['tonic_bar_share']['all']:.1%} | "
              f"{table['out_of_key_share']['all']:.1%} |")
    print(f"\ndefaults over {seeds} seeds x {len(FIGURE_KEYS)} keys ({', '.join(FIGURE_KEYS)}), 8-bar loop:\n")
    print("| genre | sources | voicing | candidates (major/minor) | >= 2 chords per 4 bars | chords per 4 bars "
          "| tonic bars (as drawn) | out-of-key chord |")
    print("|---|---|---|---|---|---|---|---|")
    for genre in GENRES:
        style = GENRE_HARMONY[genre]
        figures = default_figures(genre, seeds)
        names = " + ".join(f"{SOURCE_NAMES[s]}" + (f" {w:.0%}" if len(style.sources) > 1 else "")
                           for s, w in style.sources)
        print(f"| {genre} | {names} | {style.voicing} | {figures.candidates['major']}/{figures.candidates['minor']} "
              f"| {figures.moving_share:.1%} | {figures.chords_per_4_bars:.2f} | {figures.tonic_bar_share:.1%} "
              f"({figures.tonic_bar_share_drawn:.1%}) | {figures.out_of_key_share:.1%} |")


def main(argv: list[str] | None = None) -> int:
    data = Path(__file__).resolve().parents[3] / "shared" / "data"
    parser = argparse.ArgumentParser(prog="python -m stemforge.symbolic.recipes.progressions",
                                     description="Rebuild symbolic/music/progressions.json from POP909, Billboard "
                                                 "and WJD, or print what the defaults do.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="count the real progressions of POP909, Billboard and WJD")
    build.add_argument("--pop909", type=Path, default=data / "pop909", help="default: ../shared/data/pop909")
    build.add_argument("--billboard", type=Path, default=data / "billboard", help="default: ../shared/data/billboard")
    build.add_argument("--wjd", type=Path, default=data / "wjd", help="default: ../shared/data/wjd")
    build.add_argument("--out", type=Path, default=TABLE_PATH, help=f"default: {TABLE_PATH}")
    build.add_argument("--top", type=int, default=TOP, help=f"progressions kept per mode and source (default {TOP})")
    build.add_argument("--max-songs", type=int, default=None, help="read only the first N songs of each set")
    build.add_argument("--relative-minor", action="store_true",
                       help="also count POP909 major-key windows that start and end on vi as minor")
    figures = commands.add_parser("figures", help="print the table's figures and what the defaults do per genre")
    figures.add_argument("--seeds", type=int, default=200, help="seeds per genre and key (default 200)")
    args = parser.parse_args(argv)
    if args.command == "figures":
        print_figures(args.seeds)
        return 0
    for path, needs in ((args.pop909, "index.xlsx"), (args.billboard, "McGill-Billboard"),
                        (args.wjd, "wjd_annotated_beat_tracks.rda")):
        if not (path / needs).exists():
            print(f"error: {path}: no {needs} here; point the option at the data set's folder", file=sys.stderr)
            return 2
    table = build_table(args.pop909, args.billboard, args.wjd, args.max_songs, args.top, args.relative_minor)
    write_table(table, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    for name, source in table["sources"].items():
        print(f"{SOURCE_NAMES[name]:<18} {source['songs_used']:>4} of {source['songs_read']:>4} songs, windows "
              f"{source['windows']['major']:>5}/{source['windows']['minor']:<5} one-chord "
              f"{source['vamp_share']['all']:.1%}, chords per 4 bars {source['chords_per_4_bars']['all']:.2f}, "
              f"tonic bars {source['tonic_bar_share']['all']:.1%}; top 3 major: "
              + ", ".join(e["romans"] for e in (source.get("modes") or table["modes"])["major"][:3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
