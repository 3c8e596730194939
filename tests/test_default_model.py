"""The composer shipped inside the package: found with no path, every advertised genre
composes valid music, and its model card names the data and licences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stemforge.eval.music_features import Share, kick_coverage
from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.decoding.model import DEFAULT_MODEL_DIR, load_composer
from stemforge.symbolic.music.conditions import GENRES, ROLES
from stemforge.symbolic.runtime.sampling import SamplePlan, Sampler, SamplingSettings


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler(load_composer())


def test_the_default_model_ships_inside_the_package_and_is_small() -> None:
    files = [p for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 30 * 1024 * 1024
    assert not (DEFAULT_MODEL_DIR / "checkpoint").exists()  # optimizer state is not shipped
    composer = load_composer()
    assert composer.path == DEFAULT_MODEL_DIR
    assert sorted(composer.genres) == sorted(GENRES)


@pytest.mark.parametrize("genre", GENRES)
def test_every_advertised_genre_composes_valid_music(sampler: Sampler, genre: str) -> None:
    tokenizer = sampler.composer.tokenizer
    plan = SamplePlan(tokenizer.prefix_ids(genre, 100, "A minor", "normal", 2), ROLES, 2)
    tracks = tokenizer.decode_tracks(sampler.sample(plan, SamplingSettings(), seed=1))
    assert set(tracks) == set(ROLES)
    for role, track in tracks.items():
        assert track.notes, f"{genre} {role} is empty"
        assert track.end_tick() <= 2 * TICKS_PER_BAR


def test_an_unlisted_genre_is_composed_as_a_listed_one_with_a_message(tmp_path: Path) -> None:
    result = run(RunRequest(prompt="dubstep 140bpm", bars=1, seed=3, out=tmp_path / "run"))
    assert result.arrangement.conditions.genre == "trap"
    assert any("dubstep" in m and "trap" in m for m in result.messages)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model"]["path"] == str(DEFAULT_MODEL_DIR)


def test_the_model_card_names_the_data_and_licences() -> None:
    card = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text()
    for needle in ("Groove MIDI Dataset", "Gillick et al. 2019", "CC BY 4.0", "POP909", "MIT", "Freedoom",
                   "validation loss", "pipeline train"):
        assert needle in card, needle
    for genre in GENRES:
        assert genre in card


def test_rock_bass_drives_eighths_and_takes_every_kick(tmp_path: Path) -> None:
    """Rock's bass takes every kick and keeps its driving 8ths between them (the plan covers
    the kicks instead of locking to them): thinned towards one note per kick (5.5 notes a
    bar), the genre classifier heard rock in fewer than half of its windows."""
    notes, covered = 0, Share(0, 0)
    for seed in range(4):
        result = run(RunRequest(prompt="rock", bars=4, seed=seed, out=tmp_path / f"rock{seed}"))
        bass, drums = result.arrangement.tracks["bass"].notes, result.arrangement.tracks["drums"].notes
        notes += len(bass)
        covered = covered + kick_coverage(bass, drums, TICKS_PER_BEAT)
    assert notes / 16 >= 6.5, notes
    assert covered.value >= 0.85, covered
