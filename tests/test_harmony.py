"""Harmony: what a producer types (chord symbols, roman numerals, bars, named progressions),
what the sampler follows (chord spans, chord tones), the per-genre defaults drawn from
POP909 progressions, the prompt finder, and the POP909 extraction (real data when present)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.music.conditions import GENRES, Conditions, default_chords
from stemforge.symbolic.music.harmony import (
    BILLBOARD_STYLES,
    GENRE_HARMONY,
    QUALITIES,
    SOURCE_NAMES,
    TABLE_PATH,
    VAMP_SOURCE_SHARE,
    Chord,
    ChordError,
    ChordSpan,
    Progression,
    chord_quality,
    chord_symbol,
    chord_tones,
    default_candidates,
    default_progression,
    draw_shares,
    load_table,
    make_chord,
    out_of_key,
    parse_chord,
    parse_chord_symbol,
    parse_progression,
    parse_roman,
    progression_in_prompt,
    roman_numeral,
    romans_in_key,
    source_entries,
    source_table,
)
from stemforge.symbolic.music.keys import Key, parse_key
from stemforge.symbolic.recipes import corpus_rules as rules
from stemforge.symbolic.recipes.harmony_data import (
    ARTIST_STYLES,
    HarmonyDataError,
    harte_chord,
    normalise_artist,
    parse_wjd_chord,
    parse_wjd_key,
    read_billboard,
    read_billboard_song,
    read_wjd,
    style_for,
)
from stemforge.symbolic.recipes.progressions import (
    Window,
    billboard_windows,
    build_table,
    count_windows,
    cycle_of,
    default_figures,
    extract_progressions,
    song_windows,
    window_label,
    wjd_windows,
    write_table,
)
from stemforge.symbolic.recipes.progressions import main as harmony_main

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
POP909, BILLBOARD, WJD = DATA / "pop909", DATA / "billboard", DATA / "wjd"
BAR = 4 * 480
C_MAJOR, A_MINOR = Key(0, "major"), Key(9, "minor")


def keyed(text: str) -> Key:
    return parse_key(text)


# ----------------------------------------------------------------------------- parsing

PARSE_CASES = [
    ("A minor", "Am F C G", "Am | F | C | G", "i | VI | III | VII"),
    ("C major", "Am7 Dm7 G7 Cmaj7", "Am7 | Dm7 | G7 | Cmaj7", "vi7 | ii7 | V7 | Imaj7"),
    ("A minor", "i VI III VII", "Am | F | C | G", "i | VI | III | VII"),
    ("C major", "vi IV I V", "Am | F | C | G", "vi | IV | I | V"),
    ("C major", "I V vi IV", "C | G | Am | F", "I | V | vi | IV"),
    ("E minor", "iv7 i", "Am7 | Em", "iv7 | i"),
    ("C major", "I bVII IV I", "C | Bb | F | C", "I | bVII | IV | I"),
    ("C major", "V7/V V7 I", "D7 | G7 | C", "II7 | V7 | I"),
    ("C major", "F#m7b5 | C/E | Bbmaj7 | Esus4 A7", "F#m7b5 | C/E | Bbmaj7 | Esus4 A7", "#ivø7 | I | bVIImaj7 | IIIsus4 VI7"),
    ("A minor", "Am F | C G", "Am F | C G", "i VI | III VII"),
    ("A minor", "Am - F - C - G", "Am | F | C | G", "i | VI | III | VII"),
    ("A minor", "i bVI bIII bVII", "Am | F | C | G", "i | VI | III | VII"),
    ("A minor", "i iv V i", "Am | Dm | E | Am", "i | iv | V | i"),
    ("A minor", "vii°7 i", "G#dim7 | Am", "vii°7 | i"),
    ("F# major", "I V vi IV", "F# | C# | D#m | B", "I | V | vi | IV"),
    ("F# major", "ii-V-I", "G#m7 | C#7 | F#maj7 | F#maj7", "ii7 | V7 | Imaj7 | Imaj7"),
    ("F# major", "F# C# | D#m B", "F# C# | D#m B", "I V | vi IV"),
    ("Eb minor", "i VI III VII", "Ebm | B | Gb | Db", "i | VI | III | VII"),
    ("Eb minor", "Ebm7 Abm7 | Bb7 Ebm7", "Ebm7 Abm7 | Bb7 Ebm7", "i7 iv7 | V7 i7"),
    ("Eb minor", "andalusian", "Ebm | Db | B | Bb", "i | VII | VI | V"),
    ("D minor", "axis", "Dm | Bb | F | C", "i | VI | III | VII"),
    ("G major", "axis", "G | D | Em | C", "I | V | vi | IV"),
    ("C major", "doo-wop", "C | Am | F | G", "I | vi | IV | V"),
]


@pytest.mark.parametrize("key, text, symbols, romans", [
    pytest.param(k, t, s, r, id=f"{k}: {t}") for k, t, s, r in PARSE_CASES])
def test_parse_progression_reads_what_producers_type(key, text, symbols, romans):
    progression = parse_progression(text, keyed(key))
    assert progression.text() == symbols
    assert progression.text(romans=True) == romans


def test_one_bar_of_several_chords_reads_back_as_one_bar():
    for text in ("Am F", "C Am F G"):
        one_bar = parse_progression(f"{text} |", A_MINOR)
        assert one_bar.cycle_bars == 1 and one_bar.text() == f"| {text} |"
        assert parse_progression(one_bar.text(), A_MINOR) == one_bar
    assert parse_progression("Am F", A_MINOR).text() == "Am | F"


def test_one_chord_per_bar_and_chords_in_a_bar_share_it():
    assert parse_progression("Am F C G", A_MINOR).beats == (4, 4, 4, 4)
    split = parse_progression("Am F | C G", A_MINOR)
    assert split.beats == (2, 2, 2, 2) and split.cycle_bars == 2
    busy = parse_progression("C Am F G | C", C_MAJOR)
    assert busy.beats == (1, 1, 1, 1, 4) and busy.cycle_bars == 2


def test_named_progressions_follow_the_mode():
    assert parse_progression("axis", C_MAJOR).symbols == ("C", "G", "Am", "F")
    assert parse_progression("axis progression", A_MINOR).symbols == ("Am", "F", "C", "G")
    two_five_one = parse_progression("ii-V-I", C_MAJOR)
    assert two_five_one.cycle_bars == 4 and two_five_one.source == "named: ii-V-I"
    assert parse_progression("ii-V-I", A_MINOR).symbols == ("Bm7b5", "E7", "Am7", "Am7")


@pytest.mark.parametrize("text, says", [
    pytest.param("H7", "'H7' is not a chord", id="not-a-chord"),
    pytest.param("Am F Xyz G", "'Xyz' is not a chord", id="bad-chord-among-good"),
    pytest.param("", "empty", id="empty"),
    pytest.param("Am | | F", "empty bar", id="empty-bar"),
    pytest.param("Am F G | C", "use 1, 2 or 4 chords per bar", id="three-in-a-bar"),
    pytest.param("C D E F G A B C D", "at most 8 bars", id="too-long"),
    pytest.param("12-bar blues", "12-bar blues is longer than a loop", id="12-bar-blues"),
])
def test_bad_chords_are_one_line_errors_naming_the_field(text, says):
    with pytest.raises(ChordError) as caught:
        parse_progression(text, C_MAJOR)
    message = str(caught.value)
    assert message.startswith("chords: ") and says in message and "\n" not in message
    assert isinstance(caught.value, ConditionError) and isinstance(caught.value, ValueError)


def test_the_error_for_an_unknown_chord_says_what_to_type():
    with pytest.raises(ChordError, match=r"^chords: 'H7' is not a chord; use symbols like Am7, F, C/E or "
                                         r"roman numerals like vi IV I V$"):
        parse_progression("H7 C", C_MAJOR)


# ------------------------------------------------------------------------ chords, tones


@pytest.mark.parametrize("symbol, tones", [
    pytest.param("Am", {9, 0, 4}, id="Am"),
    pytest.param("Am7", {9, 0, 4, 7}, id="Am7"),
    pytest.param("Cmaj7", {0, 4, 7, 11}, id="Cmaj7"),
    pytest.param("G7", {7, 11, 2, 5}, id="G7"),
    pytest.param("Bdim", {11, 2, 5}, id="Bdim"),
    pytest.param("F#m7b5", {6, 9, 0, 4}, id="F#m7b5"),
    pytest.param("C/E", {0, 4, 7}, id="C/E"),
    pytest.param("Esus4", {4, 9, 11}, id="Esus4"),
    pytest.param("C6", {0, 4, 7, 9}, id="C6"),
])
def test_chord_tones(symbol, tones):
    assert chord_tones(parse_chord_symbol(symbol)) == frozenset(tones)


def test_a_triad_keeps_its_seventh_out_of_the_chord_tones():
    am = parse_chord_symbol("Am")
    assert am.seventh == 10 and not am.has_seventh and 7 not in chord_tones(am)


@pytest.mark.parametrize("quality", sorted(QUALITIES))
def test_symbols_and_romans_read_back_to_the_same_chord(quality):
    for tonic in range(12):
        for mode in ("major", "minor"):
            key = Key(tonic, mode)
            for root in range(12):
                chord = make_chord(root, quality)
                assert parse_chord_symbol(chord_symbol(chord, key)) == chord
                assert parse_chord_symbol(chord_symbol(chord)) == chord
                assert parse_roman(roman_numeral(chord, key), key) == chord, roman_numeral(chord, key)
    slash = make_chord(0, "maj", bass=4)
    assert chord_symbol(slash) == "C/E" and parse_chord_symbol("C/E") == slash


def test_symbols_are_spelled_in_the_key():
    assert chord_symbol(make_chord(3, "min"), keyed("Eb minor")) == "Ebm"
    assert chord_symbol(make_chord(1, "dim"), keyed("D minor")) == "C#dim"  # leading tone
    assert chord_symbol(make_chord(10, "maj"), C_MAJOR) == "Bb"  # bVII
    assert chord_symbol(make_chord(8, "min"), keyed("E major")) == "G#m"
    assert chord_symbol(make_chord(6, "min"), keyed("A major")) == "F#m"


def test_harte_labels_from_pop909():
    assert parse_chord("F#:maj7/5") == make_chord(6, "maj7", bass=1)
    assert parse_chord("Bb:sus4(b7)") == make_chord(10, "7sus4")
    assert parse_chord("C:maj(9)") == make_chord(0, "maj")  # unknown extension: its triad
    assert parse_chord("N") is None
    # corpus_rules keeps reading chords through the same definition
    assert rules.parse_chord is parse_chord and rules.Chord is Chord and rules.ChordSpan is ChordSpan


# ------------------------------------------------------------------------ progression


@pytest.mark.parametrize("text, bars", [
    pytest.param("Am F C G", 8, id="4-bar-cycle-8-bars"),
    pytest.param("Am F | C G", 8, id="2-bar-cycle-8-bars"),
    pytest.param("Am", 4, id="1-bar-cycle"),
    pytest.param("Am F C G", 6, id="cycle-cut-at-6-bars"),
    pytest.param("C Am F G | C", 16, id="quarter-notes-16-bars"),
    pytest.param("Am F C G Dm E", 2, id="cycle-longer-than-the-piece"),
])
def test_spans_cover_exactly_the_bars_and_repeat_the_cycle(text, bars):
    progression = parse_progression(text, A_MINOR)
    spans = progression.spans(bars)
    assert spans[0].start == 0 and spans[-1].end == bars * BAR
    assert all(a.end == b.start for a, b in zip(spans, spans[1:]))  # no gap, no overlap
    assert all(s.end > s.start for s in spans)
    cycle = progression.cycle_bars * BAR
    starts = {s.start: s.chord for s in spans}
    for span in spans:  # the same chord sits at the same place of every cycle
        assert starts.get(span.start % cycle) == span.chord


def test_spans_at_another_resolution():
    spans = parse_progression("Am F", A_MINOR).spans(2, ticks_per_beat=96)
    assert [(s.start, s.end) for s in spans] == [(0, 384), (384, 768)]


def test_progression_saves_and_loads_as_json():
    for progression in (parse_progression("Am7 Dm7 | G7 Cmaj7/E", C_MAJOR),
                        parse_progression("i VI III VII", keyed("Eb minor")),
                        default_progression("lofi", keyed("F# major"), 3)):
        data = json.loads(json.dumps(progression.to_dict()))
        assert Progression.from_dict(data) == progression
        assert data["chords"] == progression.text() and data["cycle_bars"] == progression.cycle_bars
    with pytest.raises(ChordError, match="^chords: "):
        Progression.from_dict({"key": "C major", "symbols": ["C"]})


# -------------------------------------------------------------------------- defaults


KEYS = ["C major", "A minor", "F# major", "Eb minor", "Bb major", "C# minor"]


@pytest.mark.parametrize("genre", GENRES)
def test_default_progressions_come_from_the_genres_sources_and_loop(genre):
    style = GENRE_HARMONY[genre]
    names = tuple(SOURCE_NAMES[source] for source, _ in style.sources) + ("POP909",)
    for key_name in KEYS:
        key = keyed(key_name)
        for seed in range(6):
            progression = default_progression(genre, key, seed)
            assert progression.key == key and progression.cycle_bars in (1, 2, 4)
            assert progression.source.startswith(names), progression.source
            tonic = [c for c in progression.chords if c.root == key.tonic and c.third in (3, 4)]
            assert all((c.third == 4) == (key.mode == "major") for c in tonic), progression.text()
            if style.voicing == "add":
                assert all(c.has_seventh or c.third not in (3, 4) for c in progression.chords), progression.text()
            if style.voicing == "triads":
                assert not any(c.has_seventh for c in progression.chords), progression.text()
            if any(c.root == key.tonic for c in progression.chords):
                # rotated to open on the tonic where a tonic chord starts on a bar line
                starts = [sum(progression.beats[:i]) for i in range(len(progression.beats))]
                if any(c.root == key.tonic and b % 4 == 0 for c, b in zip(progression.chords, starts)):
                    assert progression.chords[0].root == key.tonic, progression.text()


def vamps(genre: str) -> bool:
    return any(source_table(s)["vamp_share"]["all"] >= VAMP_SOURCE_SHARE for s, _ in GENRE_HARMONY[genre].sources)


def test_the_sources_that_vamp_are_funk_and_disco():
    """One-chord 4-bar windows in the real data (each song weighing the same): Billboard
    funk 42%, disco 18%; soul, rock, WJD 12-13%; pop, country 8%; POP909 1% (docs/harmony.md)."""
    vamping = {name for name, table in load_table()["sources"].items()
               if table["vamp_share"]["all"] >= VAMP_SOURCE_SHARE}
    assert vamping == {"billboard_funk", "billboard_disco"}
    assert {g for g in GENRES if vamps(g)} == {"funk", "house"}


@pytest.mark.parametrize("genre", GENRES)
def test_two_chords_per_four_bars_unless_the_real_source_vamps(genre):
    for mode in ("major", "minor"):
        candidates = default_candidates(genre, mode)
        total = sum(c.weight for c in candidates)
        one_chord = [c for c in candidates if len({x.root for x in romans_in_key(list(c.romans), Key(0, mode))}) == 1]
        share = sum(c.weight for c in one_chord) / total
        if not vamps(genre):
            assert one_chord == [], (genre, mode, [c.romans for c in one_chord])
            continue
        # exactly the share of one-chord windows of the genre's vamping sources
        expected = sum(weight * draw_shares(source, mode)["vamp"] for source, weight in GENRE_HARMONY[genre].sources)
        assert share == pytest.approx(expected, abs=1e-9)
        assert 0.04 < share < 0.5, (genre, mode, share)
        # and one chord means the tonic: a vamp on IV would make IV the tonic of the loop
        assert all(romans_in_key(list(c.romans), Key(0, mode))[0].root == 0 for c in one_chord)
    draws = [default_progression(genre, keyed(k), seed) for k in ("D major", "G minor") for seed in range(100)]
    moving = sum(len({c.root for c in d.chords}) >= 2 for d in draws) / len(draws)
    assert moving == 1.0 if not vamps(genre) else moving >= 0.5, (genre, moving)


@pytest.mark.parametrize("genre", ["rock", "soul", "jazz", "pop", "trap"])
def test_chords_outside_the_key_stay_in_their_real_share(genre):
    """Secondary dominants, borrowed bVII and iv, the major V of a minor key: as often as
    the real windows have them (the top of a list is mostly diatonic, so the kinds are
    weighted to the data's shares)."""
    for mode in ("major", "minor"):
        key = Key(0, mode)
        candidates = default_candidates(genre, mode)
        total = sum(c.weight for c in candidates)
        moving = [c for c in candidates if len({x.root for x in romans_in_key(list(c.romans), key)}) > 1]
        outside = [c for c in moving if any(out_of_key(x, key) for x in romans_in_key(list(c.romans), key))]
        expected = sum(w * draw_shares(s, mode)["outside"] for s, w in GENRE_HARMONY[genre].sources)
        assert sum(c.weight for c in outside) / total == pytest.approx(expected, abs=1e-9)
        assert expected > 0.2, (genre, mode, expected)
    rock = {chord_symbol(c, C_MAJOR) for seed in range(200) for c in default_progression("rock", C_MAJOR, seed).chords}
    assert {"Bb", "Eb", "Ab", "D"} <= rock  # bVII, bIII, bVI and II (V/V) from the Billboard rock songs
    jazz = [default_progression("jazz", C_MAJOR, seed).text() for seed in range(200)]
    assert any("A7" in text for text in jazz)  # V7/ii, the secondary dominant of jazz changes


def test_defaults_are_deterministic_per_seed_and_vary_across_seeds():
    for genre in ("lofi", "pop", "techno", "jazz", "funk"):
        for key in (C_MAJOR, A_MINOR):
            draws = [default_progression(genre, key, seed) for seed in range(10)]
            assert draws == [default_progression(genre, key, seed) for seed in range(10)]
            assert len({d.text() for d in draws}) >= 3, genre


def test_the_same_seed_in_another_key_is_the_same_progression_transposed():
    for genre in ("lofi", "rock", "jazz"):
        a = default_progression(genre, keyed("C minor"), 11)
        b = default_progression(genre, keyed("F# minor"), 11)
        assert a.romans == b.romans and a.beats == b.beats
        assert [c.transposed(6) for c in a.chords] == list(b.chords)


def test_jazz_defaults_are_jazz_changes():
    """ii7-V7 (a minor 7th or m7b5 chord, then a dominant 7th a fourth up) in half the jazz
    defaults drawn from WJD, in few soul ones and in no pop ones."""
    def has_two_five(progression: Progression) -> bool:
        pairs = zip(progression.chords, progression.chords[1:] + progression.chords[:1])
        return any(chord_quality(a) in ("min7", "hdim7") and chord_quality(b) == "7" and (b.root - a.root) % 12 == 5
                   for a, b in pairs)

    def share(genre: str, key: Key) -> float:
        return sum(has_two_five(default_progression(genre, key, seed)) for seed in range(200)) / 200

    for key in (C_MAJOR, A_MINOR):
        assert share("jazz", key) >= 0.35 and share("soul", key) <= 0.2 and share("pop", key) == 0.0


@pytest.mark.parametrize("loop", [8, 4, 2, 1])
def test_default_chords_fit_the_loop_and_open_on_the_tonic(loop):
    for genre in GENRES:
        opened = 0
        for seed in range(20):
            key_name = ("C major", "A minor")[seed % 2]
            conditions = Conditions(genre=genre, key=key_name, seed=seed, loop=loop, bars=8)
            progression = parse_progression(default_chords(conditions), keyed(key_name))
            assert loop % progression.cycle_bars == 0, (genre, loop, progression.text())
            opened += progression.chords[0].root == keyed(key_name).tonic
        assert opened >= 18, (genre, loop, opened)


def test_default_figures_report_what_the_defaults_do():
    figures = default_figures("rock", seeds=10, keys=("C major", "A minor"))
    assert figures.draws == 20 and figures.moving_share == 1.0
    assert 2 <= figures.chords_per_4_bars <= 8 and 0.25 <= figures.tonic_bar_share <= 0.75
    assert figures.candidates["major"] >= 100 and sum(figures.sources.values()) == 20


def test_shipped_table_is_sourced_and_readable():
    assert TABLE_PATH.stat().st_size < 250_000
    table = load_table()
    assert table["source"] == "POP909, Wang et al. 2020, MIT"  # the POP909 lists stay where they were
    assert set(table["sources"]) == set(SOURCE_NAMES)
    assert table["sources"]["billboard_soul"]["credit"].startswith("McGill Billboard Project, Burgoyne, Wild and "
                                                                  "Fujinaga 2011")
    assert table["sources"]["wjd"]["credit"].startswith("Weimar Jazz Database (Pfleiderer, Frieler, Abesser, "
                                                       "Zaddach, Burkhart 2017), via jazzodata (MIT)")
    for name in SOURCE_NAMES:
        source = table["sources"][name]
        assert source["windows"]["major"] >= 200 and 0 <= source["vamp_share"]["all"] < 0.5
        assert 1 <= source["chords_per_4_bars"]["all"] <= 8
        for mode in ("major", "minor"):
            entries = source_entries(name, mode)
            assert 1 <= len(entries) <= 150
            assert [e["songs"] for e in entries] == sorted((e["songs"] for e in entries), reverse=True)
            for entry in entries:
                assert sum(entry["beats"]) == 4 * entry["cycle_bars"] and entry["cycle_bars"] in (1, 2, 4)
                assert all(parse_roman(r, Key(0, mode)) for r in entry["romans"].split())
    # jazz changes keep their 7ths, rock counts triads
    assert any(e["romans"] == "ii7 V7 Imaj7" for e in source_entries("wjd", "major")[:10])
    assert not any("7" in e["romans"] for e in source_entries("billboard_rock", "major"))


# ---------------------------------------------------------------------- prompt finder


@pytest.mark.parametrize("prompt, found", [
    pytest.param("lofi 80bpm, chords Am F C G, chill", "Am F C G", id="chords-symbols"),
    pytest.param("chords: i VI III VII", "i VI III VII", id="chords-romans"),
    pytest.param("progression ii-V-I", "ii-V-I", id="progression-ii-V-I"),
    pytest.param("house over Am F C G", "Am F C G", id="over"),
    pytest.param("chords Am F | C G, 16 bars", "Am F | C G", id="bars"),
    pytest.param("chord progression: Am7 Dm7 G7 Cmaj7.", "Am7 Dm7 G7 Cmaj7", id="chord-progression"),
    pytest.param("chords: Am, F, C, G", "Am F C G", id="comma-separated"),
    pytest.param("pop, progression vi-IV-I-V", "vi IV I V", id="dashed-romans"),
    pytest.param("trap in C, chords Cm", "Cm", id="one-chord"),
    pytest.param("lofi Am F C G", "Am F C G", id="three-capital-symbols"),
    pytest.param("axis progression in A minor", "axis", id="axis"),
    pytest.param("andalusian cadence, flamenco vibe", "andalusian", id="andalusian"),
    pytest.param("jazz 2-5-1", "ii-V-I", id="2-5-1"),
    pytest.param("doo-wop chords", "doo-wop", id="doo-wop"),
    pytest.param("50s progression, slow", "doo-wop", id="50s"),
])
def test_prompt_finder_fires(prompt, found):
    assert progression_in_prompt(prompt) == found
    parse_progression(found, A_MINOR)  # what it finds always parses


@pytest.mark.parametrize("prompt", [
    "lofi 80bpm in F minor, chill", "house 124 bpm, 16 bars, busy", "drum & bass",
    "techno 130, 16 bars, hard", "lofi hip hop 80bpm in F minor, chill", "rock in E, A and D",
    "lofi with jazzy chords, 80 bpm", "house over Am", "chords i love", "I am over it, am I? a bad day",
    "50s rock", "lo-fi hip-hop", "r-and-b groove at 90", "boom bap in Bb, dusty", "a-b-c",
    "deep house, 4 on the floor", "trap 140, dark, C#m",
])
def test_prompt_finder_does_not_fire_on_ordinary_prompts(prompt):
    assert progression_in_prompt(prompt) is None


@pytest.mark.parametrize("kind", ["words", "chords", "cue-words", "dashes", "spaces", "random"])
def test_prompt_finder_is_linear_on_long_prompts(kind):
    rng = random.Random(0)
    text = {
        "words": "lofi chill vibes at 80 bpm in F minor, " * 600,
        "chords": "Am F C G " * 3000,
        "cue-words": "chords over progression " * 1000,
        "dashes": "ii-" * 7000,
        "spaces": " " * 19999 + "x",
        "random": " ".join("".join(rng.choice("abcdefgiv#-|") for _ in range(rng.randint(1, 7)))
                           for _ in range(4000)),
    }[kind][:20_000]
    assert len(text) == 20_000

    def seconds() -> float:
        start = time.perf_counter()
        progression_in_prompt(text)
        return time.perf_counter() - start

    # best of three, so a stall of a busy machine is not read as backtracking: linear finding takes
    # 10-25 ms here, the quadratic patterns this guards against took seconds (a 15 KB key: 47 s)
    assert min(seconds() for _ in range(3)) < 0.25


# ------------------------------------------------------------------------- extraction


def test_cycles_are_reduced_to_their_shortest_loop():
    assert cycle_of(["I", "I", "V", "V", "vi", "vi", "IV", "IV"]) == (("I", "V", "vi", "IV"), (4, 4, 4, 4))
    assert cycle_of(["i", "VI", "i", "VI", "i", "VI", "i", "VI"]) == (("i", "VI"), (2, 2))
    assert cycle_of(["i", "i", "VI", "VI", "i", "i", "VI", "VI"]) == (("i", "VI"), (4, 4))
    assert cycle_of(["I"] * 8) == (("I",), (4,))
    assert cycle_of(["I", "I", "I", "V", "vi", "vi", "IV", "IV"]) == (("I", "V", "vi", "IV"), (6, 2, 4, 4))


def test_song_windows_find_the_phrase_after_a_pickup_bar():
    loop = [parse_chord(label) for label in ("C:maj", "A:min", "F:maj", "G:7")]
    spans = [ChordSpan(0, BAR, parse_chord("G:maj"))]  # a pickup bar before the loop
    spans += [ChordSpan(BAR * (1 + i), BAR * (2 + i), loop[i % 4]) for i in range(16)]
    skipped: Counter = Counter()
    windows = song_windows(spans, [(0, 17 * BAR, C_MAJOR)], False, skipped)
    assert windows == [("major", ("I", "vi", "IV", "V"), (4, 4, 4, 4))] * 4


def test_song_windows_keep_clear_of_a_key_change_and_of_missing_chords():
    chord = parse_chord("C:maj")
    spans = [ChordSpan(b * BAR, (b + 1) * BAR, chord) for b in range(24) if b != 2]  # bar 2 has no chord
    keys = [(0, 12 * BAR, C_MAJOR), (12 * BAR, 24 * BAR, Key(0, "minor"))]  # key change at bar 12
    skipped: Counter = Counter()
    windows = song_windows(spans, keys, False, skipped)
    # windows at bars 0 (missing chord), 4, 8 and 12 (within 2 bars of the change), 16, 20
    assert skipped == Counter({"window without a chord on every half bar": 1, "window near a key change": 2})
    assert windows == [("major", ("I",), (4,)), ("minor", ("I",), (4,)), ("minor", ("I",), (4,))]


@pytest.mark.skipif(not POP909.is_dir(), reason="POP909 (../shared/data/pop909) is not on this machine")
def test_extraction_on_twenty_real_pop909_songs():
    table = extract_progressions(POP909, max_songs=20)
    assert table["songs_read"] == 20 and table["songs_used"] >= 15
    assert sum(table["windows"].values()) >= 150
    for mode, entries in table["modes"].items():
        for entry in entries:
            key = Key(0, mode)
            assert all(parse_roman(r, key) for r in entry["romans"].split())
            assert sum(entry["beats"]) == 4 * entry["cycle_bars"] and entry["cycle_bars"] in (1, 2, 4)
    # song 001 (Gb major) opens its verse with B C# Bbm Ebm: IV V iii vi
    assert any(e["romans"].startswith("IV V iii vi") for e in table["modes"]["major"])
    assert extract_progressions(POP909, max_songs=20) == table  # deterministic
    # every progression of these songs is counted in the shipped table no more often
    shipped = {(m, e["romans"], tuple(e["beats"])): e["songs"] for m in ("major", "minor")
               for e in load_table()["modes"][m]}
    for mode, entries in table["modes"].items():
        for entry in entries:
            assert entry["songs"] <= shipped.get((mode, entry["romans"], tuple(entry["beats"])), 10**6)


ALL_DATA = all(path.is_dir() for path in (POP909, BILLBOARD, WJD))


@pytest.mark.skipif(not ALL_DATA, reason="POP909, Billboard and WJD (../shared/data) are not on this machine")
def test_the_table_builds_deterministically_from_the_first_songs(tmp_path):
    table = build_table(POP909, BILLBOARD, WJD, max_songs=20)
    assert set(table["sources"]) == set(SOURCE_NAMES)
    assert table["modes"] == extract_progressions(POP909, max_songs=20)["modes"]  # POP909 stays on top
    write_table(table, tmp_path / "a.json")
    write_table(build_table(POP909, BILLBOARD, WJD, max_songs=20), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text()) == table
    assert not list(tmp_path.glob("*.tmp"))  # written to a temporary file and moved into place
    wjd = table["sources"]["wjd"]
    assert wjd["labels"] == "sevenths" and wjd["songs_read"] <= 20 and sum(wjd["windows"].values()) >= 200


@pytest.mark.slow
@pytest.mark.skipif(not ALL_DATA, reason="POP909, Billboard and WJD (../shared/data) are not on this machine")
def test_the_shipped_table_is_what_the_build_writes(tmp_path):
    out = tmp_path / "progressions.json"
    assert harmony_main(["build", "--out", str(out)]) == 0
    assert out.read_bytes() == TABLE_PATH.read_bytes()


def test_the_build_names_a_missing_data_folder(tmp_path, capsys):
    assert harmony_main(["build", "--billboard", str(tmp_path), "--out", str(tmp_path / "t.json")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {tmp_path}: no McGill-Billboard here") and error.count("\n") == 1
    assert not (tmp_path / "t.json").exists()


# ------------------------------------------------------------------- Billboard reader

BILLBOARD_SONG = """# title: Test Song
# artist: The Rolling Stones
# metre: 4/4
# tonic: A

0.0\tsilence
0.5\tA, intro, | A:min | * | N | A:min |, (guitar)
8.1\tB, verse, | A:min . G:maj . | F:maj | C:maj/5 | E:7 |, (voice
15.0\t| D:min7 E:7(#9) | A:min | (2/4) G:maj | A:5 |
22.0\tfadeout, | A:min | x2
29.0\tC, chorus, | C:maj | G:sus4(b7,9) | A:min | F:maj7 |, voice)
# tonic: C
36.0\tD, bridge, | C:maj | F:maj | G:7 | C:maj | ->
44.0\tsilence
45.0\tend
"""


def write_billboard(folder: Path, songs: dict[str, str], index: str | None = None) -> Path:
    for song_id, text in songs.items():
        (folder / "McGill-Billboard" / song_id).mkdir(parents=True)
        (folder / "McGill-Billboard" / song_id / "salami_chords.txt").write_text(text)
    if index is not None:
        (folder / "billboard-2.0-index.csv").write_text(index)
    return folder


def test_billboard_song_reads_sections_bars_and_chords(tmp_path):
    write_billboard(tmp_path, {"0007": BILLBOARD_SONG})
    song = read_billboard_song(tmp_path / "McGill-Billboard" / "0007" / "salami_chords.txt")
    assert (song.song_id, song.title, song.artist, song.style, song.metre) == \
        ("0007", "Test Song", "The Rolling Stones", "rock", "4/4")
    assert song.key == Key(9, "minor")  # the tonic chord A:min
    assert [(s.letter, s.function, len(s.bars)) for s in song.sections] == \
        [("A", "intro", 4), ("B", "verse", 10), ("C", "chorus", 4), ("D", "bridge", 4)]  # fadeout continues B
    intro, verse, chorus, bridge = song.sections
    assert intro.start_seconds == 0.5 and intro.bars[1].chords == (None,) and intro.bars[2].labels == ("N",)
    first = verse.bars[0]
    assert first.labels == ("A:min", "A:min", "G:maj", "G:maj") and first.beats == 4  # '.' repeats a beat
    assert first.beat_chords() == (make_chord(9, "min"),) * 2 + (make_chord(7, "maj"),) * 2
    assert verse.bars[2].chords == (make_chord(0, "maj", bass=7),)  # C:maj/5
    assert verse.bars[4].beat_chords() == (make_chord(2, "min7"),) * 2 + (make_chord(4, "7"),) * 2
    assert verse.bars[6].beats == 2 and verse.bars[6].beat_chords() == (make_chord(7, "maj"),) * 2  # (2/4)
    assert verse.bars[7].chords[0].third == 7 and chord_tones(verse.bars[7].chords[0]) == {9, 4}  # A:5
    assert verse.bars[8:] == (verse.bars[8],) * 2  # x2
    assert chorus.bars[1].chords == (make_chord(7, "7sus4"),)
    assert bridge.bars[0].key == Key(0, "major")  # '# tonic: C' mid-song, major by its tonic chords


@pytest.mark.parametrize("read, label, chord", [
    pytest.param(harte_chord, "A:min", make_chord(9, "min"), id="billboard min"),
    pytest.param(harte_chord, "C:7(#9)", make_chord(0, "7"), id="billboard 7#9"),
    pytest.param(harte_chord, "B:sus4(b7,9)", make_chord(11, "7sus4"), id="billboard sus4b7-9"),
    pytest.param(harte_chord, "F:min/b3", make_chord(5, "min", bass=8), id="billboard min-first-inversion"),
    pytest.param(harte_chord, "Eb:11", make_chord(3, "7"), id="billboard 11"),
    pytest.param(harte_chord, "D:maj6(9)", make_chord(2, "maj6"), id="billboard maj6-9"),
    pytest.param(harte_chord, "G:hdim7", make_chord(7, "hdim7"), id="billboard hdim7"),
    pytest.param(harte_chord, "C:1(b3,b7)", make_chord(0, "min7"), id="billboard 1-with-degrees"),
    pytest.param(harte_chord, "E:aug(b7)", make_chord(4, "aug7"), id="billboard aug7"),
    pytest.param(harte_chord, "Db:maj(9)/3", make_chord(1, "maj", bass=5), id="billboard slash-third"),
    pytest.param(parse_wjd_chord, "Bb6", make_chord(10, "maj6"), id="wjd Bb6"),
    pytest.param(parse_wjd_chord, "C-7", make_chord(0, "min7"), id="wjd C-7"),
    pytest.param(parse_wjd_chord, "F7", make_chord(5, "7"), id="wjd F7"),
    pytest.param(parse_wjd_chord, "Fj7", make_chord(5, "maj7"), id="wjd Fj7"),
    pytest.param(parse_wjd_chord, "G7alt", make_chord(7, "7"), id="wjd G7alt"),
    pytest.param(parse_wjd_chord, "Bbo7", make_chord(10, "dim7"), id="wjd Bbo7"),
    pytest.param(parse_wjd_chord, "Bbo", make_chord(10, "dim"), id="wjd Bbo"),
    pytest.param(parse_wjd_chord, "C-7b5", make_chord(0, "hdim7"), id="wjd C-7b5"),
    pytest.param(parse_wjd_chord, "Am7b5", make_chord(9, "hdim7"), id="wjd Am7b5"),
    pytest.param(parse_wjd_chord, "Ebj7911#", make_chord(3, "maj7"), id="wjd Ebj7911#"),
    pytest.param(parse_wjd_chord, "F79#", make_chord(5, "7"), id="wjd F79#"),
    pytest.param(parse_wjd_chord, "C79b13b", make_chord(0, "7"), id="wjd C79b13b"),
    pytest.param(parse_wjd_chord, "Fsus7913", make_chord(5, "7sus4"), id="wjd Fsus7913"),
    pytest.param(parse_wjd_chord, "Bbsus", make_chord(10, "sus4"), id="wjd Bbsus"),
    pytest.param(parse_wjd_chord, "G-6", make_chord(7, "min6"), id="wjd G-6"),
    pytest.param(parse_wjd_chord, "C-69", make_chord(0, "min6"), id="wjd C-69"),
    pytest.param(parse_wjd_chord, "D-j7", make_chord(2, "minmaj7"), id="wjd D-j7"),
    pytest.param(parse_wjd_chord, "C+7", make_chord(0, "aug7"), id="wjd C+7"),
    pytest.param(parse_wjd_chord, "F#-", make_chord(6, "min"), id="wjd F#-"),
    pytest.param(parse_wjd_chord, "Eb", make_chord(3, "maj"), id="wjd Eb"),
    pytest.param(parse_wjd_chord, "Eb-7/Bb", make_chord(3, "min7", bass=10), id="wjd slash"),
])
def test_chord_labels_of_the_data_sets(read, label, chord):
    """Billboard's Harte labels and WJD's symbols read as the chords they name."""
    assert read(label) == chord


def test_harte_power_chords_and_no_chord():
    power = harte_chord("E:5")
    assert power.root == 4 and chord_tones(power) == {4, 11} and not power.has_seventh
    assert chord_tones(harte_chord("G:1")) == {7}
    assert harte_chord("E:5(b7)").has_seventh
    # counted as the key's own triad on the root, as sus chords are
    assert window_label(power, Key(4, "minor")) == "i" and window_label(power, Key(9, "minor")) == "v"
    assert harte_chord("N") is None and harte_chord("C:xyz") is None and harte_chord("H:maj") is None


@pytest.mark.parametrize("line, says", [
    pytest.param("1.0\tA, verse, | A:min | Q:min |", "'Q:min' is not a chord label", id="bad-chord"),
    pytest.param("1.0\tA, verse, | . A:min |", "cannot begin with '.'", id="leading-dot"),
    pytest.param("1.0\tA, verse, | A:min | (x/4) A:min |", "is not a metre", id="bad-metre"),
    pytest.param("one\tA, verse, | A:min |", "time in seconds", id="no-time"),
])
def test_billboard_errors_name_the_file_and_line(tmp_path, line, says):
    path = tmp_path / "salami_chords.txt"
    path.write_text("# title: T\n# artist: A\n# metre: 4/4\n# tonic: C\n\n" + line + "\n")
    with pytest.raises(HarmonyDataError) as caught:
        read_billboard_song(path)
    assert str(caught.value).startswith(f"{path}:6: ") and says in str(caught.value)


def test_billboard_folder_reads_the_index_skips_bad_files_and_repeats(tmp_path):
    swapped = BILLBOARD_SONG.replace("# title: Test Song", "# title: Chicago").replace(
        "# artist: The Rolling Stones", "# artist: 25 or 6 to 4")
    index = ("id\tchart_date\ttarget_rank\tactual_rank\ttitle\tartist\tpeak_rank\tweeks_on_chart\n"
             "3\t1970-01-01\t1\t1\t25 Or 6 To 4\tChicago\t4\t10\n"
             "4\t1976-09-25\t16\t15\tGetaway\t\"Earth\t Wind & Fire\"\t12\t19\n"
             "9\t1970-01-01\t1\t1\t\t\t\t\n")
    write_billboard(tmp_path, {"0003": swapped, "0004": BILLBOARD_SONG, "0005": BILLBOARD_SONG,
                               "0006": "# title: X\n# metre: 4/4\n# tonic: C\n1.0\t| C:what |\n"}, index)
    skipped: Counter = Counter()
    songs = read_billboard(tmp_path, skipped)
    assert [(s.song_id, s.title, s.artist, s.style) for s in songs] == [
        ("0003", "25 Or 6 To 4", "Chicago", "rock"),  # the index undoes the file's swapped header
        ("0004", "Getaway", "Earth, Wind & Fire", "funk"),  # a tab in a quoted field was a comma
        ("0005", "Test Song", "The Rolling Stones", "rock")]
    assert skipped["song: 'C:what' is not a chord label like A:min or G:7"] == 1
    write_billboard(tmp_path / "again", {"0001": BILLBOARD_SONG, "0002": BILLBOARD_SONG})
    assert [s.song_id for s in read_billboard(tmp_path / "again", skipped)] == ["0001"]  # the same song once
    assert skipped["song: a second annotation of the same song"] == 1


def test_artist_styles():
    assert style_for("The Rolling Stones") == style_for("Rolling Stones") == "rock"
    assert style_for("Earth, Wind & Fire") == style_for("Earth Wind and Fire") == "funk"
    assert style_for("James Brown") == "funk" and style_for("Donna Summer") == "disco"
    assert style_for("Aretha Franklin") == "soul" and style_for("Dolly Parton") == "country"
    assert style_for("Cyndi Lauper") == "pop" and style_for("somebody new") == "pop"
    assert set(ARTIST_STYLES.values()) == set(BILLBOARD_STYLES) - {"pop"}
    assert all(name == normalise_artist(name) for name in ARTIST_STYLES)


def test_billboard_windows_start_at_sections_of_the_song_body(tmp_path):
    write_billboard(tmp_path, {"0007": BILLBOARD_SONG})
    song = read_billboard_song(tmp_path / "McGill-Billboard" / "0007" / "salami_chords.txt")
    skipped: Counter = Counter()
    windows = billboard_windows([song], skipped)
    am = Key(9, "minor")
    labels = [(w.key, cycle_of([window_label(c, w.key) for c in w.chords])) for w in windows]
    # the intro is not counted; the verse's second window has a 2/4 bar; the fade-out's 2 bars are too few
    assert labels == [(am, (("i", "VII", "VI", "III", "V"), (2, 2, 4, 4, 4))),
                      (am, (("III", "VII", "i", "VI"), (4, 4, 4, 4))),  # G:sus4(b7,9) as the key's VII
                      (Key(0, "major"), (("I", "IV", "V", "I"), (4, 4, 4, 4)))]
    assert skipped["section not of the song's body (intro, outro, solo, interlude...)"] == 1
    assert skipped["window not in 4/4"] == 1


def test_count_windows_figures():
    c, f, g, am = (make_chord(0, "maj"), make_chord(5, "maj"), make_chord(7, "7"), make_chord(9, "min"))
    d7 = make_chord(2, "7")
    windows = [Window("one", C_MAJOR, (c,) * 8),  # a vamp
               Window("two", C_MAJOR, (c, c, f, f, g, g, c, c)),
               Window("two", C_MAJOR, (c, c, f, f, g, g, c, c)),
               Window("three", C_MAJOR, (am, am, d7, d7, g, g, c, c))]  # D7 is V7/V: outside C major
    triads = count_windows(windows, sevenths=False)
    assert triads["modes"]["major"][0] == {"romans": "I IV V I", "beats": [4, 4, 4, 4], "cycle_bars": 4,
                                           "songs": 1, "windows": 2}
    # every song weighs the same: song "two" counts once however many windows it has
    assert triads["vamp_share"] == {"major": 0.3333, "minor": 0.0, "all": 0.3333}
    assert triads["chords_per_4_bars"]["major"] == (1 + 4 + 4) / 3
    assert triads["tonic_bar_share"]["major"] == round((1 + 2 / 4 + 1 / 4) / 3, 4)
    assert triads["out_of_key_share"]["major"] == 0.3333 and triads["out_of_key_share_moving"]["major"] == 0.5
    assert triads["songs_used"] == 3 and triads["windows"] == {"major": 4, "minor": 0}
    sevenths = count_windows(windows, sevenths=True)
    assert {e["romans"] for e in sevenths["modes"]["major"]} == {"I", "I IV V7 I", "vi II7 V7 I"}
    assert sevenths["out_of_key_share"]["major"] == 0.3333


# ------------------------------------------------------------------------ WJD reader


def test_wjd_no_chord_and_keys():
    assert parse_wjd_chord("NC") is None and parse_wjd_chord("H7") is None and parse_wjd_chord("") is None
    assert parse_wjd_key("Bb-maj") == Key(10, "major") and parse_wjd_key("C-min") == Key(0, "minor")
    assert parse_wjd_key("F-blues") == Key(5, "major") and parse_wjd_key("D-dor") == Key(2, "minor")
    assert parse_wjd_key("D-chrom") is None and parse_wjd_key("") is None


def write_wjd(folder: Path) -> Path:
    """Two solos in the real files' layout: a 4/4 one (with a pickup bar and a 1/4 bar) and a 3/4 one."""
    pd = pytest.importorskip("pandas")
    pyreadr = pytest.importorskip("pyreadr")
    folder.mkdir(parents=True, exist_ok=True)
    meta = pd.DataFrame({"melid": [1, 2], "performer": ["Art Pepper", "Someone"], "title": ["Anthropology", "Waltz"],
                         "key": ["Bb-maj", "C-maj"], "style": ["COOL", "BEBOP"], "rhythmfeel": ["SWING", "SWING"],
                         "signature": ["4/4", "3/4"]})
    rows = []
    changes = [("NC",) * 4, ("Bb6", "Bb6", "G7", "G7"), ("C-7", "C-7", "F7", "F7"), ("Bb", "Bb", "G-7", "G-7"),
               ("C-7", "C-7", "F7", "F7"), ("F-7",) * 4, ("Bb7",) * 4, ("Ebj7",) * 4, ("Ab7",) * 4]
    keys = {"NC": None, "G7": "C-maj", "F-7": "Eb-maj", "Bb7": "Eb-maj", "Ebj7": "Eb-maj", "Ab7": "Eb-maj"}
    for bar, chords in enumerate(changes, -1):
        for beat, chord in enumerate(chords, 1):
            rows.append({"melid": 1, "bar": bar, "beat": beat, "signature": "'4/4'", "chord": chord,
                         "bass": 46.0 + beat if chord != "NC" else float("nan"), "form": "A1" if bar < 8 else "B1",
                         "chorus_id": 1, "local_key": keys.get(chord, "Bb-maj")})
    rows.append({"melid": 1, "bar": 8, "beat": 1, "signature": "'1/4'", "chord": "Bb6", "bass": 46.0,
                 "form": "B1", "chorus_id": 1, "local_key": "Bb-maj"})
    rows += [{"melid": 2, "bar": 0, "beat": b, "signature": "'3/4'", "chord": "C", "bass": 48.0, "form": "A1",
              "chorus_id": 1, "local_key": "C-maj"} for b in (1, 2, 3)]
    pyreadr.write_rdata(str(folder / "wjd_meta.rda"), meta, df_name="wjd_meta")
    pyreadr.write_rdata(str(folder / "wjd_annotated_beat_tracks.rda"), pd.DataFrame(rows),
                        df_name="wjd_annotated_beat_tracks")
    return folder


def test_wjd_reader_on_files_in_the_real_layout(tmp_path):
    skipped: Counter = Counter()
    solos = read_wjd(write_wjd(tmp_path / "wjd"), skipped)
    assert len(solos) == 1
    solo = solos[0]
    assert (solo.melid, solo.performer, solo.title, solo.key, solo.rhythm_feel, solo.signature) == \
        (1, "Art Pepper", "Anthropology", Key(10, "major"), "SWING", "4/4")
    assert [bar.number for bar in solo.bars] == list(range(8))  # the pickup (-1) and the 1/4 bar left out
    first = solo.bars[0]
    assert first.symbols == ("Bb6", "Bb6", "G7", "G7") and first.form == "A1" and first.chorus == 1
    assert first.chords == (make_chord(10, "maj6"),) * 2 + (make_chord(7, "7"),) * 2
    assert first.local_keys == (Key(10, "major"),) * 2 + (Key(0, "major"),) * 2
    assert first.bass == (47, 48, 49, 50)
    assert skipped == Counter({"solo: metre 3/4, not 4/4": 1, "bar: not four beats of 4/4 (pickup or odd bar)": 2})
    windows = wjd_windows(solos, Counter())
    assert [(w.song, w.key, cycle_of([window_label(c, w.key, True) for c in w.chords])) for w in windows] == [
        ("anthropology", Key(10, "major"), (("I6", "VI7", "ii7", "V7", "I", "vi7", "ii7", "V7"), (2,) * 8)),
        ("anthropology", Key(3, "major"), (("ii7", "V7", "Imaj7", "IV7"), (4, 4, 4, 4)))]


def test_wjd_reader_says_what_is_missing(tmp_path):
    with pytest.raises(HarmonyDataError, match=r"wjd_meta\.rda: cannot read wjd_meta"):
        read_wjd(tmp_path)


# ----------------------------------------------------------------------- real data sets


@pytest.mark.skipif(not BILLBOARD.is_dir(), reason="Billboard (../shared/data/billboard) is not on this machine")
def test_real_billboard():
    skipped: Counter = Counter()
    songs = read_billboard(BILLBOARD, skipped)
    assert len(songs) == 741 and skipped == Counter({"song: a second annotation of the same song": 149})
    styles = Counter(song.style for song in songs)
    assert styles["rock"] >= 150 and styles["soul"] >= 100 and styles["funk"] >= 20 and styles["disco"] >= 25
    by_id = {song.song_id: song for song in songs}
    brown = by_id["0003"]
    assert (brown.title, brown.artist, brown.style, brown.metre, brown.key) == \
        ("I Don't Mind", "James Brown", "funk", "6/8", Key(0, "major"))
    friend = by_id["0004"]
    assert friend.key == Key(8, "major") and friend.artist == "Roberta Flack, Donny Hathaway"
    assert [s.function for s in friend.sections][:4] == ["intro", "verse", "pre-chorus", "chorus"]
    assert friend.sections[1].bars[1].beat_chords() == (make_chord(0, "7", bass=7),) * 2 + (make_chord(0, "7"),) * 2
    sections = sum(len(song.sections) for song in songs)
    assert sections > 5000 and sum(len(song.bars) for song in songs) > 60_000


@pytest.mark.skipif(not WJD.is_dir(), reason="WJD (../shared/data/wjd) is not on this machine")
def test_real_wjd():
    skipped: Counter = Counter()
    solos = read_wjd(WJD, skipped)
    assert len(solos) == 435 and sum(len(s.bars) for s in solos) > 30_000
    assert not any(key.startswith("chord symbols") for key in skipped)  # every symbol read
    anthropology = solos[0]
    assert anthropology.title == "Anthropology" and anthropology.key == Key(10, "major")
    assert anthropology.bars[1].symbols == ("Bb6", "Bb6", "G7", "G7")
    bass = [p for solo in solos for bar in solo.bars for p in bar.bass]
    assert sum(p is not None for p in bass) / len(bass) > 0.9 and 28 <= min(p for p in bass if p) <= 50
    feels = Counter(solo.rhythm_feel for solo in solos)
    assert feels["SWING"] > 300 and feels["FUNK"] >= 15
