"""Feature functions of eval/music_features.py on hand-made grooves and lines whose answer
is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.music_features import (
    FEATURE_NAMES,
    GenreClassifier,
    Share,
    bass_on_kick,
    best_key_share,
    cut_window,
    group_histograms,
    histogram_distance,
    in_key,
    notes_per_bar,
    onset_histogram,
    step_in_bar,
    swing,
    total_share,
    window_features,
)
from symbolic.arrangement import Note
from symbolic.conditions import parse_key
from symbolic.corpus_rules import swing_16ths, swing_ratio

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
