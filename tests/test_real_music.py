"""The real-music reference sets of eval/real_music.py: cutting rules on hand-made notes, and
the loaders on ../shared/data (skipped where it is absent). The checks on real data are the
ones a wrong loader breaks: a misaligned beat grid puts POP909's bass off its chords, a
quantizing GMD loader loses the played velocities and timing."""

from __future__ import annotations

import csv

import pytest

from stemforge.eval.music_features import GRID_PER_BAR, figure_values, grid_step, pool_figures
from stemforge.eval.real_music import (
    RealDataMissing,
    cut,
    excerpt_starts,
    freedoom_songs,
    gmd_validation,
    load_reference_sets,
    pop909_songs,
)
from stemforge.symbolic.arrangement import Note
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
    assert found == {} and set(missing) == {"gmd", "pop909", "freedoom"}
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
