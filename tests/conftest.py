"""Shared fixtures: a tiny labelled corpus, its prepared dataset and a tiny trained model,
built once per test session (a few seconds) so no test downloads or ships weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from stemforge.symbolic.training.prepare import prepare_dataset
from stemforge.symbolic.training.train import TrainConfig, train
from tests.midi_fixtures import write_corpus

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "midi", files_per_genre=4)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "dataset"
    prepare_dataset(tiny_corpus, out, tiny_corpus / "tracks.csv", progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    train(tiny_dataset, out, TrainConfig.load("tiny"), progress=False)
    return out
