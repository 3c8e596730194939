"""Feature functions of eval/music_features.py on hand-made grooves and lines whose answer
is known by construction (the structure figures also on micro-timed copies: a groove must
not change what they read)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemforge.eval.music_features import (
    DRUM_FEATURE_NAMES,
    FEATURE_NAMES,
    FIGURES,
    STYLE_FIGURES,
    GenreClassifier,
    Intervals,
    Mean,
    Median,
    Share,
    all_figures,
    altered_notes_followed,
    backbeat_bars,
    bar_similarity,
    bars_repeated_exactly,
    bars_repeating_at_lag,
    bass_on_kick,
    bass_roots_on_downbeats,
    beat_clashes,
    best_key_share,
    chord_scale,
    chord_scale_notes,
    chord_segments,
    chords_per_window,
    cut_window,
    distinct_pitches,
    distinct_velocities,
    drum_window_features,
    duplicate_drum_hits,
    eighth_swing,
    figure_values,
    format_figure,
    grid_step,
    grid_swing,
    group_histograms,
    half_time_bars,
    high_point_phrases,
    hihat_rolls,
    histogram_distance,
    in_key,
    key_found,
    key_scale_by_letter,
    kick_coverage,
    kick_snare_persistence,
    kickless,
    line,
    line_intervals,
    median_pitch,
    melody_strong_beat_chord_tones,
    notes_per_bar,
    one_chord,
    onset_histogram,
    overlapping_same_pitch,
    phrase_end_variations,
    piece_figures,
    pitch_ranges,
    pool_figures,
    relative_key,
    rest_bars,
    same_downbeat_pitch,
    self_similarity,
    sixteenth,
    snap_notes,
    snare_beats,
    snare_or_clap_on_beat3,
    sounding_tones,
    step_in_bar,
    style_figures,
    swing,
    swing_phase,
    tonic_downbeats,
    total_share,
    window_features,
)
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.keys import parse_key
from stemforge.symbolic.recipes.corpus_rules import Chord, ChordSpan, parse_chord, swing_16ths, swing_ratio

TPB = 480
KICK, SNARE, HAT = 36, 38, 42


def hits(ticks: list[int], pitch: int) -> list[Note]:
    return [Note(t, TPB // 4, pitch, 100) for t in ticks]


def bars_of(pattern: list[int], bars: int) -> list[int]:
    return [bar * 4 * TPB + t for bar in range(bars) for t in pattern]


FOUR_ON_THE_FLOOR = hits(bars_of([0, 480, 960, 1440], 2), KICK)
STRAIGHT_HATS = hits(bars_of(list(range(0, 4 * TPB, 240)), 2), HAT)  # 8ths
SWUNG_HATS = hits(bars_of([b * TPB + o for b in range(4) for o in (0, 320)], 2), HAT)  # triplet 8ths
C_MAJOR_SCALE = [Note(i * TPB, TPB, p, 90) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]


def test_four_on_the_floor_histogram_has_only_the_beats() -> None:
    histogram = onset_histogram(FOUR_ON_THE_FLOOR, TPB)
    assert histogram.tolist() == [2, 0, 0, 0] * 4  # two bars, one kick per beat


def test_histogram_filters_by_pitch_and_groups_drums() -> None:
    groove = FOUR_ON_THE_FLOOR + hits(bars_of([480, 1440], 2), SNARE) + STRAIGHT_HATS
    assert onset_histogram(groove, TPB, frozenset({SNARE})).tolist() == [0] * 4 + [2] + [0] * 7 + [2] + [0] * 3
    groups = group_histograms(groove, TPB)
    assert groups["kick"].sum() == 8 and groups["snare"].sum() == 4 and groups["cymbal"].sum() == 16
    assert groups["other"].sum() == 0


@pytest.mark.parametrize(("tick", "step"), [(0, 0), (120, 1), (160, 1), (320, 3), (400, 3), (1920 - 20, 0),
                                            (1920 + 480, 4)], ids=lambda v: str(v))
def test_step_in_bar_rounds_to_the_nearest_16th(tick: int, step: int) -> None:
    assert step_in_bar(tick, TPB) == step


def test_histogram_distance_is_zero_for_the_same_groove_and_grows_with_difference() -> None:
    straight = onset_histogram(FOUR_ON_THE_FLOOR + STRAIGHT_HATS, TPB)
    assert histogram_distance(straight, 3 * straight) == pytest.approx(0.0, abs=1e-9)  # scale-free
    swung = onset_histogram(FOUR_ON_THE_FLOOR + SWUNG_HATS, TPB)
    backbeat = onset_histogram(hits(bars_of([480, 1440], 2), SNARE), TPB)
    assert 0 < histogram_distance(straight, swung) < histogram_distance(straight, backbeat) <= 1.0
    only_offbeats = onset_histogram(hits([240], HAT), TPB)
    assert histogram_distance(onset_histogram(hits([0], KICK), TPB), only_offbeats) == pytest.approx(1.0)
    assert math.isnan(histogram_distance(np.zeros(16), straight))


@pytest.mark.parametrize(("hats", "expected"), [(STRAIGHT_HATS, 0.0), (SWUNG_HATS, 1.0)], ids=["straight", "swung"])
def test_swing_of_straight_and_swung_hats(hats: list[Note], expected: float) -> None:
    assert swing(FOUR_ON_THE_FLOOR + hats, TPB).value == expected


def test_swing_matches_the_corpus_builders_definition_and_is_resolution_free() -> None:
    groove = swing_16ths(hits(bars_of(list(range(0, 4 * TPB, 120)), 2), HAT))  # 16ths, half of them swung
    assert swing(groove, TPB).value == pytest.approx(swing_ratio(groove)) == pytest.approx(2 / 3)
    at_96 = [Note(n.start // 5, n.duration // 5, n.pitch, n.velocity) for n in groove]
    assert swing(at_96, 96).value == pytest.approx(2 / 3)
    assert math.isnan(swing(FOUR_ON_THE_FLOOR, TPB).value)  # no off-beats: nothing to judge


def test_in_key_share_of_a_c_major_scale() -> None:
    assert in_key(C_MAJOR_SCALE, parse_key("C major")).value == 1.0
    assert in_key(C_MAJOR_SCALE, parse_key("A minor")).value == 1.0  # relative minor, same notes
    assert in_key(C_MAJOR_SCALE, parse_key("C# major")) == Share(3, 8)  # C, F, high C (B#, E#)


def test_best_key_share_finds_a_scale_played_in_another_key() -> None:
    d_major = [Note(n.start, n.duration, n.pitch + 2, n.velocity) for n in C_MAJOR_SCALE]
    assert in_key(d_major, parse_key("C major")).value < 1.0
    assert best_key_share(d_major).value == 1.0
    chromatic = [Note(i * TPB, TPB, 60 + i, 90) for i in range(12)]
    assert best_key_share(chromatic) == Share(7, 12)  # no scale holds more than 7 of the 12


def test_bass_on_kick_of_aligned_and_offbeat_lines() -> None:
    aligned = [Note(n.start, 200, 36, 100) for n in FOUR_ON_THE_FLOOR]
    assert bass_on_kick(aligned, FOUR_ON_THE_FLOOR).value == 1.0
    offbeat = [Note(n.start + 240, 200, 36, 100) for n in FOUR_ON_THE_FLOOR]  # house bass
    assert bass_on_kick(offbeat, FOUR_ON_THE_FLOOR).value == 0.0
    assert bass_on_kick(offbeat, FOUR_ON_THE_FLOOR, tolerance_ticks=240).value == 1.0
    assert bass_on_kick(aligned, STRAIGHT_HATS) == Share(0, 8)  # no kicks at all


def test_shares_pool_as_a_ratio_of_sums() -> None:
    pooled = total_share([Share(1, 1), Share(0, 9)])
    assert pooled == Share(1, 10) and pooled.value == 0.1


def test_density_and_windows() -> None:
    tracks = {"drums": FOUR_ON_THE_FLOOR + STRAIGHT_HATS, "bass": C_MAJOR_SCALE}
    assert notes_per_bar(tracks, 2) == (8 + 16 + 8) / 2
    second = cut_window(tracks, 1, 1, TPB)
    assert [n.start for n in second["bass"]] == [0, 480, 960, 1440]
    assert len(second["drums"]) == 4 + 8


def test_window_features_name_every_value() -> None:
    tracks = {"drums": FOUR_ON_THE_FLOOR, "bass": [Note(n.start, 200, 36, 100) for n in FOUR_ON_THE_FLOOR]}
    features = window_features(tracks, TPB, 2)
    assert features.shape == (len(FEATURE_NAMES),)
    named = dict(zip(FEATURE_NAMES, features.tolist()))
    assert named["drums_kick_step0"] == 1.0 and named["drums_kick_step4"] == 1.0  # per bar
    assert named["bass_on_kick"] == 1.0 and named["melody_notes_per_bar"] == 0.0


def test_window_features_read_a_grooved_window_like_its_grid() -> None:
    on_grid = {"drums": FOUR_ON_THE_FLOOR + SWUNG_HATS, "bass": [Note(n.start, 200, 36, 100) for n in FOUR_ON_THE_FLOOR]}
    grooved = {role: nudged(notes, [7, -11, 13]) for role, notes in on_grid.items()}
    assert np.array_equal(window_features(grooved, TPB, 2), window_features(on_grid, TPB, 2))


def test_classifier_tells_two_grooves_apart() -> None:
    rng = np.random.default_rng(0)
    examples, labels = [], []
    for index in range(40):
        straight = index % 2 == 0
        hats = STRAIGHT_HATS if straight else SWUNG_HATS
        kept = [n for n in hats if rng.random() < 0.8]  # some variation within each class
        examples.append(window_features({"drums": FOUR_ON_THE_FLOOR + kept}, TPB, 2))
        labels.append("house" if straight else "jazz")
    classifier = GenreClassifier.fit(np.asarray(examples[:30]), labels[:30])
    assert classifier.predict(np.asarray(examples[30:])) == labels[30:]
    with pytest.raises(ValueError, match="two genres"):
        GenreClassifier.fit(np.asarray(examples[:2]), ["house", "house"])


# ------------------------------------------------------------------ structure (vs real music)

BAR = 4 * TPB


def line_of(pitches: list[int | None], step: int = TPB, bar_offset: int = 0, velocity: int = 90) -> list[Note]:
    """A line of notes `step` ticks apart (None = a rest), from bar `bar_offset`."""
    return [Note(bar_offset * BAR + i * step, step, p, velocity) for i, p in enumerate(pitches) if p is not None]


def bars_from(patterns: list[list[int]]) -> list[Note]:
    """One 4-quarter bar per pattern (pitches on the beats), patterns in order."""
    return [n for bar, pattern in enumerate(patterns) for n in line_of(pattern, bar_offset=bar)]


def nudged(notes: list[Note], ticks: list[int]) -> list[Note]:
    """The notes played a few ticks early/late (cycling through `ticks`), like a groove."""
    return [Note(n.start + ticks[i % len(ticks)], n.duration, n.pitch, n.velocity) for i, n in enumerate(notes)]


A, B = [60, 62, 64, 65], [67, 65, 62, 60]  # no (beat, pitch) in common


def test_grid_step_and_snap_undo_micro_timing() -> None:
    assert [grid_step(t, TPB) for t in (0, 19, 20, 35, 45, 1920 - 12)] == [0, 0, 1, 1, 1, 48]
    played = nudged(line_of([60, 62, 64]), [12, -9, 17])
    assert [(n.start, n.velocity) for n in snap_notes(played, TPB)] == [(0, 90), (480, 90), (960, 90)]
    assert [n.start for n in snap_notes([Note(43, 8, 60, 90)], 96)] == [40]  # 96 ticks per beat: 8 a step
    assert sixteenth(320, TPB) == 3 and sixteenth(160, TPB) == 1  # triplets fall to the nearest 16th


@pytest.mark.parametrize(("a", "b", "drums", "expected"), [
    (line_of(A), line_of(A), False, 1.0),
    (line_of(A), nudged(line_of(A), [10, -12]), False, 1.0),  # micro-timing is still the same bar
    (line_of([60, 62]), line_of([None, 62, 64]), False, 1 / 3),  # {C@0, D@12} vs {D@12, E@24}
    (line_of(A), line_of(B), False, 0.0),
    (line_of(A), [], False, 0.0),
    ([], [], False, None),  # two empty bars: nothing to compare
    (hits([0, 480], 42), hits([0, 480], 51), True, 1.0),  # hat vs ride: the same cymbal on the same steps
    (hits([0, 480], 42), hits([0, 480], 51), False, 0.0),
], ids=["same", "micro-timed", "one-of-three", "different", "vs-empty", "both-empty", "drum-groups",
        "raw-drum-pitches"])
def test_bar_similarity(a: list[Note], b: list[Note], drums: bool, expected: float | None) -> None:
    assert bar_similarity(a, b, TPB, drums) == (expected if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(("patterns", "lag", "expected"), [
    ([A] * 8, 1, Mean(7.0, 7)),  # a 1-bar loop
    ([A, B] * 4, 1, Mean(0.0, 7)),  # a 2-bar loop: neighbours differ...
    ([A, B] * 4, 2, Mean(6.0, 6)),  # ...but every bar comes back 2 bars later
    ([A, B, B, B] * 2, 4, Mean(4.0, 4)),  # a 4-bar phrase played twice
    ([A, [], [], A], 1, Mean(0.0, 2)),  # bar pairs (1, 2) are both empty: skipped
], ids=["1-bar-loop-lag1", "2-bar-loop-lag1", "2-bar-loop-lag2", "4-bar-phrase-lag4", "rests-skipped"])
def test_self_similarity(patterns: list[list[int]], lag: int, expected: Mean) -> None:
    assert self_similarity(bars_from(patterns), len(patterns), lag, TPB) == expected


@pytest.mark.parametrize(("notes", "bars", "expected"), [
    (bars_from([A, B, A, [60, 62, 64, 66]]), 4, Share(1, 3)),  # bar 3 repeats bar 1; bars 2 and 4 are new
    (bars_from([A] * 4), 4, Share(3, 3)),
    (bars_from([A, [], A]), 3, Share(1, 1)),  # an empty bar is not a bar to judge
    (line_of(A) + line_of(A, step=TPB // 2, bar_offset=2), 4, Share(0, 1)),  # same pitches, other rhythm
    (line_of(A) + [Note(BAR + n.start, n.duration // 2, n.pitch, 90) for n in line_of(A)], 2, Share(0, 1)),
], ids=["A-B-A-C", "loop", "rest-bar", "other-rhythm", "other-durations"])
def test_bars_repeated_exactly(notes: list[Note], bars: int, expected: Share) -> None:
    assert bars_repeated_exactly(notes, bars, TPB) == expected


def test_line_takes_the_top_note_for_melody_and_the_bottom_for_bass() -> None:
    chords = line_of([60, 62]) + line_of([64, 65]) + [Note(2 * TPB + 10, TPB, 67, 90)]  # 10 ticks late
    assert [n.pitch for n in line(chords, TPB)] == [64, 65, 67]
    assert [n.pitch for n in line(chords, TPB, lowest=True)] == [60, 62, 67]


@pytest.mark.parametrize(("pitches", "lowest", "expected"), [
    ([60, 60, 62, 65, 72], False, Intervals(Share(1, 4), Share(1, 4), Share(1, 4))),  # 0, 2, 3, 7
    ([36, 36, 36, 43], True, Intervals(Share(2, 3), Share(0, 3), Share(1, 3))),  # root, root, root, fifth
    ([60], False, Intervals(Share(0, 0), Share(0, 0), Share(0, 0))),
], ids=["melody", "bass", "one-note"])
def test_line_intervals(pitches: list[int], lowest: bool, expected: Intervals) -> None:
    assert line_intervals(line_of(pitches), TPB, lowest) == expected


def groove_bar(bar: int, snares: list[int], kicks: tuple[int, ...] = (0, 960)) -> list[Note]:
    return hits([bar * BAR + t for t in kicks], KICK) + hits([bar * BAR + t for t in snares], SNARE)


@pytest.mark.parametrize(("drums", "bars", "expected"), [
    (groove_bar(0, [480, 1440]) + groove_bar(1, [480, 1440]), 2, Mean(1.0, 1)),
    (groove_bar(0, [480, 1440]) + groove_bar(1, [480, 1680]), 2, Mean(3 / 5, 1)),  # one snare moves: 3 of 5 kept
    (groove_bar(0, [480, 1440]) + hits([BAR + t for t in range(0, BAR, 240)], HAT) + groove_bar(2, [480, 1440]), 3,
     Mean(0.0, 2)),  # a hats-only bar breaks the pattern twice
    (STRAIGHT_HATS, 2, Mean(0.0, 0)),  # no kick or snare anywhere: nothing to judge
], ids=["kept", "one-snare-moved", "hats-only-bar", "no-backbone"])
def test_kick_snare_persistence(drums: list[Note], bars: int, expected: Mean) -> None:
    assert kick_snare_persistence(drums, bars, TPB) == expected


def test_kick_coverage_and_bass_on_kick_are_two_directions() -> None:
    bass = nudged([Note(bar * BAR + t, 200, 36, 100) for bar in range(2) for t in (0, 960)], [15, -10])  # grooved
    assert kick_coverage(bass, FOUR_ON_THE_FLOOR, TPB) == Share(4, 8)  # half the kicks doubled
    assert bass_on_kick(snap_notes(bass, TPB), FOUR_ON_THE_FLOOR) == Share(4, 4)  # every bass note on a kick
    assert kick_coverage([], FOUR_ON_THE_FLOOR, TPB) == Share(0, 8)
    assert kick_coverage(bass, STRAIGHT_HATS, TPB) == Share(0, 0)


@pytest.mark.parametrize(("asked", "found"), [
    ("C major", True), ("A minor", True),  # the asked key, and its relative (the same notes)
    ("G major", False), ("F# major", False), ("C minor", False),
], ids=lambda v: str(v))
def test_key_found_accepts_the_key_and_its_relative(asked: str, found: bool) -> None:
    cadence = C_MAJOR_SCALE + [Note(8 * TPB, 4 * TPB, 60, 90), Note(8 * TPB, 4 * TPB, 48, 90)]  # ends on a long C
    assert key_found(cadence, parse_key(asked)) is found


def test_key_found_without_notes_and_relative_keys() -> None:
    assert key_found([], parse_key("C major")) is False
    assert relative_key(parse_key("C major")) == parse_key("A minor")
    assert relative_key(parse_key("Eb minor")) == parse_key("F# major")


C, F, G = Chord(0, 4, 7, 11, 0), Chord(5, 4, 7, 11, 5), Chord(7, 4, 7, 10, 7)
C_OVER_E = Chord(0, 4, 7, 11, 4)
ONE_CHORD_A_BAR = [ChordSpan(i * BAR, (i + 1) * BAR, chord) for i, chord in enumerate((C, F, G, C))]


@pytest.mark.parametrize(("bass", "chords", "bars", "expected"), [
    (bars_from([[36], [41], [43], [36]]), ONE_CHORD_A_BAR, 4, Share(4, 4)),
    (nudged(bars_from([[36, 43], [41], [43], [36]]), [-8, 12]), ONE_CHORD_A_BAR, 4, Share(4, 4)),  # grooved
    (bars_from([[40], [45], [47], [40]]), ONE_CHORD_A_BAR, 4, Share(0, 4)),  # thirds on the downbeats
    (bars_from([[40]]), [ChordSpan(0, BAR, C_OVER_E)], 1, Share(1, 1)),  # C/E: the slash note is the bass note
    (bars_from([[None, 36]]), [ChordSpan(0, BAR, C)], 1, Share(0, 1)),  # nothing on the downbeat: a miss
    (line_of([36, 41], step=2 * TPB), [ChordSpan(0, 960, C), ChordSpan(960, BAR, F)], 1, Share(1, 1)),
    (bars_from([[36], [36]]), [ChordSpan(0, BAR, C)], 2, Share(1, 1)),  # bar 2 has no chord: not counted
], ids=["roots", "grooved-roots", "thirds", "slash-chord", "offbeat-only", "mid-bar-change", "no-chord"])
def test_bass_roots_on_downbeats(bass: list[Note], chords: list[ChordSpan], bars: int, expected: Share) -> None:
    assert bass_roots_on_downbeats(bass, chords, bars, TPB) == expected


def test_melody_strong_beat_chord_tones() -> None:
    melody = line_of([60, 62, 64, 67]) + [Note(240, 240, 65, 90)]  # C D E G on the beats, F off the beat
    assert melody_strong_beat_chord_tones(melody, [ChordSpan(0, BAR, C)], TPB) == Share(3, 4)
    assert melody_strong_beat_chord_tones(melody, [ChordSpan(BAR, 2 * BAR, C)], TPB) == Share(0, 0)  # no chord


def test_grid_swing_reads_played_swing_that_raw_ticks_miss() -> None:
    played = nudged(SWUNG_HATS, [0, 12, 0, -9])  # triplet off-beats 12 ticks late / 9 early
    assert swing(played, TPB).value == 0.0  # 332 and 311 are not swung ticks
    assert grid_swing(played, TPB).value == 1.0
    assert grid_swing(nudged(STRAIGHT_HATS, [0, 10]), TPB).value == 0.0


@pytest.mark.parametrize(("velocities", "bars", "expected"), [
    ([100], 8, Mean(1.0, 1)),  # a programmed beat: one velocity
    ([80, 100, 120], 8, Mean(3.0, 1)),
    ([80, 100, 120], 16, Mean(6.0, 2)),  # two 8-bar spans, 3 each
    ([80, 100, 120], 4, Mean(0.0, 0)),  # shorter than a span: nothing
], ids=["one", "three", "two-spans", "short"])
def test_distinct_velocities(velocities: list[int], bars: int, expected: Mean) -> None:
    drums = [Note(bar * BAR + beat * TPB, 40, KICK, velocities[(bar * 4 + beat) % len(velocities)])
             for bar in range(bars) for beat in range(4)]
    assert distinct_velocities(drums, bars, TPB) == expected


def test_duplicate_drum_hits() -> None:
    groove = FOUR_ON_THE_FLOOR + hits([0, 480], SNARE)  # kick and snare together: not a duplicate
    assert duplicate_drum_hits(groove) == Share(0, 10)
    doubled = groove + [Note(0, 40, KICK, 60), Note(480, 40, KICK, 60), Note(480, 40, KICK, 70)]
    assert duplicate_drum_hits(doubled) == Share(3, 13)


@pytest.mark.parametrize(("notes", "expected"), [
    (line_of([60, 60, 60]), 0),  # touching: each ends where the next starts
    (line_of([60, 62, 64]) + [Note(0, TPB, 67, 90)], 0),  # a chord: other pitches
    ([Note(0, TPB, 60, 90), Note(240, TPB, 60, 90)], 1),  # restruck while still sounding
    ([Note(0, TPB, 60, 90), Note(0, 240, 60, 90)], 1),  # two at one tick
    ([Note(0, 4 * TPB, 60, 90), Note(TPB, 60, 60, 90), Note(2 * TPB, 60, 60, 90)], 2),  # under a long note
], ids=["touching", "chord", "restruck", "same-tick", "under-a-long-note"])
def test_overlapping_same_pitch(notes: list[Note], expected: int) -> None:
    assert overlapping_same_pitch(notes) == expected


@pytest.mark.parametrize(("pitch", "ticks", "expected"), [
    (SNARE, [960], Share(2, 2)), (39, [960 + 14], Share(2, 2)), (40, [960], Share(2, 2)),  # snare, clap, e-snare
    (SNARE, [480, 1440], Share(0, 2)), (37, [960], Share(0, 2)),  # a backbeat; a rim shot
], ids=["snare", "late-clap", "electric-snare", "backbeat", "rim"])
def test_snare_or_clap_on_beat3(pitch: int, ticks: list[int], expected: Share) -> None:
    assert snare_or_clap_on_beat3(hits(bars_of(ticks, 2), pitch), 2, TPB) == expected


@pytest.mark.parametrize(("ticks", "expected"), [
    ([BAR + 960 + i * 60 for i in range(4)], Share(1, 4)),  # 32nds in bar 2
    ([2 * BAR + i * 80 for i in range(3)], Share(1, 4)),  # 16th triplets in bar 3
    (list(range(0, 4 * BAR, 120)), Share(0, 4)),  # 16ths: not a roll
    ([960, 1020], Share(0, 4)),  # two fast hats are a flam, not a roll
    ([960 + i * 60 for i in range(3)] + [BAR + 960 + i * 60 for i in range(3)], Share(2, 4)),
], ids=["32nds", "16th-triplets", "16ths", "two-hits", "two-rolls"])
def test_hihat_rolls(ticks: list[int], expected: Share) -> None:
    assert hihat_rolls(hits(ticks, HAT), 4, TPB) == expected


def test_piece_figures_measure_only_what_the_piece_has() -> None:
    drums_only = piece_figures({"drums": FOUR_ON_THE_FLOOR}, 2, TPB)
    assert "kick_snare_kept" in drums_only and not any(n.startswith(("melody", "bass")) for n in drums_only)
    silent_bass = piece_figures({"drums": FOUR_ON_THE_FLOOR, "bass": []}, 2, TPB, parse_key("C major"))
    assert silent_bass["bass_notes_per_bar"] == Mean(0.0, 2) and silent_bass["kicks_covered"] == Share(0, 8)
    assert silent_bass["key_found"] == Share(0, 1) and "key_found_minor" not in silent_bass
    with_chords = piece_figures({"bass": bars_from([[36], [41]])}, 2, TPB, chords=ONE_CHORD_A_BAR)
    assert with_chords["bass_roots_on_downbeats"] == Share(2, 2) and "melody_chord_tones" not in with_chords
    assert set(piece_figures({"melody": C_MAJOR_SCALE, "bass": [], "drums": FOUR_ON_THE_FLOOR}, 2, TPB,
                             parse_key("A minor"), ONE_CHORD_A_BAR)) <= set(FIGURES)


def test_figures_pool_as_ratios_of_sums_and_average_the_melody_lags() -> None:
    loop = {"melody": bars_from([A] * 8)}
    through = {"melody": bars_from([A, B, [61, 63, 66, 68], [70, 72, 74, 75]] * 2)}
    pooled = pool_figures([piece_figures(loop, 8, TPB), piece_figures(through, 8, TPB)])
    assert pooled["melody_self_similarity_lag1"] == Mean(7.0, 14)
    values = figure_values(pooled)
    lags = [values[f"melody_self_similarity_lag{lag}"] for lag in (1, 2, 4)]
    assert values["melody_self_similarity"] == pytest.approx(sum(lags) / 3)
    assert values["melody_self_similarity_lag4"] == 1.0  # both repeat after 4 bars


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("melody_steps", 0.437, "44%"), ("bass_self_similarity_lag4", 0.6912, "0.69"),
    ("drum_velocities_per_8_bars", 64.56, "64.6"), ("key_found", float("nan"), "-"), ("in_scale", None, "-"),
], ids=["share", "similarity", "count", "nothing-measured", "absent"])
def test_format_figure(name: str, value: float | None, shown: str) -> None:
    assert format_figure(name, value) == shown


# ------------------------------------------------------------------ style figures (issue 26)

BAR = 4 * TPB
TOM, RIM, CLAP, RIDE = 45, 37, 39, 51


def groove_bars(pattern: dict[int, list[float]], bars: int, shift: int = 0) -> list[Note]:
    """pitch -> beats (0-based, fractions allowed) of one bar, repeated `bars` times, every hit
    `shift` ticks late."""
    return [Note(bar * BAR + round(beat * TPB) + shift, 40, pitch, 100)
            for bar in range(bars) for pitch, beats in pattern.items() for beat in beats]


ROCK = {KICK: [0, 2], SNARE: [1, 3], HAT: [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]}
HALF_TIME = {KICK: [0, 2.5], SNARE: [2], HAT: [0, 1, 2, 3]}


def test_backbeat_counts_played_snares_within_an_eighth_of_a_beat() -> None:
    assert backbeat_bars(groove_bars(ROCK, 4, shift=55), 4, TPB) == Share(4, 4)  # 55 ticks late: still on it
    assert backbeat_bars(groove_bars(ROCK, 4, shift=-55), 4, TPB) == Share(4, 4)  # early too
    assert backbeat_bars(groove_bars(ROCK, 4, shift=70), 4, TPB) == Share(0, 4)  # past 1/8 beat (60 ticks)
    rim_and_clap = groove_bars({KICK: [0], RIM: [1], CLAP: [3]}, 2)
    assert backbeat_bars(rim_and_clap, 2, TPB) == Share(2, 2)
    beat_four_moved = groove_bars({KICK: [0], SNARE: [1, 3.75]}, 2)  # beat 4 replaced by the last 16th
    assert backbeat_bars(beat_four_moved, 2, TPB) == Share(0, 2)
    assert snare_beats(groove_bars(ROCK, 1), 1, TPB) == [frozenset({1, 3})]


def test_half_time_is_beat_three_without_two_and_four() -> None:
    assert half_time_bars(groove_bars(HALF_TIME, 4, shift=30), 4, TPB) == Share(4, 4)
    assert backbeat_bars(groove_bars(HALF_TIME, 4), 4, TPB) == Share(0, 4)
    assert half_time_bars(groove_bars({SNARE: [1, 2, 3]}, 2), 2, TPB) == Share(0, 2)  # 2 and 4 too: not half time
    assert half_time_bars(groove_bars(ROCK, 2), 2, TPB) == Share(0, 2)


def test_kickless_pieces() -> None:
    assert kickless(groove_bars(ROCK, 2)) == Share(0, 1)
    assert kickless(groove_bars({SNARE: [1, 3], HAT: [0, 1, 2, 3]}, 2)) == Share(1, 1)
    assert kickless([Note(0, 40, 35, 90)]) == Share(0, 1)  # acoustic bass drum is a kick
    assert kickless([]) == Share(1, 1)


@pytest.mark.parametrize(("offbeat", "swung", "phase"), [
    (0.5, 0.0, 0.5), (2 / 3, 1.0, 2 / 3), (0.56, 0.0, 0.56), (0.6, 1.0, 0.6), (0.45, 0.0, 0.45),
], ids=["straight", "triplet", "light", "just-swung", "early-straight"])
def test_eighth_swing_and_phase(offbeat: float, swung: float, phase: float) -> None:
    hats = groove_bars({HAT: [b + f for b in range(4) for f in (0, offbeat)]}, 2)
    assert eighth_swing(hats, TPB).value == swung
    assert swing_phase(hats, TPB).value == pytest.approx(phase, abs=1 / TPB)


def test_eighth_swing_leaves_out_16ths_and_onbeats() -> None:
    sixteenths = groove_bars({HAT: [b + f for b in range(4) for f in (0, 0.25, 0.75)]}, 2)
    assert eighth_swing(sixteenths, TPB) == Share(0, 0) and swing_phase(sixteenths, TPB).count == 0
    mixed = groove_bars({HAT: [0.5, 1 + 2 / 3], RIDE: [2.25]}, 1)  # one straight, one swung, a 16th left out
    assert eighth_swing(mixed, TPB) == Share(1, 2)
    assert swing_phase(mixed, TPB).value == pytest.approx((0.5 + 2 / 3) / 2, abs=1 / TPB)


def test_phrase_end_copy_scores_zero_and_fills_score_one() -> None:
    groove = groove_bars(ROCK, 8)
    assert phrase_end_variations(groove, 8, TPB, 4) == Share(0, 2)
    assert phrase_end_variations(groove, 8, TPB, 8) == Share(0, 1)
    tom_fill = groove_bars(ROCK, 3) + [Note(3 * BAR + n.start, 40, n.pitch, 100) for n in groove_bars(
        {KICK: [0], SNARE: [1], HAT: [0, 0.5, 1, 1.5], TOM: [2, 2.5, 3, 3.5]}, 1)]
    assert phrase_end_variations(tom_fill, 4, TPB, 4) == Share(1, 1)
    roll = groove_bars(ROCK, 3) + [Note(3 * BAR + n.start, 40, n.pitch, 100) for n in groove_bars(
        {**ROCK, SNARE: [1, 3, 3.25, 3.5, 3.75]}, 1)]  # the groove with a 16th snare roll on beat 4
    assert phrase_end_variations(roll, 4, TPB, 4) == Share(1, 1)
    assert phrase_end_variations(groove_bars(ROCK, 3) + groove_bars(HALF_TIME, 1, shift=3 * BAR), 4, TPB, 4) == \
        Share(1, 1)  # another second half
    # the phrase's own toms or rolls are its groove: a phrase end that has them too is no fill
    tom_groove = groove_bars({**ROCK, TOM: [3.5]}, 4)
    assert phrase_end_variations(tom_groove, 4, TPB, 4) == Share(0, 1)
    assert phrase_end_variations([], 8, TPB, 4) == Share(0, 0)  # no drums: nothing to judge


def bar_line(pitches_by_bar: list[list[int]], step_beats: float = 1.0) -> list[Note]:
    """A melody: each bar's pitches one per `step_beats` from its downbeat (an empty list rests)."""
    return [Note(bar * BAR + round(i * step_beats * TPB), round(step_beats * TPB) - 40, pitch, 90)
            for bar, pitches in enumerate(pitches_by_bar) for i, pitch in enumerate(pitches)]


PHRASE = [[60, 62, 64, 65], [67, 65, 64, 62], [60, 64, 67, 72], [71, 67, 62, 60]]


def test_bars_repeating_at_lag() -> None:
    looped = bar_line(PHRASE + PHRASE)
    assert bars_repeating_at_lag(looped, 8, TPB, 4) == Share(4, 4)
    varied = bar_line(PHRASE + PHRASE[:3] + [[72, 71, 69, 67]])  # A A': the last bar answers differently
    assert bars_repeating_at_lag(varied, 8, TPB, 4) == Share(3, 4)
    rested = bar_line(PHRASE + [[], [], PHRASE[2], PHRASE[3]])  # rest bars are not repeats, nor counted
    assert bars_repeating_at_lag(rested, 8, TPB, 4) == Share(2, 2)
    assert bars_repeating_at_lag(bar_line(PHRASE * 4), 16, TPB, 8) == Share(8, 8)
    shifted = bar_line(PHRASE) + [Note(4 * BAR + n.start + 40, n.duration, n.pitch, 90) for n in bar_line(PHRASE)]
    assert bars_repeating_at_lag(shifted, 8, TPB, 4) == Share(0, 4)  # a 12th of a beat later: not the same


def test_distinct_pitches_ranges_median_and_rests() -> None:
    melody = bar_line(PHRASE + PHRASE)  # pitches 60 62 64 65 67 71 72
    assert distinct_pitches(melody, 8, TPB) == Mean(7.0, 1)
    assert distinct_pitches(melody, 16, TPB) == Mean(7.0 + 0.0, 2)  # the silent second span counts 0
    assert pitch_ranges(melody, 8, TPB) == Median((12.0,))
    assert pitch_ranges(melody, 16, TPB) == Median((12.0,))  # a silent span has no range
    assert pitch_ranges(melody, 4, TPB) == Median(())  # shorter than a span: no value
    assert median_pitch(bar_line([[60, 62, 70]])) == Median((62.0,)) and median_pitch([]) == Median(())
    assert (Median((1.0, 5.0)) + Median((9.0,))).value == 5.0 and math.isnan(Median().value)
    assert rest_bars(bar_line([PHRASE[0], [], PHRASE[1], []]), 4, TPB) == Share(2, 4)


def test_same_downbeat_pitch() -> None:
    assert same_downbeat_pitch(bar_line([[60, 64]] * 4), 4, TPB) == Share(1, 1)
    assert same_downbeat_pitch(bar_line(PHRASE), 4, TPB) == Share(0, 1)  # 60, 67, 60, 71
    late = [Note(n.start + 240, n.duration, n.pitch, 90) for n in bar_line(PHRASE)]
    assert same_downbeat_pitch(late, 4, TPB) == Share(0, 0)  # nothing on a downbeat: no count
    chords = bar_line([[60]] * 4) + bar_line([[64]] * 4)  # two notes on each downbeat: the highest is heard
    assert same_downbeat_pitch(chords, 4, TPB) == Share(1, 1)


def test_high_point_phrases() -> None:
    assert high_point_phrases(bar_line(PHRASE), 4, TPB) == Share(1, 1)  # one 72, 7 above the median
    ceiling = bar_line([[60, 67, 60, 67], [60, 67, 64, 62], [60, 62, 64, 62], [60, 62, 64, 60]])
    assert high_point_phrases(ceiling, 4, TPB) == Share(0, 1)  # 67 three times: no single peak
    flat = bar_line([[60, 62, 60, 62]] * 4)
    assert high_point_phrases(flat, 4, TPB) == Share(0, 1)  # 62 only 2 above... and reached 8 times
    assert high_point_phrases(bar_line(PHRASE + [[], [], [], []]), 8, TPB) == Share(1, 1)  # a silent phrase: none


def span(bar: float, bars: float, chord) -> ChordSpan:
    return ChordSpan(round(bar * BAR), round((bar + bars) * BAR), chord)


C, F, G, AM = (parse_chord(x) for x in ("C:maj", "F:maj", "G:maj", "A:min"))
A7, E, AB = parse_chord("A:7"), parse_chord("E:maj"), parse_chord("Ab:maj")


def test_chords_per_window_and_one_chord_vamps() -> None:
    vamp = [span(0, 8, C)]
    assert chords_per_window(vamp, 8, TPB) == Mean(2.0, 2) and one_chord(vamp) == Share(1, 1)
    per_bar = [span(b, 1, (AM, F, C, G)[b % 4]) for b in range(8)]
    assert chords_per_window(per_bar, 8, TPB) == Mean(8.0, 2) and one_chord(per_bar) == Share(0, 1)
    colours = [span(0, 2, C), span(2, 2, parse_chord("C:maj7")), span(4, 4, parse_chord("C:maj/3"))]
    assert chord_segments(colours) == [(0, 8 * BAR, (0, 4, 7))] and one_chord(colours) == Share(1, 1)
    across = [span(0, 3, C), span(3, 2, F), span(5, 3, C)]  # F across the windows' edge counts in both
    assert chords_per_window(across, 8, TPB) == Mean(4.0, 2)
    assert one_chord([]) == Share(0, 0)


def test_tonic_downbeats_reads_the_bass_sounding_at_the_downbeat() -> None:
    c_major = parse_key("C major")
    bass = [Note(0, BAR, 36, 90), Note(BAR + 480, BAR - 480, 43, 90),  # bar 2: the C of bar 1 ended; G after it
            Note(2 * BAR - 960, BAR + 960, 48, 90), Note(3 * BAR, 480, 45, 90)]  # held over bar 3; A in bar 4
    assert tonic_downbeats(bass, 4, TPB, c_major) == Share(2, 3)
    assert tonic_downbeats(bass, 4, TPB, parse_key("A minor")) == Share(1, 3)


def test_chord_scales_spell_the_out_of_key_tones_by_letter() -> None:
    c_major, a_minor = parse_key("C major"), parse_key("A minor")
    assert chord_scale(A7, c_major) == frozenset({1, 2, 4, 5, 7, 9, 11})  # C -> C#
    assert chord_scale(E, a_minor) == frozenset({9, 11, 0, 2, 4, 5, 8})  # G -> G# (harmonic minor)
    assert chord_scale(AB, c_major) == frozenset({0, 2, 3, 5, 7, 8, 11})  # Ab: A -> Ab, E -> Eb (not G#)
    assert chord_scale(parse_chord("D:7"), c_major) == frozenset({0, 2, 4, 6, 7, 9, 11})  # F -> F#
    assert chord_scale(AM, c_major) is None and chord_scale(G, c_major) is None  # in the key
    assert chord_scale(parse_chord("G:7"), c_major) is None  # the 7th F is in C major
    assert chord_scale(parse_chord("B:maj"), parse_key("E minor")) == frozenset({4, 6, 7, 9, 11, 0, 3})
    assert key_scale_by_letter(parse_key("F# major")) == [1, 3, 5, 6, 8, 10, 11]  # C# D# E# F# G# A# B
    assert chord_scale(parse_chord("C:maj/b7"), c_major) == frozenset({0, 2, 4, 5, 7, 9, 10})  # slash Bb: B -> Bb
    assert sounding_tones(C) == frozenset({0, 4, 7}) and sounding_tones(A7) == frozenset({9, 1, 4, 7})


def test_chord_scale_notes_and_clashes_over_a7_in_c_major() -> None:
    c_major = parse_key("C major")
    chords = [span(0, 1, C), span(1, 1, A7)]
    follows = [Note(BAR, 480, 61, 90), Note(BAR + 480, 480, 64, 90), Note(BAR + 960, 480, 71, 90)]  # C# E B
    key_bound = [Note(BAR, 480, 60, 90), Note(BAR + 480, 480, 64, 90), Note(BAR + 960, 480, 71, 90)]  # C E B
    assert chord_scale_notes(follows + [Note(BAR, 1920, 45, 90)], chords, c_major, TPB) == Share(4, 4)
    assert chord_scale_notes(key_bound, chords, c_major, TPB) == Share(2, 3)
    c_bar = [Note(0, 480, 60, 90)]  # under C: in key, not counted
    assert chord_scale_notes(c_bar, chords, c_major, TPB) == Share(0, 0)
    assert beat_clashes(key_bound, chords, TPB, c_major) == Share(1, 3)  # C against C#
    assert beat_clashes(follows, chords, TPB, c_major) == Share(0, 3)
    assert beat_clashes([Note(BAR, 480, 62, 90)], chords, TPB, c_major) == Share(1, 1)  # D: a semitone over C#
    assert beat_clashes(c_bar + [Note(480, 480, 65, 90)], chords, TPB) == Share(1, 2)  # F against E under C
    assert beat_clashes(c_bar + [Note(480, 480, 65, 90)], chords, TPB, c_major) == Share(0, 0)
    off_beat = [Note(BAR + 240, 240, 60, 90)]  # a passing C between beats is no strong-beat clash
    assert beat_clashes(off_beat, chords, TPB, c_major) == Share(0, 0)
    # of the notes on the letter A7 alters (C or C#): the chord's C# or the key's C
    assert altered_notes_followed(follows + key_bound + off_beat, chords, c_major, TPB) == Share(1, 3)
    assert altered_notes_followed(c_bar, chords, c_major, TPB) == Share(0, 0)  # under C nothing is altered
    e_in_a_minor = [span(0, 1, E)]
    g_or_g_sharp = [Note(0, 480, 68, 90), Note(480, 480, 67, 90), Note(960, 480, 64, 90)]  # G# G E
    assert altered_notes_followed(g_or_g_sharp, e_in_a_minor, parse_key("A minor"), TPB) == Share(1, 2)


def test_style_figures_by_role_key_chords_and_length() -> None:
    tracks = {"drums": groove_bars(ROCK, 8), "bass": [Note(b * BAR, BAR, 36, 90) for b in range(8)],
              "melody": bar_line(PHRASE + PHRASE)}
    figures = style_figures(tracks, 8, TPB)
    assert set(figures) == set(STYLE_FIGURES) - {"melody16_copied_bars", "melody16_repeat_lag8", "bass_tonic_downbeats",
                                                 "chords_per_4_bars", "one_chord_pieces", "chord_scale_notes",
                                                 "out_of_key_clashes", "strong_beat_clashes", "altered_notes_followed"}
    assert figures["backbeat_bars"] == Share(8, 8) and figures["melody_similar4_pieces"] == Share(1, 1)
    assert figures["bass_few_pitch_pieces"] == Share(1, 1)
    with_harmony = style_figures(tracks, 8, TPB, parse_key("C major"), [span(0, 8, C)])
    assert with_harmony["bass_tonic_downbeats"] == Share(8, 8) and with_harmony["one_chord_pieces"] == Share(1, 1)
    long = style_figures({"melody": bar_line(PHRASE * 4)}, 16, TPB)
    assert long["melody16_copied_bars"] == Share(12, 15) and long["melody16_repeat_lag8"] == Share(8, 8)
    assert set(all_figures(tracks, 8, TPB)) == set(piece_figures(tracks, 8, TPB)) | set(figures)
    assert {"melody_range", "swing_phase"} <= set(FIGURES)
    assert format_figure("swing_phase", 0.5614) == "0.561" and format_figure("melody_range", 14.0) == "14.0"


def test_drum_window_features_read_the_groove_as_played() -> None:
    rock, half = groove_bars(ROCK, 4, shift=20), groove_bars(HALF_TIME, 4)
    a, b = drum_window_features(rock, TPB, 4), drum_window_features(half, TPB, 4)
    assert a.shape == b.shape == (len(DRUM_FEATURE_NAMES),)
    named = dict(zip(DRUM_FEATURE_NAMES, a))
    assert named["snare_step4"] == named["snare_step12"] == 1.0 and named["backbeat"] == 1.0
    assert dict(zip(DRUM_FEATURE_NAMES, b))["half_time"] == 1.0 and named["swing_phase"] == pytest.approx(
        0.5 + 20 / TPB)


def test_balanced_classifier_hears_the_small_class() -> None:
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (300, 1)), rng.normal(1.2, 1, (15, 1))]).astype(np.float32)
    labels = ["rock"] * 300 + ["soul"] * 15
    test = rng.normal(1.2, 1, (200, 1)).astype(np.float32)
    plain = GenreClassifier.fit(features, labels).predict(test).count("soul")
    balanced = GenreClassifier.fit(features, labels, balanced=True).predict(test).count("soul")
    assert plain < 40 < 100 < balanced  # the majority wins doubtful windows unless classes weigh the same
