"""Song forms: what a producer types, what the prompt says, and the defaults per genre
(Billboard's real forms for the styles it has songs of, conventions elsewhere)."""

from __future__ import annotations

import pytest

from stemforge.symbolic.music.conditions import GENRES
from stemforge.symbolic.runtime.form import (
    MAX_SECTION_BARS,
    FormError,
    default_form,
    form_in_prompt,
    load_forms,
    parse_form,
)


def test_a_typed_form_reads_back_with_its_sections_and_starts() -> None:
    form = parse_form("intro:4 verse:8 Chorus:8 verse:8 chorus:8 outro:4")
    assert form.text() == "intro:4 verse:8 chorus:8 verse:8 chorus:8 outro:4"
    assert form.bars == 40 and form.starts == (0, 4, 12, 20, 28, 36)
    assert form.first_of(4) == 2 and form.first_of(3) == 1 and form.first_of(0) == 0  # the choruses share material
    assert parse_form("Intro x4, Pre Chorus:4 refrain:8").text() == "intro:4 pre-chorus:4 chorus:8"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"), ("intro:4 lalala:8", "not a section"), ("verse:24", "1-16 bars"),
    ("verse 8 chorus 8", "cannot read"), ("verse:16 " * 5, "2-64 bars"),
], ids=["empty", "unknown section", "section too long", "no colon", "too long in all"])
def test_a_form_that_cannot_be_composed_names_the_field(text: str, message: str) -> None:
    with pytest.raises(FormError, match=message) as error:
        parse_form(text)
    assert error.value.field == "form"


@pytest.mark.parametrize("genre", GENRES)
@pytest.mark.parametrize("bars", [17, 24, 32, 64])
def test_every_genre_has_a_default_form_of_any_length(genre: str, bars: int) -> None:
    form = default_form(genre, bars, seed=3)
    assert form.bars == bars
    assert all(1 <= s.bars <= MAX_SECTION_BARS for s in form.sections)
    assert all(a.name != b.name for a, b in zip(form.sections, form.sections[1:])) or genre == "jazz"
    assert form.source


def test_the_pop_and_rock_defaults_are_real_billboard_forms() -> None:
    table = load_forms()
    assert table["styles"]["rock"]["songs"] >= 150  # counted from the Billboard set (CC0)
    forms = {default_form("rock", 64, seed).source for seed in range(12)}
    assert len(forms) >= 3 and all(f.startswith("Billboard rock:") for f in forms)
    assert default_form("house", 32, 0).sections[2].name == "drop"


@pytest.mark.parametrize(("prompt", "expected"), [
    ("pop in C, verse and chorus", ("verse:8 chorus:8", None)),
    ("house 124 with a drop", ("intro:4 build:4 drop:8", None)),
    ("rock full track", (None, 32)),
    ("lofi 80bpm", (None, None)),
], ids=["verse and chorus", "with a drop", "full track", "none"])
def test_form_words_in_the_prompt(prompt: str, expected: tuple) -> None:
    assert form_in_prompt(prompt) == expected


def test_the_shipped_form_table_is_what_the_billboard_songs_give() -> None:
    from pathlib import Path

    from stemforge.symbolic.recipes.forms import build_forms

    billboard = Path(__file__).resolve().parents[2] / "shared" / "data" / "billboard"
    if not (billboard / "McGill-Billboard").is_dir():
        pytest.skip("the Billboard set is not in ../shared/data/billboard")
    table = load_forms()
    built = build_forms(billboard)
    assert built["styles"] == table["styles"] and built["pairs"] == table["pairs"]
    # a verse and its chorus from one real song: every pair differs, and the big styles have many
    assert len(table["pairs"]["pop"]["major"]) >= 100 and len(table["pairs"]["rock"]["minor"]) >= 20
    assert all(p["verse"] != p["chorus"] for modes in table["pairs"].values() for found in modes.values()
               for p in found)
