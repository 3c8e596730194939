from __future__ import annotations

import pytest

from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.music.conditions import build_conditions, nearest_known_genre
from stemforge.symbolic.music.keys import parse_key

PROMPTS = [
    ("lofi 80bpm", {"genre": "lofi", "bpm": 80.0}),
    ("lo-fi hip hop at 72", {"genre": "lofi", "bpm": 72.0}),
    ("lofi hip hop beat, chill", {"genre": "lofi", "density": "sparse"}),
    ("boom bap 92 bpm in F minor", {"genre": "hiphop", "bpm": 92.0, "key": "F minor"}),
    ("dnb 172", {"genre": "dnb", "bpm": 172.0}),
    ("lofi 80, 16 bars", {"genre": "lofi", "bpm": 80.0, "bars": 16}),
    ("drum & bass at 172, busy", {"genre": "dnb", "bpm": 172.0, "density": "busy"}),
    ("drum and bass", {"genre": "dnb", "bpm": 174.0}),
    ("4 on the floor groove 126bpm", {"genre": "house", "bpm": 126.0}),
    ("techno Am 16 bars hard", {"genre": "techno", "key": "A minor", "bars": 16, "density": "busy"}),
    ("trap in C#m", {"genre": "trap", "key": "C# minor", "bpm": 140.0}),
    ("sparse ambient in Eb major", {"genre": "ambient", "key": "Eb major", "density": "sparse"}),
    ("funk at 104 in Bb", {"genre": "funk", "bpm": 104.0, "key": "Bb major"}),
    ("dark jazz, 4 bars", {"genre": "jazz", "bars": 4, "moods": ("dark",)}),
    ("", {"genre": "lofi", "bpm": 80.0, "bars": 8, "density": "normal"}),
]


@pytest.mark.parametrize("prompt,expected", PROMPTS, ids=[p or "empty" for p, _ in PROMPTS])
def test_prompt_parsing(prompt: str, expected: dict) -> None:
    conditions = build_conditions(prompt, seed=3)
    for field, value in expected.items():
        assert getattr(conditions, field) == value, field


def test_flags_override_prompt() -> None:
    conditions = build_conditions("lofi 80bpm in F minor", bpm=90, key="Am", genre="boom bap", bars=4)
    assert (conditions.genre, conditions.bpm, conditions.key, conditions.bars) == ("hiphop", 90.0, "A minor", 4)


BAD = [
    ({"bpm": 0}, "bpm"),
    ({"bpm": 301}, "bpm"),
    ({"bpm": -5}, "bpm"),
    ({"bars": 0}, "bars"),
    ({"bars": 64, "max_bars": 16}, "bars"),
    ({"key": "H minor"}, "key"),
    ({"genre": "zydecore"}, "genre"),
]


@pytest.mark.parametrize("flags,field", BAD, ids=[f"{k}" for k, _ in BAD])
def test_impossible_values_name_the_field(flags: dict, field: str) -> None:
    with pytest.raises(ConditionError, match=rf"^{field}:"):
        build_conditions("lofi", **flags)


@pytest.mark.parametrize("text,name", [("Fm", "F minor"), ("C#m", "C# minor"), ("Bb major", "Bb major"),
                                        ("f sharp minor", "F# minor"), ("Db", "Db major"), ("C# major", "C# major"), ("c#", "C# major"), ("a min", "A minor")])
def test_key_spellings(text: str, name: str) -> None:
    assert parse_key(text).name == name


def test_unknown_genre_maps_to_nearest_known() -> None:
    assert nearest_known_genre("lofi", ["hiphop", "house"]) == "hiphop"
    assert nearest_known_genre("techno", ["house", "rock"]) == "house"
    assert nearest_known_genre("house", ["house"]) == "house"


@pytest.mark.parametrize("typed,listed", [("dubstep", "trap"), ("synthwave", "pop"), ("uk garage", "house")])
def test_an_unlisted_genre_is_composed_as_a_listed_neighbour_and_says_so(typed: str, listed: str) -> None:
    for kwargs in ({"prompt": f"{typed} 120bpm"}, {"prompt": "", "genre": typed}):
        notes: list[str] = []
        conditions = build_conditions(kwargs.pop("prompt"), notes=notes, **kwargs)
        assert conditions.genre == listed
        assert len(notes) == 1 and typed in notes[0] and listed in notes[0]


def test_long_whitespace_runs_parse_in_linear_time_and_errors_stay_short():
    """A key of "a" + 15,000 spaces + "x" once held the server for ~47 s (the pattern's two
    optional gaps backtrack over the run); runs of whitespace are collapsed before parsing."""
    import time

    started = time.perf_counter()
    with pytest.raises(ConditionError) as caught:
        parse_key("a" + " " * 200_000 + "x")
    assert len(str(caught.value)) < 200
    spaced = build_conditions("lofi" + " " * 100_000 + "80bpm in F" + "\t" * 50_000 + "minor, 8" + " " * 50_000 + "bars")
    assert time.perf_counter() - started < 5  # quadratic parsing of these takes minutes
    plain = build_conditions("lofi 80bpm in F minor, 8 bars")
    assert (spaced.genre, spaced.bpm, spaced.key, spaced.bars) == (plain.genre, plain.bpm, plain.key, plain.bars)


@pytest.mark.parametrize("bpm, ok", [(0.5, False), (1, True), (300, True), (300.5, False), (float("nan"), False)],
                         ids=["half", "one", "300", "above", "nan"])
def test_bpm_range_is_the_documented_1_to_300(bpm, ok):
    if ok:
        assert build_conditions("lofi", bpm=bpm).bpm == bpm
    else:
        with pytest.raises(ConditionError, match="bpm: .* use 1-300"):
            build_conditions("lofi", bpm=bpm)


@pytest.mark.parametrize("prompt, says", [
    pytest.param("polka 100bpm", "no genre in 'polka 100bpm'; composing lofi", id="unknown-genre-word"),
    pytest.param("funk in H major", "'h major' is not a key", id="key-H"),
    pytest.param("rock, key of X minor", "'x minor' is not a key", id="key-X"),
])
def test_words_the_prompt_cannot_use_are_said_not_dropped(prompt, says):
    notes: list[str] = []
    build_conditions(prompt, notes=notes)
    assert any(says in note for note in notes), notes


def test_a_prompt_it_understands_gets_no_notes():
    notes: list[str] = []
    build_conditions("lofi 80bpm in F minor, 8 bars", notes=notes)
    assert notes == []
