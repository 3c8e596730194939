"""A producer's own MIDI at run time: a multitrack seed clip keeps every part it has, and a
model trained on an unlabelled folder answers any genre from that material."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import symusic

from stemforge.pipeline.cli import main as cli_main
from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.core.ticks import TICKS_PER_BAR
from stemforge.symbolic.decoding.model import load_composer
from stemforge.symbolic.music.arrangement import read_tracks
from stemforge.symbolic.music.conditions import model_genre_for, nearest_known_genre
from stemforge.symbolic.training.prepare import prepare_dataset
from stemforge.symbolic.training.train import TrainConfig, train
from tests.midi_fixtures import write_corpus, write_dense_groove, write_edge_hat_groove


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


# ------------------------------------------------------------------ seed clips

def test_a_seed_clip_is_read_through_the_drum_map(tiny_model: Path, tmp_path: Path) -> None:
    clip = write_edge_hat_groove(tmp_path / "vdrums.mid", bars=2)
    result = run(RunRequest(prompt="rock", model=tiny_model, seed_midi=clip, bars=4, seed=1, out=tmp_path / "run"))
    drums = read_tracks(tmp_path / "run" / result.manifest.midi["full"])["drums"].notes
    seeded = {n.pitch for n in drums if n.start < 2 * TICKS_PER_BAR}
    assert {42, 43, 46, 49} <= seeded and not {22, 26, 55, 58, 100} & seeded
    assert any("drum notes 22 x8, 26 x2, 55 x1, 58 x2 read as General MIDI drums" in m for m in result.messages)
    assert any("100 x2 dropped" in m for m in result.messages)


@pytest.mark.parametrize("bars, answer", [(4, "error"), (8, "continued")], ids=["fills-the-bars", "more-bars-asked"])
def test_a_clip_that_fills_the_bars_gets_an_answer(tiny_model: Path, tmp_path: Path, bars: int, answer: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    clip = write_gm_multitrack(tmp_path / "clip.mid", bars=4)
    code = cli_main(["run", "--prompt", "rock 120bpm", "--model", str(tiny_model), "--seed-midi", str(clip),
                     "--bars", str(bars), "--seed", "2", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    if answer == "error":
        assert code == 2 and not (tmp_path / "run").exists()
        assert "error: --bars: the seed clip already fills all 4 bars of its drums, bass, melody part(s)" in err
        assert "(--bars 8)" in err and "internal error" not in err
    else:
        assert code == 0
        tracks = read_tracks(next((tmp_path / "run").glob("*_full.mid")))
        assert all(any(n.start >= 4 * TICKS_PER_BAR for n in track.notes) for track in tracks.values())


def test_a_seed_too_dense_for_the_context_says_what_was_cut(tiny_model: Path, tmp_path: Path) -> None:
    dense = write_dense_groove(tmp_path / "dense.mid", bars=8)
    score = symusic.Score(str(dense))
    drums_only = symusic.Score(score.ticks_per_quarter)
    drums_only.tracks.append(score.tracks[0])
    drums_only.dump_midi(str(tmp_path / "drums.mid"))
    result = run(RunRequest(prompt="rock 96bpm", model=tiny_model, seed_midi=tmp_path / "drums.mid", bars=16,
                            seed=3, out=tmp_path / "run"))
    warning = next(m for m in result.messages if m.startswith("context:"))
    assert "holds 1024 tokens" in warning and "seed clip's drums" in warning and "cut short in" in warning
    assert "bass in" in warning and "--bars" in warning
    assert json.loads((tmp_path / "run" / "run.json").read_text())["messages"][-1] == warning


# ------------------------------------------------------------------ genres with too little material

@pytest.mark.parametrize("genre, windows, expected, note", [
    pytest.param("lofi", {"soul": 17, "unknown": 3060}, "unknown", "only 17 training windows", id="thin-neighbour"),
    pytest.param("soul", {"soul": 17, "unknown": 3060}, "unknown", "only 17 training windows", id="thin-asked"),
    pytest.param("lofi", {"soul": 400, "unknown": 3060}, "soul", "nearest known genre 'soul'", id="neighbour"),
    pytest.param("unknown", {"soul": 400, "unknown": 3060}, "unknown", None, id="none-asked"),
    pytest.param("soul", {"soul": 400, "unknown": 3060}, "soul", None, id="known"),
])
def test_a_thin_genre_never_steers_a_piece_silently(genre: str, windows: dict, expected: str, note: str | None) -> None:
    chosen, said = model_genre_for(genre, list(windows), windows)
    assert chosen == expected
    assert (said is None) if note is None else (note in said)


@pytest.mark.parametrize("genre, windows, message", [
    pytest.param("soul", {"soul": 17, "rock": 3060}, "genre 'soul' has only 17 training windows in this model "
                 "(of 3077; a genre needs 32 to steer a piece)", id="thin-without-label-free-part"),
    pytest.param("unknown", {"soul": 400, "rock": 3060}, "this model has no material without a genre label",
                 id="none-on-a-labelled-model"),
])
def test_a_thin_or_missing_genre_is_refused_with_its_count(genre: str, windows: dict, message: str) -> None:
    with pytest.raises(ConditionError, match=re.escape(message)):
        model_genre_for(genre, list(windows), windows)


@pytest.mark.parametrize("flag", ["none", "unknown", "Unlabelled"], ids=str)
def test_a_model_trained_without_labels_takes_genre_none(unlabelled_model: Path, tmp_path: Path, flag: str) -> None:
    result = run(RunRequest(genre=flag, model=unlabelled_model, bars=2, seed=3, out=tmp_path / "r"))
    assert result.manifest.conditions.genre == "unknown" and result.manifest.model_genre == "unknown"
    assert not result.messages
    assert result.manifest.feel["groove"]  # played with a groove template of its own


def test_genre_none_on_a_labelled_model_is_a_clear_error(tiny_model: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["run", "--genre", "none", "--model", str(tiny_model), "--bars", "2", "--out", str(tmp_path / "r")])
    assert code == 2 and "error: genre: this model has no material without a genre label" in capsys.readouterr().err
