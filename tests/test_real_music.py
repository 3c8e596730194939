"""The real-music reference sets of eval/real_music.py: cutting rules on hand-made notes, and
the loaders on ../shared/data (skipped where it is absent). The checks on real data are the
ones a wrong loader breaks: a misaligned beat grid puts POP909's bass off its chords, a
quantizing GMD loader loses the played velocities and timing."""

from __future__ import annotations

import csv

import pytest

from stemforge.eval.billboard import (
    BillboardError,
    artist_style,
    bar_chord_spans,
    read_billboard,
    read_billboard_song,
)
from stemforge.eval.music_features import (
    GRID_PER_BAR,
    Mean,
    Share,
    figure_values,
    grid_step,
    pool_figures,
    style_figures,
)
from stemforge.eval.real_music import (
    DATASETS,
    RealDataMissing,
    billboard_excerpts,
    cut,
    excerpt_starts,
    freedoom_songs,
    gmd_beats,
    gmd_fill_check,
    gmd_validation,
    load_reference_sets,
    pop909_songs,
    wjd_excerpts,
)
from stemforge.eval.wjd import (
    WjdError,
    parse_wjd_chord,
    parse_wjd_key,
    read_wjd,
    solo_bass,
    solo_chords,
    solo_notes,
)
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.keys import parse_key
from tests.conftest import SHARED_DATA

BAR = 1920


def needs(folder: str):
    path = SHARED_DATA / folder
    return pytest.mark.skipif(not path.is_dir(), reason=f"{path} is not on this machine (real data is never committed)")


@pytest.mark.parametrize(("good", "bars", "starts"), [
    ([True] * 16, 8, [0, 8]),
    ([True, True, False] + [True] * 9, 4, [3, 7]),  # skips past the bad bar, then no overlap
    ([True] * 7, 8, []),
], ids=["two-excerpts", "after-a-bad-bar", "too-short"])
def test_excerpt_starts(good: list[bool], bars: int, starts: list[int]) -> None:
    assert excerpt_starts(good, bars) == starts


def test_cut_keeps_what_was_played_for_the_excerpts_bars() -> None:
    notes = [Note(BAR - 12, 40, 36, 90),  # played just ahead of bar 2's downbeat: belongs to it
             Note(BAR + 500, 4000, 60, 77),  # rings past the excerpt's end: cut there
             Note(2 * BAR - 10, 40, 38, 90),  # ahead of bar 3: not in a 1-bar excerpt of bar 2
             Note(BAR - 40, 40, 42, 90)]  # bar 1
    assert cut(notes, 1, 1) == [Note(0, 40, 36, 90), Note(500, BAR - 500, 60, 77)]


def test_missing_data_is_named_not_fatal(tmp_path) -> None:
    found, missing = load_reference_sets(tmp_path)
    assert found == {} and set(missing) == set(DATASETS)
    assert str(tmp_path / "pop909") in missing["pop909"]
    with pytest.raises(RealDataMissing, match="gmd"):
        gmd_validation(tmp_path)


@needs("gmd")
def test_gmd_validation_drums_are_played_not_quantized() -> None:
    pieces = gmd_validation(SHARED_DATA, max_files=12)
    with open(SHARED_DATA / "gmd" / "info.csv", newline="") as handle:
        validation = {r["id"] for r in csv.DictReader(handle) if r["split"] == "validation"}
    assert pieces and all(p.source.split()[0].removeprefix("gmd:") in validation for p in pieces)
    assert all(set(p.tracks) == {"drums"} and p.bars == 8 for p in pieces)
    assert all(0 <= n.start < 8 * BAR for p in pieces for n in p.tracks["drums"])
    onsets = [n.start for p in pieces for n in p.tracks["drums"]]
    off_grid = sum(1 for t in onsets if t % 40) / len(onsets)
    assert off_grid > 0.5  # raw timing: most hits sit between grid steps...
    assert all(n.start % 40 == 0 for p in pieces[:5] for n in p.snapped()["drums"])  # ...until snapped
    values = figure_values(pool_figures(p.figures for p in pieces))
    assert values["drum_velocities_per_8_bars"] > 20  # a drummer's dynamics, not a programmed beat
    assert values["kick_snare_kept"] > 0.4  # grooves: the backbone mostly holds bar to bar
    assert {p.genre for p in pieces} <= {"rock", "funk", "jazz", "latin", "pop", "soul", "afrobeat", "hiphop", None}


@needs("pop909")
def test_pop909_bass_and_melody_follow_their_annotated_chords() -> None:
    pieces = pop909_songs(SHARED_DATA, max_songs=12)
    assert len(pieces) >= 10
    for piece in pieces:
        assert set(piece.tracks) == {"melody", "bass"} and piece.key is not None and piece.chords
        assert all(0 <= s.start < s.end <= 8 * BAR for s in piece.chords)
        assert all(grid_step(n.start, 480) < 8 * GRID_PER_BAR for n in piece.tracks["melody"])
    values = figure_values(pool_figures(p.figures for p in pieces))
    # chords read one beat late drop these to ~10% and ~60%: the beat grid and chord table line up
    assert values["bass_roots_on_downbeats"] > 0.8
    assert values["melody_chord_tones"] > 0.65
    assert values["in_scale"] > 0.9 and values["key_found"] > 0.4


@needs("freedoom")
def test_freedoom_bass_lines_with_and_without_drums() -> None:
    pieces = freedoom_songs(SHARED_DATA)
    assert pieces and all({"bass", "melody"} <= set(p.tracks) and p.key is None for p in pieces)
    assert {p.genre for p in pieces} <= {"rock", "ambient"}
    rock = [p for p in pieces if "drums" in p.tracks]
    assert rock and all(p.genre == "rock" for p in rock)
    values = figure_values(pool_figures(p.figures for p in rock))
    assert values["bass_self_similarity_lag4"] > 0.3  # songs repeat their riffs
    assert values["kicks_covered"] > 0.3


# ------------------------------------------------------------------ WJD and Billboard readers

def write_wjd(folder, beats_chords: list[str], bass: list[float], notes: list[tuple[int, int, int, int]]) -> None:
    """The three WJD tables of one 4/4 solo in C major: a chord and a bass pitch per beat (bars
    from 0), notes as (bar, beat, mcm_48, pitch)."""
    import pandas as pd
    import pyreadr

    folder.mkdir(parents=True, exist_ok=True)
    meta = pd.DataFrame({"melid": [7], "performer": ["Test Player"], "title": ["Test Tune"], "instrument": ["ts"],
                         "style": ["BEBOP"], "rhythmfeel": ["SWING"], "avgtempo": [180.0], "key": ["C-maj"],
                         "signature": ["4/4"]})
    pyreadr.write_rdata(str(folder / "wjd_meta.rda"), meta, df_name="wjd_meta")
    rows = [(i // 4, i % 4 + 1, i * 0.3, chord, pitch) for i, (chord, pitch) in enumerate(zip(beats_chords, bass))]
    beats = pd.DataFrame({"melid": [7] * len(rows), "bar": [r[0] for r in rows], "beat": [r[1] for r in rows],
                          "onset": [r[2] for r in rows], "signature": ["'4/4'"] * len(rows),
                          "chord": [r[3] for r in rows], "bass": [r[4] for r in rows], "form": ["A1"] * len(rows)})
    pyreadr.write_rdata(str(folder / "wjd_annotated_beat_tracks.rda"), beats, df_name="wjd_annotated_beat_tracks")
    table = pd.DataFrame({"melid": [7] * len(notes), "bar": [n[0] for n in notes], "beat": [n[1] for n in notes],
                          "mcm_48": [n[2] for n in notes], "onset": [n[0] * 1.2 + n[2] * 0.025 for n in notes],
                          "pitch_raw": [n[3] for n in notes], "chord": ["C-7"] * len(notes),
                          "phrase_begin": [1.0] + [0.0] * (len(notes) - 1)})
    pyreadr.write_rdata(str(folder / "wjd_transforms.rda"), table, df_name="wjd_transforms")


def test_wjd_reader_and_excerpts_on_written_tables(tmp_path) -> None:
    chords = ["D-7"] * 8 + ["G7"] * 8 + ["Cj7"] * 16 + ["NC"] * 4 + ["C6"] * 32
    bass = [50.0, 52.0, 53.0, float("nan")] * (len(chords) // 4)
    notes = [(0, 1, 0, 62), (0, 2, 12, 65), (0, 2, 18, 69), (1, 1, 0, 72), (3, 4, 36, 60)]
    write_wjd(tmp_path / "wjd", chords, bass, notes)
    (solo,) = read_wjd(tmp_path / "wjd")
    assert (solo.melid, solo.performer, solo.key, solo.signature) == (7, "Test Player", parse_key("C major"), "4/4")
    assert len(solo.beats) == len(chords) and solo.beats[3].bass_pitch is None and solo.beats[0].bass_pitch == 50
    melody = solo_notes(solo, 0, 480)
    assert [(n.start, n.duration, n.pitch) for n in melody] == [
        (0, 480, 62), (480, 240, 65), (720, 480, 69), (1920, 480, 72), (3 * 1920 + 1440, 480, 60)]
    assert [n.start for n in solo_bass(solo, 0, 480)][:4] == [0, 480, 960, 1920]  # the missing 4th beat skipped
    spans = solo_chords(solo, 0, 480)
    assert [(s.start, s.end, s.chord.root, s.chord.third, s.chord.seventh) for s in spans[:3]] == [
        (0, 2 * 1920, 2, 3, 10), (2 * 1920, 4 * 1920, 7, 4, 10), (4 * 1920, 8 * 1920, 0, 4, 11)]
    assert spans[3].start == 9 * 1920  # the NC bar leaves a gap
    pieces = wjd_excerpts([solo], bars=8)  # bars 0-7, then the NC bar 8 breaks: bars 9-16 make the second
    assert [p.source.split(" bars ")[1] for p in pieces] == ["1-8", "10-17"]
    first = pieces[0]
    assert first.genre == "jazz" and first.key == parse_key("C major") and set(first.tracks) == {"melody", "bass"}
    assert first.figures["chords_per_4_bars"] == Mean(3.0, 2)  # Dm7 G7 in bars 1-4, Cmaj7 in bars 5-8
    assert wjd_excerpts([solo], bars=8, per_solo=1)[0].source == first.source


@pytest.mark.parametrize(("label", "expected"), [
    ("C-7", (0, 3, 7, 10, True)), ("Fj7", (5, 4, 7, 11, True)), ("Bb7alt", (10, 4, 7, 10, True)),
    ("Am7b5", (9, 3, 6, 10, True)), ("Ebj7911#", (3, 4, 7, 11, True)), ("Bbo7", (10, 3, 6, 9, True)),
    ("C", (0, 4, 7, 11, False)), ("F#-", (6, 3, 7, 10, False)), ("Gsus7", (7, 5, 7, 10, True)),
    ("Bb6", (10, 4, 7, 9, True)), ("C-j7", (0, 3, 7, 11, True)), ("Eb7/G", (3, 4, 7, 10, True)),
], ids=lambda v: str(v))
def test_wjd_chord_symbols(label: str, expected: tuple) -> None:
    chord = parse_wjd_chord(label)
    assert (chord.root, chord.third, chord.fifth, chord.seventh, chord.has_seventh) == expected
    if "/" in label:
        assert chord.bass == 7


def test_wjd_chord_and_key_labels_without_meaning() -> None:
    assert parse_wjd_chord("NC") is None and parse_wjd_chord("") is None and parse_wjd_chord("H7") is None
    assert parse_wjd_key("Bb-maj") == parse_key("Bb major") and parse_wjd_key("C-min") == parse_key("C minor")
    assert parse_wjd_key("D-dor") == parse_key("D minor") and parse_wjd_key("Ab") == parse_key("Ab major")
    assert parse_wjd_key("D-chrom") is None and parse_wjd_key("") is None


def test_wjd_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(WjdError, match="wjd_meta.rda"):
        read_wjd(tmp_path)


SALAMI = """# title: Test Song
# artist: James Brown
# metre: 4/4
# tonic: A

0.0\tsilence
0.5\tA, intro, | A:min | A:min . . G:7 |, (guitar
4.0\tB, verse, | C:maj(9,11) | (2/4) F:maj | x2, guitar)
9.0\t| &pause | N | *  |
12.0\tC', chorus, | E:7 . A:min . |
20.0\tend
"""


def test_billboard_reader_on_a_written_file(tmp_path) -> None:
    path = tmp_path / "0042" / "salami_chords.txt"
    path.parent.mkdir()
    path.write_text(SALAMI)
    song = read_billboard_song(path)
    assert (song.song_id, song.title, song.artist, song.metre, song.tonic) == ("0042", "Test Song", "James Brown",
                                                                              "4/4", "A")
    assert song.style == "funk" and artist_style("  the rolling stones ") == "rock"
    assert [bar.chords for bar in song.bars] == [
        ("A:min",), ("A:min", "A:min", "A:min", "G:7"), ("C:maj(9,11)",), ("F:maj",), ("C:maj(9,11)",), ("F:maj",),
        ("N",), ("N",), ("N",), ("E:7", "E:7", "A:min", "A:min")]
    assert [bar.beats for bar in song.bars][2:4] == [4, 2]
    assert [(bar.section, bar.function) for bar in song.bars][::3] == [("A", "intro"), ("B", "verse"), ("B", "verse"),
                                                                      ("C'", "chorus")]
    spans = bar_chord_spans(song.bars[:2], 480)
    assert [(s.start, s.end, s.chord.root) for s in spans] == [(0, 1920 + 1440, 9), (1920 + 1440, 2 * 1920, 7)]
    assert read_billboard(tmp_path)[0].title == "Test Song"
    pieces = billboard_excerpts([song], bars=2)
    assert [p.source.rsplit(" bars ", 1)[1] for p in pieces] == ["1-2"]  # the 2/4 bar and the stops break runs
    assert pieces[0].genre == "funk" and pieces[0].figures["one_chord_pieces"] == Share(0, 1)


def test_billboard_file_without_header_is_named(tmp_path) -> None:
    (tmp_path / "0001").mkdir()
    (tmp_path / "0001" / "salami_chords.txt").write_text("0.0\t| C:maj |\n")
    with pytest.raises(BillboardError, match="0001/salami_chords.txt"):
        read_billboard(tmp_path)


@needs("wjd")
def test_wjd_solos_are_jazz_lines_over_walking_bass() -> None:
    solos = read_wjd(SHARED_DATA / "wjd")
    assert len(solos) == 456 and sum(len(s.notes) for s in solos) == 200_809
    labels = {b.chord for s in solos for b in s.beats}
    assert all(parse_wjd_chord(label) is not None for label in labels if label not in ("NC", "", "nan"))
    pieces = wjd_excerpts(solos, per_solo=1)
    assert len(pieces) > 400
    values = figure_values(pool_figures(p.figures for p in pieces))
    assert values["melody_distinct_pitches"] > 12  # bebop lines, not pop tunes (POP909: 8)
    assert 3.5 < values["bass_notes_per_bar"] <= 4  # a pitch per beat
    assert values["chords_per_4_bars"] > 3 and values["bass_tonic_downbeats"] < 0.3  # changes move
    # the estimated bass gives the root on 42% of the beats where the chord changes, 7% read a beat early:
    # the beats and chords line up
    assert values["bass_roots_on_downbeats"] > 0.35


@needs("billboard")
def test_billboard_progressions_vamp_in_funk_not_in_pop() -> None:
    songs = read_billboard(SHARED_DATA / "billboard")
    assert len(songs) == 890 and sum(1 for s in songs if s.style) > 500
    pieces = billboard_excerpts(songs)
    by_style = {style: figure_values(pool_figures(p.figures for p in pieces if p.genre == style))
                for style in ("funk", "pop", "rock")}
    assert by_style["funk"]["one_chord_pieces"] > 0.15 > 0.05 > by_style["pop"]["one_chord_pieces"]
    assert all(3 < v["chords_per_4_bars"] < 5 for v in by_style.values())


@needs("gmd")
def test_fills_score_one_and_copied_bars_zero_on_gmd() -> None:
    check = gmd_fill_check(SHARED_DATA)
    assert check["fill"].total >= 20 and check["fill"].value >= 0.9
    assert check["copied"].total == check["fill"].total and check["copied"].hits == 0
    assert 0.2 < check["beats"].value < 0.6  # drummers vary some phrase ends on their own


@needs("gmd")
def test_gmd_styles_keep_their_backbeat_half_time_and_swing() -> None:
    pieces = gmd_beats(SHARED_DATA)
    values = {genre: figure_values(pool_figures(style_figures(p.tracks, p.bars, 480) for p in pieces
                                                if p.genre == genre)) for genre in ("rock", "pop", "jazz", "hiphop")}
    assert values["rock"]["backbeat_bars"] > 0.55 and values["hiphop"]["backbeat_bars"] > 0.5
    assert values["pop"]["half_time_bars"] > 0.3 > 0.1 > values["rock"]["half_time_bars"]
    assert values["jazz"]["offbeat_8ths_swung"] > 0.4 > 0.2 > values["hiphop"]["offbeat_8ths_swung"]
    assert 0.55 < values["jazz"]["swing_phase"] < 0.6
    assert {p.split for p in pieces} == {"train", "validation"}
