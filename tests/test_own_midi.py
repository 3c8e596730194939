"""A producer's own MIDI at run time: a multitrack seed clip keeps every part it has, and a
model trained on an unlabelled folder answers any genre from that material."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import symusic

from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.arrangement import TICKS_PER_BAR, read_tracks
from stemforge.symbolic.conditions import nearest_known_genre
from stemforge.symbolic.model import load_composer
from stemforge.symbolic.prepare import prepare_dataset
from stemforge.symbolic.train import TrainConfig, train
from tests.midi_fixtures import write_corpus


def write_gm_multitrack(path: Path, bars: int = 2) -> Path:
    """A General MIDI file as a DAW or a game exports it: unnamed tracks, drums on channel
    10, a bass by program (33), a lead (81) above it."""
    score = symusic.Score(480)
    drums, bass, lead = symusic.Track(program=0, is_drum=True), symusic.Track(program=33), symusic.Track(program=81)
    for beat in range(4 * bars):
        drums.notes.append(symusic.Note(beat * 480, 120, 36 if beat % 2 == 0 else 38, 100))
        bass.notes.append(symusic.Note(beat * 480, 400, 40 + (beat % 2) * 5, 90))
        lead.notes.append(symusic.Note(beat * 480 + 240, 200, 72 + beat % 3, 90))
    score.tracks.extend([drums, bass, lead])
    score.dump_midi(str(path))
    return path


def test_a_multitrack_seed_clip_keeps_every_part_it_has(tiny_model: Path, tmp_path: Path) -> None:
    clip = write_gm_multitrack(tmp_path / "clip.mid", bars=2)
    result = run(RunRequest(prompt="rock 120bpm", model=tiny_model, seed_midi=clip, bars=4, seed=1,
                            out=tmp_path / "run", quantize=True))
    assert any(m.startswith("seed clip: kept drums, bass, melody") for m in result.messages), result.messages
    composed = read_tracks(tmp_path / "run" / result.manifest.midi["full"])
    source = symusic.Score(str(clip))
    for role, track in (("bass", source.tracks[1]), ("melody", source.tracks[2])):
        kept = [(n.start, n.pitch) for n in composed[role].notes if n.start < 2 * TICKS_PER_BAR]
        assert kept == [(n.time, n.pitch) for n in track.notes], role


def test_a_drum_only_clip_says_what_is_generated(tiny_model: Path, tmp_path: Path) -> None:
    clip = write_gm_multitrack(tmp_path / "clip.mid")
    score = symusic.Score(str(clip))
    drums_only = symusic.Score(480)
    drums_only.tracks.append(score.tracks[0])
    drums_only.dump_midi(str(tmp_path / "drums.mid"))
    result = run(RunRequest(prompt="rock", model=tiny_model, seed_midi=tmp_path / "drums.mid", bars=4, seed=1,
                            out=tmp_path / "run"))
    assert "seed clip: kept drums; generating bass, melody" in result.messages


def test_genres_a_model_lacks_come_from_its_unlabelled_material() -> None:
    assert nearest_known_genre("rock", ["soul", "unknown"]) == "unknown"  # not alphabetically "soul"
    assert nearest_known_genre("rock", ["pop", "unknown"]) == "pop"  # a real neighbour still wins
    assert nearest_known_genre("rock", ["unknown"]) == "unknown"


@pytest.fixture(scope="module")
def unlabelled_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of files named like a game soundtrack (no genre anywhere), prepared and
    trained without labels."""
    labelled = write_corpus(tmp_path_factory.mktemp("labelled"), files_per_genre=2)
    folder = tmp_path_factory.mktemp("ost")
    for index, path in enumerate(sorted(labelled.glob("*.mid"))):
        shutil.copy(path, folder / f"level_{index}.mid")
    data = tmp_path_factory.mktemp("data") / "d"
    prepare_dataset(folder, data, None, progress=False)
    model = tmp_path_factory.mktemp("model") / "m"
    train(data, model, TrainConfig.load("tiny"), progress=False)
    return model


def test_a_model_trained_without_labels_answers_any_prompt(unlabelled_model: Path, tmp_path: Path) -> None:
    assert load_composer(unlabelled_model).genres == ["unknown"]
    result = run(RunRequest(prompt="rock 120bpm", model=unlabelled_model, bars=2, seed=3, out=tmp_path / "r"))
    manifest = json.loads((tmp_path / "r" / "run.json").read_text())
    assert manifest["model_genre"] == "unknown" and manifest["conditions"]["genre"] == "rock"
    assert any("without a genre label" in m for m in result.messages)


def test_folders_named_by_genre_label_the_files_in_them(tmp_path: Path) -> None:
    labelled = write_corpus(tmp_path / "labelled", files_per_genre=1)
    mine = tmp_path / "mine"
    for index, path in enumerate(sorted(labelled.glob("*.mid"))):
        genre_folder = mine / ("Deep House" if index % 2 else "hip-hop")
        genre_folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, genre_folder / f"take_{index}.mid")
    summary = prepare_dataset(mine, tmp_path / "data", None, progress=False)
    genres = json.loads((tmp_path / "data" / "tokenizer.json").read_text())["genres"]
    assert sorted(genres) == ["hiphop", "house"], summary
