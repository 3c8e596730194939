"""Tracks past one loop: forms of sections composed by the shipped model, with returning
sections, their parts, transitions and what run.json says of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.drum_map import TOMS
from stemforge.symbolic.runtime.sections import CRASH, SNARE

FORM = "intro:2 verse:4 chorus:4 verse:4 chorus:4 outro:2"


def _bars(notes: list[Note], first: int, count: int) -> list[tuple[int, int, int]]:
    """The notes of bars [first, first + count), relative to bar `first` (onset, pitch, length)."""
    start, end = first * TICKS_PER_BAR, (first + count) * TICKS_PER_BAR
    return [(n.start - start, n.pitch, n.duration) for n in notes if start <= n.start < end]


@pytest.fixture(scope="module")
def rock_form(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("form") / "run"
    return run(RunRequest(prompt="rock 120bpm in E minor", form=FORM, seed=5, out=out)), out


def test_a_typed_form_is_its_sections_in_order_with_the_run_json_naming_them(rock_form) -> None:
    result, out = rock_form
    assert result.arrangement.conditions.bars == 20
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["conditions"]["form"] == FORM
    sections = manifest["structure"]["form"]["sections"]
    assert [(s["name"], s["start_bar"], s["bars"]) for s in sections] == [
        ("intro", 0, 2), ("verse", 2, 4), ("chorus", 6, 4), ("verse", 10, 4), ("chorus", 14, 4), ("outro", 18, 2)]
    assert sections[3]["material"] == "section 2 again" and sections[4]["material"] == "section 3 again"
    # the chorus leaves the verse's progression (the run's chords were drawn, not typed): the
    # verse and chorus of one real Billboard rock song
    assert sections[2]["chords"] != sections[1]["chords"]
    assert manifest["structure"]["form"]["verse_and_chorus_from"].startswith("Billboard rock #")
    assert any(m.startswith("form: " + FORM) for m in result.messages)


def test_a_returning_section_is_its_first_statement_and_new_sections_differ(rock_form) -> None:
    tracks = rock_form[0].arrangement.tracks
    for role in ("bass", "melody"):
        notes = tracks[role].notes
        assert _bars(notes, 6, 4) == _bars(notes, 14, 4), f"the second chorus's {role} is not the first"
        assert _bars(notes, 2, 4) == _bars(notes, 10, 4), f"the second verse's {role} is not the first"
        assert _bars(notes, 2, 4) != _bars(notes, 6, 4), f"the chorus's {role} is the verse's"


def test_a_section_plays_its_kind_of_parts_and_new_sections_start_on_a_crash(rock_form) -> None:
    tracks = rock_form[0].arrangement.tracks
    # every bar before a new section fills: toms or a snare run in its second half
    for boundary in (2, 6, 10, 14, 18):
        second_half = [n for n in tracks["drums"].notes
                       if (boundary - 0.5) * TICKS_PER_BAR <= n.start < boundary * TICKS_PER_BAR]
        assert any(n.pitch in TOMS for n in second_half) or sum(n.pitch == SNARE for n in second_half) >= 3
    assert not _bars(tracks["melody"].notes, 0, 2), "the intro is drums and bass"
    assert not _bars(tracks["melody"].notes, 18, 2), "the outro is drums and bass"
    assert _bars(tracks["melody"].notes, 2, 4) and _bars(tracks["drums"].notes, 0, 2)
    crashes = {n.start // TICKS_PER_BAR for n in tracks["drums"].notes if n.pitch == CRASH}
    assert {2, 6, 10, 14, 18} <= crashes
    assert all(n.start <= 20 * TICKS_PER_BAR for track in tracks.values() for n in track.notes)


def test_past_sixteen_bars_a_form_is_chosen_and_64_bars_compose(tmp_path: Path) -> None:
    result = run(RunRequest(prompt="house 124bpm", bars=64, seed=2, out=tmp_path / "run"))
    conditions = result.arrangement.conditions
    assert conditions.bars == 64 and conditions.form
    names = conditions.form.split()
    assert any(n.startswith("drop:") for n in names) and any(n.startswith("build:") for n in names)
    assert not [m for m in result.messages if m.startswith(("context", "drop", "build"))]
    drums = result.arrangement.tracks["drums"].notes
    assert max(n.start for n in drums) >= 60 * TICKS_PER_BAR
    # the bar before each drop rolls the snare and leaves its last 8th silent
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    for section in manifest["structure"]["form"]["sections"]:
        if section["name"] == "drop" and section["start_bar"] > 0:
            downbeat = section["start_bar"] * TICKS_PER_BAR
            before = [n for n in drums if downbeat - 2 * TICKS_PER_BEAT <= n.start < downbeat]
            assert sum(n.pitch == SNARE for n in before) >= 6
            assert not [n for n in before if n.start >= downbeat - TICKS_PER_BEAT // 2]


def test_the_same_seed_gives_the_same_track(tmp_path: Path) -> None:
    first = run(RunRequest(prompt="pop", bars=32, seed=9, out=tmp_path / "a"))
    again = run(RunRequest(prompt="pop", bars=32, seed=9, out=tmp_path / "b"))
    assert first.arrangement.tracks == again.arrangement.tracks
    assert first.arrangement.conditions.form == again.arrangement.conditions.form


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"bars": 65}, "bars"),
    ({"form": "intro:4 verse:8", "bars": 16}, "form"),
    ({"form": "verse:8 chorus:20"}, "form"),
    ({"form": "verse:8 banana:8"}, "form"),
], ids=["65-bars", "bars-disagree", "section-too-long", "unknown-section"])
def test_a_form_that_cannot_be_composed_is_refused_naming_its_field(tmp_path: Path, request_fields: dict,
                                                                    field: str) -> None:
    with pytest.raises(UserError) as caught:
        run(RunRequest(prompt="lofi", seed=1, out=tmp_path / "run", **request_fields))
    assert str(caught.value).startswith(f"{field}:") or caught.value.field == field
    assert not (tmp_path / "run").exists()


def test_prompt_words_ask_for_a_form(tmp_path: Path) -> None:
    result = run(RunRequest(prompt="soul verse and chorus", seed=3, out=tmp_path / "run"))
    assert result.arrangement.conditions.form == "verse:8 chorus:8"
    full = run(RunRequest(prompt="trap full track", seed=3, out=tmp_path / "full"))
    assert full.arrangement.conditions.bars == 32 and "hook" in full.arrangement.conditions.form


def test_the_cli_takes_a_form_and_refuses_a_bad_one_in_one_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "stemforge.pipeline.cli", "run", "--prompt", "lofi 80bpm", "--seed", "1"]
    done = subprocess.run([*command, "--form", "intro:2 verse:4 verse:4", "--out", str(tmp_path / "ok")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "ok" / "run.json").read_text())["conditions"]["bars"] == 10
    bad = subprocess.run([*command, "--form", "verse:8 chorus:40", "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and not (tmp_path / "bad").exists()
    assert len(bad.stderr.strip().splitlines()) == 1 and "form" in bad.stderr


def test_section_loops_are_cut_at_the_bar_lines_and_the_live_set_has_a_locator_per_section(tmp_path: Path) -> None:
    import gzip
    import xml.etree.ElementTree as ET

    import soundfile

    out = tmp_path / "run"
    # 124 bpm: bar lines fall between samples, so a section's start and its length round apart
    run(RunRequest(prompt="rock 124bpm", form="intro:2 verse:2 chorus:2 verse:2", seed=4, stems=True,
                   section_loops=True, out=out))
    manifest = json.loads((out / "run.json").read_text())
    sections = manifest["structure"]["form"]["sections"]
    files = sorted(p.name for p in (out / "sections").iterdir())
    assert [f.split("_")[-3:-1] for f in files if f.endswith("_mix.wav")] == [
        ["01", "intro"], ["02", "verse"], ["03", "chorus"], ["04", "verse"]]
    assert not [f for f in files if "intro_melody" in f]  # the intro plays no melody: no silent file
    track = {role: soundfile.read(out / path, always_2d=True)[0] for role, path in manifest["stems"].items()}
    rate = manifest["sample_rate"]
    bar = 4 * 60 / 124 * rate
    for section in sections:
        for role, path in section["loops"].items():
            audio, file_rate = soundfile.read(out / path, always_2d=True)
            assert file_rate == rate and len(audio) == round(section["bars"] * bar), path
            if role in track:  # the track's own samples from the section's first bar line (24-bit both)
                start = round(section["start_bar"] * bar)
                expected = track[role][start:start + len(audio)]
                assert abs(audio[:len(expected)] - expected).max() < 1e-4, path
    live_set = ET.fromstring(gzip.decompress((out / manifest["live_set"]).read_bytes()))
    locators = [(loc.find("Name").get("Value"), float(loc.find("Time").get("Value")))
                for loc in live_set.iter("Locator")]
    assert locators == [("intro", 0.0), ("verse", 8.0), ("chorus", 16.0), ("verse 2", 24.0)]
    # the README's command: a 124 bpm house track's sections (32 bars) cut and written
    house = tmp_path / "house"
    run(RunRequest(prompt="house 124, full track", seed=1, stems=True, section_loops=True, out=house))
    assert len(json.loads((house / "run.json").read_text())["structure"]["form"]["sections"]) >= 4


def test_section_loops_need_a_form_and_stems(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--section-loops: needs --stems"):
        run(RunRequest(prompt="rock", form="verse:2 chorus:2", section_loops=True, out=tmp_path / "a"))
    with pytest.raises(UserError, match="--section-loops: this piece is one loop of 8 bars"):
        run(RunRequest(prompt="rock", bars=8, stems=True, section_loops=True, out=tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_section_past_eight_bars_is_its_eight_and_their_end_again_with_a_melody_of_its_own(tmp_path: Path) -> None:
    result = run(RunRequest(prompt="funk 100bpm", form="verse:12 chorus:4", seed=2, out=tmp_path / "run"))
    tracks, chords = result.arrangement.tracks, result.arrangement.chords
    drums, bass, melody = (tracks[r].notes for r in ("drums", "bass", "melody"))
    # (the drums' last bar may get a fill into the chorus)
    assert _bars(drums, 8, 3) == _bars(drums, 4, 3) and _bars(bass, 8, 4) == _bars(bass, 4, 4)
    assert _bars(melody, 8, 4) != _bars(melody, 4, 4)
    # the chords run without a gap to the end of the track
    assert chords[0].start == 0 and chords[-1].end == 16 * TICKS_PER_BAR
    assert all(a.end == b.start for a, b in zip(chords, chords[1:]))
