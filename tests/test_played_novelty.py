"""One reading of bars for novelty: `pipeline prepare` indexes a user's played grooves the way
`pipeline eval` reads a run, so copies of played material are caught (as played, humanized,
a 16th late, from a V-Drums kit or a General MIDI one), a run seeded with a training file
says "copied" for its seeded bars, fresh material stays "new", and a model's index can be
rebuilt from the data it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stemforge.eval.novelty import assess_tracks, piece_novelty, run_grid_tracks
from stemforge.eval.reference import run_tracks
from stemforge.pipeline.cli import main as cli_main
from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music import drum_map
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.canonical import INDEX_VERSION, IndexVersionError, NoveltyIndex, read_piece
from stemforge.symbolic.runtime.run_manifest import RunManifest
from stemforge.symbolic.training.prepare import PrepareConfig, prepare_dataset
from stemforge.symbolic.training.train import TrainConfig, train
from tests.midi_fixtures import SIXTEENTH, _symusic_track, _write_score

BARS = 12


def played_groove(seed: int, bars: int = BARS, edge_hats: bool = True) -> list[tuple[int, int, int, int]]:
    """A drummer's take on a V-Drums kit: a 2-bar pattern of its own (kick, snare, ghost
    notes, bow and edge hats, a tom rim), played 10-25 ms late with a few ms of scatter."""
    rng = np.random.default_rng(seed)
    pattern = [(s, 36) for s in range(16) if rng.random() < 0.3 or s == 0] + [(4, 38), (12, 38)]
    pattern += [(s, 38) for s in range(16) if s % 2 and rng.random() < 0.25]  # ghost notes
    hats = [(s, (22 if edge_hats and rng.random() < 0.5 else 42)) for s in range(0, 16, 2)]
    second = [(s, p) for s, p in pattern if rng.random() < 0.85] + [(15, 58), (14, 26 if edge_hats else 46)]
    lag = int(rng.integers(10, 25))
    notes = []
    for bar in range(bars):
        for step, pitch in (pattern if bar % 2 == 0 else second) + hats:
            jitter = int(rng.normal(0, 6))
            velocity = 45 if pitch == 38 and step % 2 else int(rng.integers(80, 120))
            notes.append((bar * TICKS_PER_BAR + step * SIXTEENTH + lag + jitter, SIXTEENTH, pitch, velocity))
    return notes


@pytest.fixture(scope="module")
def grooves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, list[Note]]]:
    """Six takes prepared as a user's data (all on the training side), and their notes."""
    folder = tmp_path_factory.mktemp("takes")
    takes = {}
    for seed in range(6):
        notes = played_groove(seed)
        _write_score(folder / "vdrums" / f"take_{seed}.mid", [_symusic_track("drums", 0, notes, is_drum=True)],
                     (4, 4), 100)
        takes[f"vdrums/take_{seed}.mid"] = [Note(*n) for n in notes]
    data = tmp_path_factory.mktemp("takes_data") / "data"
    prepare_dataset(folder, data, config=PrepareConfig(window_bars=[4], transpositions=[], valid_fraction=0.0),
                    progress=False)
    return folder, data, takes


def excerpt(notes: list[Note], first_bar: int, bars: int = 8, late: int = 0) -> dict[str, list[Note]]:
    lo = first_bar * TICKS_PER_BAR
    return {"drums": [Note(n.start - lo + late, n.duration, n.pitch, n.velocity) for n in notes
                      if lo - 60 <= n.start < lo + bars * TICKS_PER_BAR - 60]}


def humanized(tracks: dict[str, list[Note]], seed: int, ms: float = 20.0, bpm: float = 100.0) -> dict:
    rng = np.random.default_rng(seed)
    jitter = round(ms / 1000 * bpm / 60 * TICKS_PER_BEAT)
    return {r: sorted(Note(max(0, n.start + int(rng.integers(-jitter, jitter + 1))), n.duration, n.pitch,
                           int(np.clip(n.velocity + rng.integers(-20, 21), 1, 127))) for n in notes)
            for r, notes in tracks.items()}


COPIES = {
    "as-played": lambda notes, take: excerpt(notes, 2),
    "humanized": lambda notes, take: humanized(excerpt(notes, 2), take),
    "a-16th-late": lambda notes, take: excerpt(notes, 3, late=SIXTEENTH),
    "humanized-and-late": lambda notes, take: humanized(excerpt(notes, 1, late=SIXTEENTH), take + 10),
    "general-midi-kit": lambda notes, take: {"drums": [
        Note(n.start, n.duration, drum_map.fold(drum_map.to_general_midi(n.pitch, "vdrums")), n.velocity)
        for n in excerpt(notes, 4)["drums"]]},
}


@pytest.mark.parametrize("kind", list(COPIES), ids=list(COPIES))
def test_copies_of_played_training_grooves_are_caught(grooves, kind: str) -> None:
    _, data, takes = grooves
    index = NoveltyIndex.load(data / "index")
    for take, (source, notes) in enumerate(takes.items()):
        result = assess_tracks(COPIES[kind](notes, take), TICKS_PER_BEAT, 8, index)
        assert result.verdict == "copied", (kind, source, result.parts["drums"].match)
        assert result.parts["drums"].match.source == source


def test_other_played_grooves_are_new(grooves) -> None:
    _, data, _ = grooves
    index = NoveltyIndex.load(data / "index")
    for seed in range(100, 106):
        fresh = {"drums": [Note(*n) for n in played_groove(seed, bars=8)]}
        assert assess_tracks(fresh, TICKS_PER_BEAT, 8, index).verdict == "new", seed


def test_index_and_lookup_read_bars_the_same_way(grooves) -> None:
    """The drum map and the grid are the same on both sides: a take's own notes, read as a
    run is read, give exactly the digests prepare stored."""
    _, data, takes = grooves
    index = NoveltyIndex.load(data / "index")
    source, notes = next(iter(takes.items()))
    reading = read_piece({"drums": notes}, TICKS_PER_BEAT)
    assert {n.pitch for n in reading.tracks["drums"]} <= {36, 38, 42, 43, 46}  # edge hats and rims mapped
    stored = index.bar_notes(index.sources.index(source), "drums", 3)
    read = reading.rows["drums"][(reading.rows["drums"][:, 1] // 48) == 3]
    assert sorted(map(tuple, stored[:, [0, 2]].tolist())) == sorted(map(tuple, read[:, [0, 2]].tolist()))


@pytest.fixture(scope="module")
def takes_model(grooves, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, data, _ = grooves
    out = tmp_path_factory.mktemp("takes_model") / "model"
    train(data, out, TrainConfig.load("tiny"), steps=20, progress=False)
    return out


def test_a_run_seeded_with_a_training_file_says_copied_for_the_seeded_bars(grooves, takes_model: Path,
                                                                           tmp_path: Path) -> None:
    folder, _, takes = grooves
    source, notes = list(takes.items())[2]
    clip = tmp_path / "clip.mid"
    _write_score(clip, [_symusic_track("drums", 0, [(n.start, n.duration, n.pitch, n.velocity)
                                                     for n in excerpt(notes, 0, bars=4)["drums"]], is_drum=True)],
                 (4, 4), 100)
    result = run(RunRequest(prompt="rock 100bpm", model=takes_model, seed_midi=clip, bars=8, seed=3,
                            out=tmp_path / "run"))
    manifest = RunManifest.read(result.run_dir)
    tracks, how = run_grid_tracks(manifest, run_tracks(result.run_dir, manifest), TICKS_PER_BEAT)
    piece = piece_novelty(tracks, TICKS_PER_BEAT, 8, NoveltyIndex.load(takes_model / "index"), None, how)
    drums = piece["parts"]["drums"]
    assert drums["verdict"] == "copied" and drums["match"]["source"] == source
    assert drums["match"]["start_bar"] == 0 and drums["match"]["bars"] >= 3


def test_a_models_index_is_rebuilt_from_its_data(grooves, takes_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, data, _ = grooves
    meta = json.loads((takes_model / "index" / "index.json").read_text())
    (takes_model / "index" / "index.json").write_text(json.dumps({**meta, "version": 2}))
    with pytest.raises(IndexVersionError, match="pipeline index DATA_DIR --model MODEL_DIR"):
        NoveltyIndex.load(takes_model / "index")
    assert cli_main(["index", str(data), "--model", str(takes_model)]) == 0
    assert "rebuilt the novelty index of" in capsys.readouterr().out
    rebuilt = NoveltyIndex.load(takes_model / "index")
    assert len(rebuilt) == meta["bars"] and json.loads((takes_model / "index" / "index.json").read_text())[
        "version"] == INDEX_VERSION

    other = tmp_path / "other"
    _write_score(other / "x.mid", [_symusic_track("drums", 0, played_groove(50), is_drum=True)], (4, 4), 100)
    prepare_dataset(other, tmp_path / "other_data", config=PrepareConfig(window_bars=[4], valid_fraction=0.0),
                    progress=False)
    assert cli_main(["index", str(tmp_path / "other_data"), "--model", str(takes_model)]) == 2
    assert "is not the data" in capsys.readouterr().err


def test_the_corpus_drum_tables_are_the_ones_the_shipped_model_was_built_with() -> None:
    """The one drum map gives the corpus builder the tables it always had (its data sha256 is
    unchanged), and reads General MIDI files' vibraslaps as vibraslaps."""
    assert drum_map.GMD_TO_GM == {36: 36, 38: 38, 40: 38, 37: 37, 48: 50, 50: 50, 45: 47, 47: 47, 43: 43, 58: 43,
                                  46: 46, 26: 46, 42: 42, 22: 42, 44: 44, 49: 49, 55: 49, 57: 49, 52: 49, 51: 51,
                                  59: 51, 53: 53}
    assert drum_map.GM_FOLD == {35: 36, 40: 38, 41: 43, 45: 47, 48: 50, 52: 49, 55: 49, 57: 49, 59: 51, 22: 42,
                                26: 46}
    assert drum_map.to_general_midi(58, "gm") == 58 and drum_map.to_general_midi(58, "vdrums") == 43
