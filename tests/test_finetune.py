"""Fine-tuning a trained composer on a user's own MIDI (`pipeline train DATA --init MODEL`):
the result starts from the model's weights, keeps its vocabulary and adds the data's genres,
carries both training sets for the novelty check, says what it was tuned on, and refuses
data tokenized for another model with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from stemforge.eval.novelty import assess_tracks
from stemforge.pipeline.cli import main as cli_main
from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import read_tracks
from stemforge.symbolic.music.canonical import NoveltyIndex
from stemforge.symbolic.music.tokenizer import ComposerTokenizer
from stemforge.symbolic.training.finetune import FineTuneError
from stemforge.symbolic.training.prepare import PrepareConfig, prepare_dataset
from stemforge.symbolic.training.train import TrainConfig, TrainError, train
from tests.midi_fixtures import write_groove


@pytest.fixture(scope="module")
def user_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A producer's folder: funk grooves (a genre the tiny model does not know) and rock."""
    folder = tmp_path_factory.mktemp("mine")
    for index in range(4):
        write_groove(folder / "funk" / f"take_{index}.mid", "hiphop", 100, bars=8, tonic=index + 1, seed=40 + index)
        write_groove(folder / "rock" / f"take_{index}.mid", "rock", 120, bars=8, tonic=index, seed=50 + index)
    data = tmp_path_factory.mktemp("mine_data") / "data"
    prepare_dataset(folder, data, progress=False)
    return data


def fine_tune(data: Path, init: Path, out: Path, lora: bool) -> dict:
    config = TrainConfig.load("finetune_lora" if lora else "finetune")
    return train(data, out, config, steps=12, progress=False, init=init)


@pytest.fixture(scope="module", params=["full", "lora"])
def tuned(request: pytest.FixtureRequest, user_data: Path, tiny_model: Path,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    out = tmp_path_factory.mktemp(f"tuned_{request.param}") / "model"
    return request.param, out, fine_tune(user_data, tiny_model, out, lora=request.param == "lora")


def test_a_fine_tuned_model_keeps_the_vocabulary_and_adds_the_datas_genres(tuned, tiny_model: Path) -> None:
    method, out, meta = tuned
    init = ComposerTokenizer.load(tiny_model / "tokenizer.json")
    tokenizer = ComposerTokenizer.load(out / "tokenizer.json")
    assert tokenizer.genres == sorted({*init.genres, "funk"}) and meta["new_genres"] == ["funk"]
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    embeddings = "transformer.wte.weight"
    # every token the init model had keeps its own row under its new number
    moved = np.array([after[embeddings][tokenizer.vocab[t]] for t in init.vocab])
    original = np.array([before[embeddings][i] for i in init.vocab.values()])
    untouched = [i for i, t in enumerate(init.vocab) if not t.startswith("Genre_")]
    if method == "lora":  # frozen embeddings: the carried rows are the init model's exactly
        np.testing.assert_array_equal(moved[untouched], original[untouched])
        assert meta["trainable_parameters"] < 0.5 * meta["parameters"]
    else:  # every weight trained, but from the init model's: close to where it started
        assert np.abs(moved - original).max() < 0.2 and not np.array_equal(moved, original)
        assert meta["trainable_parameters"] == meta["parameters"]
    assert meta["init"]["path"] == str(tiny_model.resolve())


def test_a_fine_tuned_model_is_a_model_folder_that_says_what_it_was_tuned_on(tuned, tmp_path: Path) -> None:
    method, out, meta = tuned
    card = (out / "MODEL_CARD.md").read_text()
    assert "Fine-tuned from" in card and "funk (" in card and ("LoRA" in card) == (method == "lora")
    assert "before" in card and f"{meta['fine_tune_losses']['after']:.3f}" in card
    stored = json.loads((out / "stemforge.json").read_text())
    assert stored["genre_windows"]["funk"] > 0 and stored["genre_windows"]["house"] > 0  # both training sets
    result = run(RunRequest(prompt="funk 100bpm", model=out, bars=2, seed=4, out=tmp_path / "run"))
    assert result.manifest.model_genre == "funk" and not any("funk" in m for m in result.messages)
    assert set(read_tracks(tmp_path / "run" / result.manifest.midi["full"])) == {"drums", "bass", "melody"}


def test_a_fine_tuned_model_catches_copies_of_either_training_set(tuned, tiny_corpus: Path, user_data: Path) -> None:
    _, out, _ = tuned
    index = NoveltyIndex.load(out / "index")
    assert any(s.startswith("init:") for s in index.sources) and any(s.startswith("funk/") for s in index.sources)
    user_folder = Path(json.loads((user_data / "dataset.json").read_text())["source"])
    user_file = read_tracks(user_folder / next(s for s in index.sources if s.startswith("funk/")))
    init_file = read_tracks(tiny_corpus / next(s for s in index.sources if s.startswith("init:")).removeprefix("init:"))
    for tracks, prefix in ((user_file, "funk/"), (init_file, "init:")):
        result = assess_tracks({r: t.notes for r, t in tracks.items()}, TICKS_PER_BEAT, 8, index)
        copied = [part.match for part in result.parts.values() if part.verdict == "copied"]
        assert result.verdict == "copied" and all(match.source.startswith(prefix) for match in copied)


def test_lora_needs_a_model_to_adapt(user_data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="--lora: LoRA trains adapters of a trained model"):
        train(user_data, tmp_path / "m", TrainConfig.load("finetune_lora"), steps=2, progress=False)


def test_an_init_that_is_not_a_model_is_a_clear_error(user_data: Path, tmp_path: Path) -> None:
    with pytest.raises(FineTuneError, match=r"--init: .*nope does not exist"):
        train(user_data, tmp_path / "m", TrainConfig.load("finetune"), steps=2, progress=False, init=tmp_path / "nope")


def test_data_tokenized_for_another_model_is_one_line_and_writes_nothing(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "long"
    write_groove(folder / "rock_a_120bpm.mid", "rock", 120, bars=24)
    write_groove(folder / "rock_b_120bpm.mid", "rock", 120, bars=24, seed=3)
    prepare_dataset(folder, tmp_path / "data", config=PrepareConfig(window_bars=[4], max_bars=32), progress=False)
    capsys.readouterr()
    code = cli_main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--init", str(tiny_model),
                     "--steps", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--init: DATA_DIR was tokenized for another model (max_bars 32 vs the model's 16)" in err[0]
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()
