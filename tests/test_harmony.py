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

from stemforge.symbolic import corpus_rules as rules
from stemforge.symbolic.conditions import GENRES, ConditionError, Key, parse_key
from stemforge.symbolic.harmony import (
    BORROWED_ROOTS,
    QUALITIES,
    TABLE_PATH,
    Chord,
    ChordError,
    ChordSpan,
    Progression,
    chord_symbol,
    chord_tones,
    cycle_of,
    default_progression,
    extract_progressions,
    load_table,
    make_chord,
    parse_chord,
    parse_chord_symbol,
    parse_progression,
    parse_roman,
    progression_in_prompt,
    roman_numeral,
    song_windows,
)

REPO = Path(__file__).resolve().parents[1]
POP909 = REPO.parent / "shared" / "data" / "pop909"
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


def in_key(chord: Chord, key: Key) -> bool:
    return (chord.root - key.tonic) % 12 in {(p - key.tonic) % 12 for p in key.scale_pitch_classes} \
        | BORROWED_ROOTS[key.mode]


KEYS = ["C major", "A minor", "F# major", "Eb minor", "Bb major", "C# minor"]


@pytest.mark.parametrize("genre", GENRES)
def test_default_progressions_are_in_key_loop_and_suit_the_genre(genre):
    for key_name in KEYS:
        key = keyed(key_name)
        for seed in range(6):
            progression = default_progression(genre, key, seed)
            assert progression.key == key and progression.cycle_bars in (1, 2, 4)
            assert all(in_key(c, key) for c in progression.chords), (key_name, progression.text())
            tonic = [c for c in progression.chords if c.root == key.tonic]
            assert all((c.third == 4) == (key.mode == "major") for c in tonic), progression.text()
            assert progression.source.startswith("POP909")
            distinct = len(set(progression.chords))
            if genre in ("lofi", "jazz", "soul"):
                assert all(c.has_seventh for c in progression.chords)
            if genre in ("pop", "rock", "reggae", "latin", "afrobeat", "funk"):
                assert not any(c.has_seventh for c in progression.chords) and distinct >= 2
            if genre in ("techno", "house", "trap", "dnb", "ambient"):
                assert distinct <= 2 and min(progression.beats) >= 4


def test_defaults_are_deterministic_per_seed_and_vary_across_seeds():
    for genre in ("lofi", "pop", "techno", "jazz"):
        for key in (C_MAJOR, A_MINOR):
            draws = [default_progression(genre, key, seed) for seed in range(10)]
            assert draws == [default_progression(genre, key, seed) for seed in range(10)]
            assert len({d.text() for d in draws}) >= 3, genre


def test_the_same_seed_in_another_key_is_the_same_progression_transposed():
    for genre in ("lofi", "rock"):
        a = default_progression(genre, keyed("C minor"), 11)
        b = default_progression(genre, keyed("F# minor"), 11)
        assert a.romans == b.romans and a.beats == b.beats
        assert [c.transposed(6) for c in a.chords] == list(b.chords)


def test_jazz_leans_to_fifth_motion():
    def fifths(progression: Progression) -> float:
        roots = [c.root for c in progression.chords]
        moves = list(zip(roots, roots[1:] + roots[:1]))
        return sum((b - a) % 12 == 5 for a, b in moves) / len(moves)

    jazz = [fifths(default_progression("jazz", C_MAJOR, s)) for s in range(40)]
    pop = [fifths(default_progression("soul", C_MAJOR, s)) for s in range(40)]
    assert sum(jazz) > sum(pop)


def test_shipped_table_is_small_sourced_and_readable():
    assert TABLE_PATH.stat().st_size < 100_000
    table = load_table()
    assert table["source"] == "POP909, Wang et al. 2020, MIT"
    for mode in ("major", "minor"):
        entries = table["modes"][mode]
        assert 100 <= len(entries) <= 200
        assert [e["songs"] for e in entries] == sorted((e["songs"] for e in entries), reverse=True)
        for entry in entries:
            assert sum(entry["beats"]) == 4 * entry["cycle_bars"] and entry["cycle_bars"] in (1, 2, 4)
            assert all(parse_roman(r, Key(0, mode)) for r in entry["romans"].split())


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


@pytest.mark.slow
@pytest.mark.skipif(not POP909.is_dir(), reason="POP909 (../shared/data/pop909) is not on this machine")
def test_the_shipped_table_is_what_the_build_writes(tmp_path):
    from stemforge.symbolic.harmony import write_table

    write_table(extract_progressions(POP909), tmp_path / "progressions.json")
    assert (tmp_path / "progressions.json").read_bytes() == TABLE_PATH.read_bytes()
