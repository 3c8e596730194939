"""Eval stage: Frechet distance, embeddings, novelty, reference audio and the report.

Everything is synthetic (sine tones, noise bursts, random note patterns) and small; the
real renderer is only touched by the one integration test, which skips without it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy import linalg, signal

from stemforge.eval.embeddings import (
    EmbeddingError,
    build_embedding,
    build_encodec,
    build_features,
    build_vggish,
)
from stemforge.eval.fad import (
    MIN_CLIPS,
    embedding_statistics,
    fad,
    fad_with_intervals,
    frechet_distance,
)
from stemforge.eval.novelty import COPY_BARS, Match, assess_tracks, nearest_training_windows, piece_novelty
from stemforge.eval.reference import EvalError, conform, read_audio, role_from_name
from stemforge.eval.report import EvalRequest, RunPiece, run_eval, symbolic_section
from stemforge.symbolic.core.ticks import GRID_PER_BEAT, TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Arrangement, Note, Track, tracks_to_score
from stemforge.symbolic.music.canonical import INDEX_VERSION, IndexVersionError, NoveltyIndex, piece_digests
from stemforge.symbolic.music.conditions import Conditions
from stemforge.symbolic.music.keys import parse_key
from stemforge.symbolic.runtime.run_manifest import RunManifest
from stemforge.symbolic.training.window_store import (
    load_window_notes,
    piece_windows,
    save_window_notes,
    window_rows,
)

SR = 22050
BARS = 8


@pytest.fixture(scope="module")
def _test_cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stemforge_cache")


@pytest.fixture(autouse=True)
def _private_cache(_test_cache_root, monkeypatch):
    """Eval caches frames (and audio.assets SoundFont digests) under $STEMFORGE_CACHE_DIR:
    these tests use their own folder, never the user's ~/.cache/stemforge. Tests that count
    renders pass a fresh `cache_dir` of their own."""
    monkeypatch.setenv("STEMFORGE_CACHE_DIR", str(_test_cache_root))


# ---------------------------------------------------------------- synthetic audio

@functools.lru_cache(maxsize=256)
def _synth(seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    out = np.zeros(n)
    ring = np.arange(int(0.8 * sample_rate)) / sample_rate  # each event rings for 0.8 s at most
    for start in np.arange(0, seconds, 0.25):
        at = int(start * sample_rate)
        t = ring[: n - at]
        if rng.random() < 0.7:
            freq = 110 * 2 ** (rng.integers(0, 36) / 12)
            out[at : at + len(t)] += 0.2 * np.exp(-t * 6) * np.sin(2 * np.pi * freq * t)
        if rng.random() < 0.4:
            out[at : at + len(t)] += 0.15 * np.exp(-t * 40) * rng.standard_normal(len(t))
    return out.astype(np.float32)[None]


def synth_clip(seed: int, seconds: float = 3.0, sample_rate: int = SR) -> np.ndarray:
    """A few decaying sine notes and noise bursts: music-like enough for MFCC statistics."""
    return _synth(seed, float(seconds), int(sample_rate)).copy()


def clip_set(seeds: range, transform=None, seconds: float = 3.0) -> list[np.ndarray]:
    embedder = build_features()
    clips = []
    for seed in seeds:
        audio = synth_clip(seed, seconds)
        if transform is not None:
            audio = transform(audio, seed).astype(np.float32)
        clips.append(embedder.embed(audio))
    return clips


def add_noise(level: float):
    return lambda audio, seed: audio + level * np.random.default_rng(1000 + seed).standard_normal(audio.shape)


def low_pass(cutoff_hz: float):
    sos = signal.butter(6, cutoff_hz, fs=SR, output="sos")
    return lambda audio, seed: signal.sosfilt(sos, audio, axis=-1)


# ---------------------------------------------------------------- Frechet distance

def google_fad_formula(mu_x, sigma_x, mu_y, sigma_y) -> float:
    """The formula of the reference implementation (google-research frechet_audio_distance,
    fad_utils.frechet_distance), kept verbatim in spirit: no guards, real part taken."""
    diff = mu_x - mu_y
    sqrt_product = linalg.sqrtm(np.dot(sigma_x, sigma_y))
    return float(np.real(diff.dot(diff) + np.trace(sigma_x) + np.trace(sigma_y) - 2 * np.trace(sqrt_product)))


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.normal(size=6), rng.normal(size=6)
    var_a, var_b = rng.uniform(0.2, 3, 6), rng.uniform(0.2, 3, 6)
    # diagonal covariances: |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2
    expected = float(((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum())
    assert frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(expected, rel=1e-9)
    # full covariances sharing eigenvectors (rotated diagonals): the same closed form
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    sigma_a, sigma_b = rotation @ np.diag(var_a) @ rotation.T, rotation @ np.diag(var_b) @ rotation.T
    assert frechet_distance(mu_a, sigma_a, mu_b, sigma_b) == pytest.approx(expected, rel=1e-7)
    # estimated from samples it converges to the same value
    samples_a = rng.multivariate_normal(mu_a, sigma_a, 40000)
    samples_b = rng.multivariate_normal(mu_b, sigma_b, 40000)
    assert fad(samples_a, samples_b) == pytest.approx(expected, rel=0.05)


def test_frechet_distance_agrees_with_the_reference_formula_on_embeddings():
    gen, ref = clip_set(range(8)), clip_set(range(20, 28), add_noise(0.02))
    stats_gen = embedding_statistics(np.concatenate(gen))
    stats_ref = embedding_statistics(np.concatenate(ref))
    ours = frechet_distance(*stats_gen, *stats_ref)
    assert ours > 0
    assert ours == pytest.approx(google_fad_formula(*stats_gen, *stats_ref), rel=1e-6)


def test_frechet_distance_survives_singular_covariances():
    rng = np.random.default_rng(1)
    few = rng.normal(size=(5, 20))  # fewer frames than dims: rank-deficient covariance
    value = fad(few, rng.normal(size=(5, 20)) + 1.0)
    assert np.isfinite(value) and value > 0


def test_fad_is_zero_for_a_set_with_itself_and_grows_with_the_shift():
    base = clip_set(range(12))
    frames = np.concatenate(base)
    same = fad(frames, frames)
    light = fad(frames, np.concatenate(clip_set(range(12), add_noise(0.005))))
    heavy = fad(frames, np.concatenate(clip_set(range(12), add_noise(0.05))))
    filtered = fad(frames, np.concatenate(clip_set(range(12), low_pass(1000))))
    fresh_draw = fad(frames, np.concatenate(clip_set(range(100, 112))))
    assert same == pytest.approx(0.0, abs=1e-6)
    assert 0 < light < heavy
    assert filtered > 10 * max(fresh_draw, 1e-9) or filtered > fresh_draw + 1.0
    assert heavy > fresh_draw


def test_bootstrap_interval_and_fad_inf_are_reported():
    gen, ref = clip_set(range(12), add_noise(0.02), seconds=10.0), clip_set(range(40, 52), seconds=10.0)
    result = fad_with_intervals(gen, ref, bootstrap=60, seed=3)
    assert result.n_generated_clips == 12 and result.n_reference_clips == 12
    assert result.warnings == []
    assert result.n_generated_frames == sum(len(c) for c in gen)
    assert result.ci_low is not None and result.ci_low <= result.ci_high
    assert result.fad_inf is not None and np.isfinite(result.fad_inf)
    # deterministic for a seed
    again = fad_with_intervals(gen, ref, bootstrap=60, seed=3)
    assert (again.ci_low, again.ci_high, again.fad_inf) == (result.ci_low, result.ci_high, result.fad_inf)


@pytest.mark.parametrize("clips, expect_warning", [(3, True), (MIN_CLIPS + 2, False)], ids=["3-clips", "enough"])
def test_small_set_warnings(clips, expect_warning):
    frames = [np.random.default_rng(i).normal(size=(40, 4)) for i in range(clips)]
    result = fad_with_intervals(frames, [f + 0.1 for f in frames], bootstrap=10)
    assert any("clip" in w for w in result.warnings) is expect_warning


# ---------------------------------------------------------------- embeddings

def test_features_embedding_shape_and_determinism():
    embedder = build_embedding("features")
    audio = synth_clip(0, seconds=4.0)
    frames = embedder.embed(audio)
    assert frames.shape == (int(4.0 // embedder.frame_seconds), embedder.dim) and frames.dtype == np.float32
    assert frames.shape[0] == 7  # 0.51 s frames
    assert np.array_equal(frames, embedder.embed(audio))
    assert embedder.embed(np.zeros((1, 100), np.float32)).shape == (1, embedder.dim)  # shorter than a frame


def test_features_embedding_registers_level():
    embedder = build_features()
    loud, quiet = embedder.embed(synth_clip(0)), embedder.embed(0.1 * synth_clip(0))
    assert loud[:, 0].mean() > quiet[:, 0].mean() + 1.0  # c0 follows the level


def tiny_vggish_state(path: Path, widths=(4, 4, 8, 8, 8, 8), hidden=(16, 16, 12)) -> None:
    """A random-weight VGGish in torchvggish's state-dict layout, small widths."""
    import torch

    state, in_channels = {}, 1
    for index, width in zip((0, 3, 6, 8, 11, 13), widths, strict=True):
        state[f"features.{index}.weight"] = torch.randn(width, in_channels, 3, 3) * 0.1
        state[f"features.{index}.bias"] = torch.zeros(width)
        in_channels = width
    sizes = (widths[-1] * 24, *hidden)
    for index, (n_in, n_out) in zip((0, 2, 4), zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        state[f"embeddings.{index}.weight"] = torch.randn(n_out, n_in) * 0.1
        state[f"embeddings.{index}.bias"] = torch.zeros(n_out)
    torch.save(state, path)


def test_vggish_loads_a_torchvggish_state_dict(tmp_path):
    weights = tmp_path / "vggish.pth"
    tiny_vggish_state(weights)
    embedder = build_vggish(str(weights))
    assert (embedder.sample_rate, embedder.channels, embedder.dim) == (16000, 1, 12)
    frames = embedder.embed(synth_clip(0, seconds=2.5, sample_rate=16000))
    assert frames.shape == (2, 12)  # one frame per 0.96 s
    assert np.isfinite(frames).all() and frames.std() > 0
    assert embedder.weights == str(weights)


def test_vggish_without_weights_says_how_to_get_them(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(EmbeddingError, match="--embedding-weights vggish=PATH"):
        build_vggish(None)
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(2)}, bad)
    with pytest.raises(EmbeddingError, match="torchvggish layout"):
        build_vggish(str(bad))


def test_encodec_loads_a_local_model_folder(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    config = EncodecConfig(sampling_rate=8000, audio_channels=1, num_filters=4, hidden_size=16,
                           upsampling_ratios=[4, 4], num_residual_layers=1, codebook_size=16, codebook_dim=16,
                           target_bandwidths=[1.0])
    EncodecModel(config).save_pretrained(tmp_path / "encodec")
    embedder = build_encodec(str(tmp_path / "encodec"))
    assert (embedder.sample_rate, embedder.channels, embedder.dim) == (8000, 1, 16)
    frames = embedder.embed(synth_clip(0, seconds=1.0, sample_rate=8000))
    assert frames.shape == (500, 16) and np.isfinite(frames).all()


def test_encodec_never_downloads_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(EmbeddingError, match="encodec"):
        build_encodec(None)
    with pytest.raises(EmbeddingError, match="not a folder"):
        build_encodec(str(tmp_path / "missing_dir"))


def test_unknown_embedding_is_a_clear_error():
    with pytest.raises(EmbeddingError, match="choose from features"):
        build_embedding("openl3")


# ---------------------------------------------------------------- reference audio

@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_bit_depth_is_normalized(tmp_path, subtype):
    audio = 0.5 * synth_clip(0, seconds=0.5, sample_rate=44100)
    path = tmp_path / f"clip_{subtype}.wav"
    soundfile.write(path, np.repeat(audio, 2, axis=0).T, 44100, subtype=subtype)
    loaded, rate = read_audio(path)
    assert rate == 44100 and loaded.shape == (2, audio.shape[1]) and loaded.dtype == np.float32
    assert np.abs(loaded[0] - audio[0]).max() < 1e-4


def test_conform_resamples_and_mixes_channels():
    stereo = np.stack([synth_clip(0, 1.0, 44100)[0], np.zeros(44100, np.float32)])
    mono = conform(stereo, 44100, 22050, 1)
    assert mono.shape == (1, 22050)
    assert np.abs(mono).max() == pytest.approx(np.abs(stereo[0]).max() / 2, rel=0.1)
    assert conform(stereo[:1], 44100, 44100, 2).shape == (2, 44100)
    assert conform(np.array([0, 16384, -32768], dtype=np.int16), 8000, 8000, 1)[0].tolist() == [0.0, 0.5, -1.0]


@pytest.mark.parametrize("name, role", [("song1_drums.wav", "drums"), ("Bass DI.flac", "bass"),
                                        ("lead_melody.aiff", "melody"), ("master_v3.wav", "mix")])
def test_role_from_file_name(name, role):
    assert role_from_name(name) == role


# ---------------------------------------------------------------- novelty

def random_piece(seed: int, bars: int = BARS) -> dict[str, list[Note]]:
    rng = np.random.default_rng(seed)
    sixteenth = TICKS_PER_BEAT // 4
    drums, bass, melody = [], [], []
    for bar in range(bars):
        base = bar * TICKS_PER_BAR
        for step in range(16):
            for pitch in (36, 38, 42):
                if rng.random() < 0.4:
                    drums.append(Note(base + step * sixteenth, sixteenth, pitch, 100))
        for beat in range(4):
            bass.append(Note(base + beat * TICKS_PER_BEAT, TICKS_PER_BEAT, int(rng.integers(33, 48)), 90))
        for eighth in range(8):
            if rng.random() < 0.8:
                melody.append(Note(base + eighth * 2 * sixteenth, 2 * sixteenth, int(rng.integers(60, 84)), 80))
    return {"drums": drums, "bass": bass, "melody": melody}


def splice(target: dict, source: dict, source_bar: int, target_bar: int, bars: int = 4,
           transpose: int = 0, roles=("drums", "bass", "melody")) -> dict:
    """`target` with `bars` bars of `source` (from source_bar) pasted at target_bar."""
    lo, hi = source_bar * TICKS_PER_BAR, (source_bar + bars) * TICKS_PER_BAR
    t_lo, t_hi = target_bar * TICKS_PER_BAR, (target_bar + bars) * TICKS_PER_BAR
    out = {}
    for role, notes in target.items():
        kept = [n for n in notes if not (t_lo <= n.start < t_hi)] if role in roles else list(notes)
        if role in roles:
            shift = 0 if role == "drums" else transpose
            kept += [Note(n.start - lo + t_lo, n.duration, n.pitch + shift, n.velocity)
                     for n in source[role] if lo <= n.start < hi]
        out[role] = sorted(kept)
    return out


@pytest.fixture(scope="module")
def training():
    pieces = {f"train/song{i}.mid": random_piece(i) for i in range(5)}
    index = NoveltyIndex()
    windows = []
    for source, tracks in pieces.items():
        index.add(source, piece_digests(tracks, TICKS_PER_BEAT))
        windows += piece_windows(source, tracks, TICKS_PER_BEAT, BARS)
    return pieces, index, windows


def test_window_store_round_trip(tmp_path, training):
    pieces, _, windows = training
    store = save_window_notes(windows + windows[:3], TICKS_PER_BEAT, tmp_path / "windows.npz")
    loaded = load_window_notes(tmp_path / "windows.npz")
    assert len(loaded) == len(store) == len(windows)  # duplicates kept once
    assert loaded.rows.dtype == np.int16
    first = loaded.window(1)
    expected = window_rows(pieces["train/song0.mid"], TICKS_PER_BEAT, 4 * TICKS_PER_BAR)
    assert loaded.describe(1) == {"source": "train/song0.mid", "start_bar": 4}
    assert sum(len(v) for v in first.values()) == len(expected)


def shifted(tracks: dict, ticks: int) -> dict:
    """Every note `ticks` later (a copy that starts a 16th late)."""
    return {role: [Note(n.start + ticks, n.duration, n.pitch, n.velocity) for n in notes]
            for role, notes in tracks.items()}


def humanized(tracks: dict, seed: int, jitter_ticks: int = 20) -> dict:
    """A played copy: every onset and length moved up to +-jitter_ticks (20 ticks = 25 ms at
    100 bpm; a hit early enough crosses the bar line) and every velocity changed."""
    rng = np.random.default_rng(seed)
    return {role: sorted(Note(max(0, n.start + int(rng.integers(-jitter_ticks, jitter_ticks + 1))),
                              max(10, n.duration + int(rng.integers(-jitter_ticks, jitter_ticks + 1))), n.pitch,
                              int(np.clip(n.velocity + rng.integers(-25, 26), 1, 127))) for n in notes)
            for role, notes in tracks.items()}


def verdicts(result) -> dict[str, str]:
    parts = result["parts"] if isinstance(result, dict) else {r: p.to_dict() for r, p in result.parts.items()}
    return {role: part["verdict"] for role, part in parts.items()}


def test_novelty_calls_fresh_material_new(training):
    _, index, windows = training
    from stemforge.symbolic.training.window_store import build_window_notes

    result = piece_novelty(random_piece(99), TICKS_PER_BEAT, BARS, index, build_window_notes(windows, TICKS_PER_BEAT))
    assert result["verdict"] == "new"
    assert set(verdicts(result).values()) == {"new"} and set(verdicts(result)) == {"drums", "bass", "melody", "all"}
    assert result["nearest"]["similarity"] < 0.5


def test_novelty_finds_a_verbatim_copy_of_training_bars(training):
    pieces, index, windows = training
    from stemforge.symbolic.training.window_store import build_window_notes

    copied = splice(random_piece(99), pieces["train/song3.mid"], source_bar=4, target_bar=2)
    result = piece_novelty(copied, TICKS_PER_BEAT, BARS, index, build_window_notes(windows, TICKS_PER_BEAT))
    assert result["verdict"] == "copied" and verdicts(result) == dict.fromkeys(("drums", "bass", "melody", "all"),
                                                                                 "copied")
    match = result["parts"]["melody"]["match"]
    assert (match["source"], match["start_bar"], match["training_bar"], match["bars"]) == ("train/song3.mid", 2, 4, 4)
    assert match["transposition"] == 0 and match["shift_steps"] == 0
    near = result["nearest"]
    assert near["similarity"] == pytest.approx(1.0) and near["bar"] == 2 and near["transposition"] == 0
    assert near["training"] == {"source": "train/song3.mid", "start_bar": 4}


def test_novelty_finds_a_transposed_copy(training):
    pieces, index, windows = training
    from stemforge.symbolic.training.window_store import build_window_notes

    copied = splice(random_piece(98), pieces["train/song1.mid"], source_bar=0, target_bar=4, transpose=3,
                    roles=("bass", "melody"))
    result = piece_novelty(copied, TICKS_PER_BEAT, BARS, index, build_window_notes(windows, TICKS_PER_BEAT))
    assert verdicts(result)["bass"] == verdicts(result)["melody"] == "copied"
    assert verdicts(result)["drums"] == "new"
    for role in ("bass", "melody"):
        match = result["parts"][role]["match"]
        assert match["transposition"] == 3 and match["source"] == "train/song1.mid" and match["bars"] == 4
    near = result["nearest"]
    assert near["transposition"] == -3 and near["training"]["source"] == "train/song1.mid"
    assert near["bar"] == 4 and near["similarity"] > 0.4


@pytest.mark.parametrize("sixteenths", [1, 2, 5, 15], ids=lambda n: f"{n}-sixteenths-late")
def test_novelty_finds_a_copy_that_starts_late(training, sixteenths):
    """Before bar digests at every shift, a copy one 16th late matched nothing at any level."""
    pieces, index, _ = training
    late = shifted(pieces["train/song2.mid"], sixteenths * TICKS_PER_BEAT // 4)
    result = assess_tracks(late, TICKS_PER_BEAT, BARS, index)
    assert result.verdict == "copied"
    match = result.parts["drums"].match
    assert match.bars >= COPY_BARS and match.shift_steps == sixteenths * GRID_PER_BEAT // 4
    assert match.source == "train/song2.mid"


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"take-{s}")
def test_novelty_finds_a_played_copy_whose_hits_cross_bar_lines(training, seed):
    """Quantize, then cut into bars: a hit played just before a bar line belongs to the bar
    it is heard in (windowing raw ticks first found 0 of 5 windows of such a copy)."""
    pieces, index, _ = training
    played = humanized(shifted(pieces["train/song4.mid"], TICKS_PER_BEAT // 4), seed)
    early = [n for n in played["drums"] if n.start % TICKS_PER_BAR > TICKS_PER_BAR - 20]
    assert early, "the fixture should put hits just before a bar line"
    result = assess_tracks(played, TICKS_PER_BEAT, BARS, index)
    assert result.verdict == "copied" and result.grid.startswith("snapped to straight")
    assert all(part.verdict == "copied" for part in result.parts.values())


@pytest.mark.parametrize("part, bars, distinctive, verdict", [
    pytest.param("melody", 3, 8, "copied", id="melody-3-bars"),
    pytest.param("bass", 2, 8, "near copy", id="bass-2-bars"),
    pytest.param("drums", 2, 30, "near copy", id="drums-2-bars"),
    pytest.param("drums", 3, 8, "copied", id="drums-3-bars"),
    pytest.param("melody", 6, 7, "new", id="common-bars-only"),
])
def test_verdict_thresholds(part, bars, distinctive, verdict):
    match = Match(bars, 40, distinctive, 0, 0, 0, "train/x.mid", 0, part)
    assert match.verdict == verdict


def test_novelty_index_round_trips_and_refuses_an_old_version(tmp_path, training):
    pieces, index, _ = training
    index.save(tmp_path / "index")
    loaded = NoveltyIndex.load(tmp_path / "index")
    copied = splice(random_piece(97), pieces["train/song0.mid"], 0, 3, transpose=-2)
    assert verdicts(assess_tracks(copied, TICKS_PER_BEAT, BARS, loaded)) == verdicts(
        assess_tracks(copied, TICKS_PER_BEAT, BARS, index))
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    (tmp_path / "index" / "index.json").write_text(json.dumps({**meta, "version": 1}))
    with pytest.raises(IndexVersionError, match="run `pipeline prepare` again"):
        NoveltyIndex.load(tmp_path / "index")


def test_nearest_search_handles_empty_inputs(training):
    _, _, windows = training
    from stemforge.symbolic.training.window_store import build_window_notes

    assert nearest_training_windows([], build_window_notes(windows, TICKS_PER_BEAT)) == []
    assert nearest_training_windows([np.zeros((0, 4), np.int16)], build_window_notes([], TICKS_PER_BEAT)) == [None]


# ---------------------------------------------------------------- run folders, datasets, the report

PROGRAMS = {"drums": 0, "bass": 33, "melody": 0}


def write_run(root: Path, name: str, tracks: dict, genre: str, data_sha: str = "data-a", seed: int = 0,
              stems: bool = True, seconds: float = 2.0, sample_rate: int = 44100) -> Path:
    run = root / name
    conditions = Conditions(genre=genre, bpm=100.0, bars=BARS, seed=seed)
    arrangement = Arrangement(conditions, {r: Track(r, PROGRAMS[r], r == "drums", n) for r, n in tracks.items()})
    arrangement.write_midi(run / "full.mid")
    midi = {"full": "full.mid"}
    for role in tracks:
        arrangement.write_midi(run / "midi" / f"{role}.mid", roles=(role,))
        midi[role] = f"midi/{role}.mid"
    manifest = {"stemforge": 1, "conditions": conditions.to_dict(), "seed": seed, "midi": midi,
                "model": {"path": "/models/m", "sha256": "w" * 64, "data_sha256": data_sha}}
    if stems:
        (run / "stems").mkdir()
        mix = 0
        manifest["stems"] = {}
        for offset, role in enumerate(tracks):
            audio = np.repeat(synth_clip(seed * 10 + offset, seconds, sample_rate), 2, axis=0)
            relative = f"stems/{genre}_100bpm_{role}.wav"
            soundfile.write(run / relative, audio.T, sample_rate, subtype="PCM_24")
            manifest["stems"][role] = relative
            mix = mix + audio
        soundfile.write(run / "mix.wav", (mix / 3).T, sample_rate, subtype="PCM_24")
        manifest.update({"mix": "mix.wav", "sample_rate": sample_rate, "renderer": "sample", "soundfont": None,
                         "kit": None, "dry": False, "tail": "wrap"})
    (run / "run.json").write_text(json.dumps(manifest))
    return run


def write_dataset(root: Path, training, data_sha: str = "data-a") -> Path:
    pieces, index, windows = training
    index.save(root / "index")
    save_window_notes(windows, TICKS_PER_BEAT, root / "index" / "windows.npz")
    (root / "dataset.json").write_text(json.dumps({"kind": "stemforge-dataset", "data_sha256": data_sha}))
    return root


def write_reference_folder(root: Path, clips: int = 4) -> Path:
    root.mkdir(parents=True)
    for i in range(clips):
        soundfile.write(root / f"ref{i:02d}_mix.flac", synth_clip(500 + i, 2.0, 48000)[0], 48000, subtype="PCM_16")
        soundfile.write(root / f"ref{i:02d}_drums.wav", synth_clip(600 + i, 2.0, 44100)[0], 44100)
    return root


@pytest.fixture
def eval_inputs(tmp_path, training):
    pieces, _, _ = training
    data = write_dataset(tmp_path / "data", training)
    runs = tmp_path / "runs"
    runs.mkdir()
    run_dirs = [
        write_run(runs, "fresh_lofi", random_piece(201), "lofi", seed=1),
        write_run(runs, "copy_house", splice(random_piece(202), pieces["train/song2.mid"], 0, 0), "house", seed=2),
        write_run(runs, "other_model", random_piece(203), "lofi", data_sha="data-b", seed=3),
    ]
    reference = write_reference_folder(tmp_path / "my_stems")
    return tmp_path, data, run_dirs, reference


def test_run_eval_writes_a_complete_report(eval_inputs):
    tmp_path, data, run_dirs, reference = eval_inputs
    out = tmp_path / "report"
    report = run_eval(EvalRequest(run_dirs, out, data_dir=data, reference=reference, bootstrap=20), progress=False)
    for name in ("report.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    assert json.loads((out / "report.json").read_text())["fad"] == json.loads(json.dumps(report["fad"]))
    assert not list(tmp_path.glob(".report.partial-*"))

    mix = report["fad"]["features"]["mix"]
    assert mix["n_generated_clips"] == 3 and mix["n_reference_clips"] == 4 and mix["fad"] > 0
    assert report["fad"]["features"]["drums"]["n_reference_clips"] == 4
    assert report["fad"]["features"]["bass"]["fad"] is None  # no bass in the producer's folder
    assert any("clip" in w for w in mix["warnings"])  # 3 clips: small-set warning
    assert report["inputs"]["embeddings"][0]["name"] == "features"
    assert report["inputs"]["reference"]["kind"] == "folder"

    novelty = report["novelty"]
    assert {r["run"]: r["verdict"] for r in novelty["runs"]} == {"fresh_lofi": "new", "copy_house": "copied",
                                                                 "other_model": "new"}
    assert novelty["summary"]["runs"] == {"copied": 1, "near copy": 0, "new": 2, "total": 3}
    copy_run = next(r for r in novelty["runs"] if r["run"] == "copy_house")
    assert copy_run["nearest"]["similarity"] == pytest.approx(1.0)
    assert novelty["thresholds"]["copy_bars"] == COPY_BARS
    assert any("copy_house (copied)" in w for w in report["warnings"])
    assert [m["run"] for m in novelty["model_mismatch"]] == ["other_model"]
    assert set(report["fad_by_genre"]) == {"house", "lofi"} and set(report["novelty_by_genre"]) == {"house", "lofi"}

    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(report["plots"]["distances"]) + 2
    assert "src=\"plots/" not in html  # self-contained
    assert html.count("<table>") == html.count("</table>") >= 4
    markdown = (out / "report.md").read_text()
    assert "| mix |" in markdown and "features" in markdown
    assert "**1** copied" in markdown and "| copy_house | house | **copied** |" in markdown
    # the house row has one generated clip: its caveat is in the table of both documents, not only in the JSON
    assert any("one or two clips" in w for w in report["fad_by_genre"]["house"]["features"]["warnings"])
    caveat = "only 1 generated clip(s): not a score, not comparable"
    assert "| house | features |" in markdown and caveat in markdown.split("FAD per genre")[1]
    assert caveat in html.split("FAD per genre")[1]
    symbolic = report["symbolic"]
    assert set(symbolic["runs"]) == {"fresh_lofi", "copy_house", "other_model"}
    assert symbolic["training_windows"] == 10 and "## Symbolic" in markdown
    kick_snare = next(r for r in symbolic["figures"] if r["name"] == "kick_snare_kept")
    assert 0 < kick_snare["runs"] < 1 and 0 < kick_snare["training_all"] < 1  # random grooves change every bar
    for png in (out / "plots").glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"


def looped_piece(bars: int = BARS) -> dict[str, list[Note]]:
    """A 1-bar loop in A minor: the same kick/snare bar, bass root on the kicks, one melody bar."""
    bar = TICKS_PER_BAR
    drums = [Note(b * bar + t, 120, p, 100) for b in range(bars) for t, p in ((0, 36), (480, 38), (960, 36),
                                                                              (1440, 38))]
    bass = [Note(b * bar + t, 240, 45, 90) for b in range(bars) for t in (0, 960)]
    melody = [Note(b * bar + i * 240, 240, p, 80) for b in range(bars) for i, p in enumerate((69, 72, 76, 72))]
    return {"drums": drums, "bass": bass, "melody": melody}


def test_symbolic_section_tells_a_loop_from_random_training_material(training):
    _, _, windows = training
    from stemforge.symbolic.training.window_store import build_window_notes

    store = build_window_notes(windows, TICKS_PER_BEAT)
    pieces = [RunPiece("loop", "house", BARS, looped_piece(), parse_key("A minor"))]
    section = symbolic_section(pieces, store)
    rows = {r["name"]: r for r in section["figures"]}
    assert rows["melody_self_similarity_lag1"]["runs"] == 1.0 and rows["melody_bars_repeated"]["runs"] == 1.0
    assert rows["melody_self_similarity_lag1"]["training_all"] < 0.2  # random bars share little
    assert rows["kick_snare_kept"]["runs"] == 1.0 and rows["kicks_covered"]["runs"] == 1.0
    assert rows["bass_self_similarity_lag4"]["runs"] == 1.0 and rows["bass_self_similarity_lag4"]["training_all"] is None
    assert rows["key_found"]["runs"] == 1.0 and rows["key_found"]["training_missing"] == "windows carry no asked key"
    assert section["runs"]["loop"]["drum_duplicate_hits"] == 0.0
    assert section["same_genre_windows"] == 0  # training sources are "train/...": no genre folders
    empty = symbolic_section(pieces, None)
    assert empty["training_windows"] == 0 and all(r["training_all"] is None for r in empty["figures"])


def test_an_index_from_an_older_stemforge_is_a_clear_error_before_any_work(eval_inputs, tmp_path):
    _, data, run_dirs, reference = eval_inputs
    meta = json.loads((data / "index" / "index.json").read_text())
    (data / "index" / "index.json").write_text(json.dumps({**meta, "version": 1}))
    with pytest.raises(EvalError, match=rf"version 1, this stemforge reads version {INDEX_VERSION}; run `pipeline "
                       r"prepare` again"):
        run_eval(EvalRequest(run_dirs, tmp_path / "report", data_dir=data, reference=reference, bootstrap=5,
                             cache_dir=tmp_path / "cache"), progress=False)
    assert not (tmp_path / "report").exists() and not (tmp_path / "cache").exists()  # nothing embedded yet


def test_run_eval_refuses_an_existing_out_dir(eval_inputs):
    tmp_path, data, run_dirs, reference = eval_inputs
    (tmp_path / "report").mkdir()
    with pytest.raises(EvalError, match="already exists"):
        run_eval(EvalRequest(run_dirs, tmp_path / "report", data_dir=data, reference=reference), progress=False)


def test_bad_inputs_give_clear_errors(eval_inputs):
    tmp_path, data, run_dirs, reference = eval_inputs
    out = tmp_path / "out"
    silent = write_run(tmp_path / "runs", "no_stems", random_piece(7), "lofi", stems=False)
    with pytest.raises(EvalError, match=r"no_stems/run\.json: the run has no stems"):
        run_eval(EvalRequest([silent], out, data_dir=data, reference=reference), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="holds no audio"):
        run_eval(EvalRequest(run_dirs, out, data_dir=data, reference=tmp_path / "empty"), progress=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "stemforge.json").write_text(json.dumps({"data_sha256": "data-z"}))
    with pytest.raises(EvalError, match="--data: .* was trained on"):
        run_eval(EvalRequest(run_dirs, out, model_dir=model, data_dir=data, reference=reference), progress=False)
    with pytest.raises(EvalError, match="index.json: missing"):
        run_eval(EvalRequest(run_dirs, out, model_dir=model, reference=reference), progress=False)
    with pytest.raises(EvalError, match="--model/--data"):
        run_eval(EvalRequest(run_dirs, out, reference=reference), progress=False)
    with pytest.raises(EvalError, match="unknown embedding"):
        run_eval(EvalRequest(run_dirs, out, data_dir=data, embeddings=("nope",)), progress=False)
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


# ---------------------------------------------------------------- reference MIDI through the renderer

def write_reference_midi(directory: Path, tracks: dict, bpm: float, bars: int, genre: str) -> None:
    directory.mkdir(parents=True)
    score = tracks_to_score([Track(r, PROGRAMS[r], r == "drums", n) for r, n in tracks.items()], bpm=bpm,
                            ticks_per_beat=TICKS_PER_BEAT, total_ticks=bars * TICKS_PER_BAR)
    score.dump_midi(str(directory / "000_x.mid"))
    score.dump_midi(str(directory / "001_x.mid"))
    (directory / "reference.json").write_text(json.dumps([{"file": "000_x.mid", "genre": genre, "bpm": bpm},
                                                          {"file": "001_x.mid", "genre": genre, "bpm": bpm}]))


@pytest.fixture
def fake_renderer(monkeypatch) -> list:
    """A stand-in `audio.render` (synthetic stems, no SoundFont) that records its calls."""
    calls = []

    @dataclass(frozen=True)
    class RenderOptions:
        sample_rate: int = 44100
        preset: str | None = None
        dry: bool = False

    @dataclass
    class StemSet:
        stems: dict
        sample_rate: int

        def mix(self):
            return sum(self.stems.values())

    def render_arrangement(arrangement, options, progress=None):
        calls.append((arrangement, options))
        n = int(arrangement.conditions.bars * 4 * 60 / arrangement.conditions.bpm * options.sample_rate)
        stems = {role: np.repeat(synth_clip(i, n / options.sample_rate, options.sample_rate), 2, axis=0)
                 for i, role in enumerate(arrangement.tracks)}
        return StemSet(stems, options.sample_rate), {}

    fake = types.ModuleType("stemforge.audio.render")
    fake.RenderOptions, fake.render_arrangement = RenderOptions, render_arrangement
    monkeypatch.setitem(sys.modules, "stemforge.audio.render", fake)
    return calls


def test_reference_midi_is_rendered_with_the_runs_renderer(eval_inputs, fake_renderer, tmp_path):
    """The glue around the renderer, with a stand-in module: tempo, bars and genre of the
    reference MIDI and the runs' sample rate reach `render_arrangement`."""
    _, data, run_dirs, _ = eval_inputs
    piece = {r: [n for n in notes if n.start < 2 * TICKS_PER_BAR] for r, notes in random_piece(5).items()}
    write_reference_midi(data / "reference_midi", piece, bpm=92.0, bars=2, genre="jazz")
    calls = fake_renderer
    report = run_eval(EvalRequest(run_dirs, tmp_path / "r", data_dir=data, bootstrap=0, cache_dir=tmp_path / "cache"),
                      progress=False)
    assert len(calls) == 2
    arrangement, options = calls[0]
    assert (arrangement.conditions.bpm, arrangement.conditions.bars, arrangement.conditions.genre) == (92.0, 2, "jazz")
    assert set(arrangement.tracks) == {"drums", "bass", "melody"} and options.sample_rate == 44100
    assert report["inputs"]["reference"]["kind"] == "rendered_midi"
    assert report["fad"]["features"]["bass"]["n_reference_clips"] == 2
    assert report["fad"]["features"]["mix"]["ci_low"] is None  # bootstrap 0: no interval


def test_a_second_eval_takes_the_reference_from_the_cache(eval_inputs, fake_renderer, tmp_path):
    """The reference is rendered and embedded once; a second eval of the same runs renders
    nothing, reads every frame from the cache and gives the same numbers."""
    _, data, run_dirs, _ = eval_inputs
    piece = {r: [n for n in notes if n.start < 2 * TICKS_PER_BAR] for r, notes in random_piece(5).items()}
    write_reference_midi(data / "reference_midi", piece, bpm=92.0, bars=2, genre="jazz")
    cache = tmp_path / "cache"
    first = run_eval(EvalRequest(run_dirs, tmp_path / "r1", data_dir=data, bootstrap=5, cache_dir=cache),
                     progress=False)
    assert len(fake_renderer) == 2
    entries = sorted(cache.rglob("*.frames"))
    assert len(entries) == 2 + 3 * 4  # 2 reference MIDI files + 3 runs x (3 stems + mix)
    assert not list(cache.rglob(".*.partial"))

    second = run_eval(EvalRequest(run_dirs, tmp_path / "r2", data_dir=data, bootstrap=5, cache_dir=cache),
                      progress=False)
    documents = sorted(cache.rglob("eval-documents-v*/training-figures/*.json"))
    assert len(documents) == 1  # the training windows' figures of the symbolic section
    assert len(fake_renderer) == 2  # nothing rendered again
    assert second["inputs"]["cache"]["hits"] == len(entries) + 1 and second["inputs"]["cache"]["written"] == 0
    assert second["fad"] == first["fad"] and second["fad_by_genre"] == first["fad_by_genre"]
    assert second["symbolic"] == first["symbolic"]
    assert "frames cache: `" in (tmp_path / "r2" / "report.md").read_text()


def _reference_frames(ref_dir: Path, runs: list[dict], cache):
    """Reference sources of a MIDI folder embedded with `features` through `cache`."""
    from stemforge.eval.reference import find_reference, reference_sources
    from stemforge.eval.report import embed_sources

    warnings: list[str] = []
    sources = reference_sources(find_reference(ref_dir, "rendered_midi"), runs, warnings)
    return embed_sources(sources, [build_features()], cache, "reference", False, warnings)


def test_frames_cache_misses_on_new_render_settings_and_recomputes_a_corrupt_entry(fake_renderer, tmp_path):
    from stemforge.eval.cache import FrameCache

    piece = {r: [n for n in notes if n.start < 2 * TICKS_PER_BAR] for r, notes in random_piece(6).items()}
    write_reference_midi(tmp_path / "ref", piece, bpm=100.0, bars=2, genre="lofi")
    runs = [RunManifest(conditions=Conditions(), seed=1, midi={}, renderer="sample", sample_rate=22050, dry=False,
                        tail="wrap")]
    root = tmp_path / "cache"

    first = _reference_frames(tmp_path / "ref", runs, FrameCache.open(root))
    assert len(fake_renderer) == 2 and len(first.labels) == 2 * 4
    cache = FrameCache.open(root)
    again = _reference_frames(tmp_path / "ref", runs, cache)
    assert len(fake_renderer) == 2 and (cache.hits, cache.misses) == (2, 0)
    assert again.labels == first.labels
    assert all(np.array_equal(a, b) for a, b in zip(again.frames["features"], first.frames["features"]))

    # another renderer setting (dry, as run.json records it) is another key: rendered again
    _reference_frames(tmp_path / "ref", [dataclasses.replace(runs[0], dry=True)], FrameCache.open(root))
    assert len(fake_renderer) == 4 and fake_renderer[-1][1].dry is True

    # a damaged entry is found by its digest, reported, rendered again and replaced
    entries = sorted((root / "eval-frames-v1" / "features").glob("*.frames"))
    assert len(entries) == 4
    victim = next(e for e in entries
                  if not json.loads(e.read_bytes().split(b"\n", 1)[0])["key"]["source"]["render"]["options"]["dry"])
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF
    victim.write_bytes(bytes(data))
    cache = FrameCache.open(root)
    repaired = _reference_frames(tmp_path / "ref", runs, cache)
    assert len(fake_renderer) == 5 and cache.hits == 1
    assert len(cache.notes) == 1 and "corrupt" in cache.notes[0] and "sha256" in cache.notes[0]
    assert all(np.array_equal(a, b) for a, b in zip(repaired.frames["features"], first.frames["features"]))
    victim.write_bytes(victim.read_bytes()[:100])  # cut short, as a disk-full write would be
    cache = FrameCache.open(root)
    _reference_frames(tmp_path / "ref", runs, cache)
    assert len(fake_renderer) == 6 and "corrupt" in cache.notes[0]
    _reference_frames(tmp_path / "ref", runs, FrameCache.open(root))
    assert len(fake_renderer) == 6  # the recomputed entry is good again

    # --no-cache: neither read nor written
    off = FrameCache.open(root, enabled=False)
    _reference_frames(tmp_path / "ref", runs, off)
    assert len(fake_renderer) == 8 and off.describe()["written"] == 0 and len(list(root.rglob("*.frames"))) == 4


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    from stemforge.eval.cache import FrameCache
    from stemforge.symbolic.core.cache import default_cache_root

    monkeypatch.setenv("STEMFORGE_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_root() == tmp_path / "mine"
    monkeypatch.delenv("STEMFORGE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "stemforge"
    assert FrameCache.open(tmp_path / "flag").root == tmp_path / "flag" / "eval-frames-v1"  # --cache-dir wins


def test_plain_progress_lines_when_not_a_terminal(capsys):
    from stemforge.eval.report import _progress

    assert list(_progress(iter(range(40)), 40, "render + embed reference", True, "file")) == list(range(40))
    err = capsys.readouterr().err
    assert "\r" not in err and "render + embed reference: 4/40 files" in err
    assert err.strip().splitlines()[-1].startswith("render + embed reference: 40 file(s) in")
    assert len(err.strip().splitlines()) == 10  # every 10%, the last line with the time


def test_overlapping_intervals_are_said_to_be_indistinguishable():
    from stemforge.eval.report import compare_rows, comparison_sentences

    def row(value, low, high, clips=12):
        return {"fad": value, "ci_low": low, "ci_high": high, "n_generated_clips": clips, "n_reference_clips": 40}

    compared = compare_rows({"drums": row(2.0, 1.5, 3.0), "bass": row(2.6, 2.2, 3.4), "melody": row(9.0, 8.0, 10.0),
                             "mix": row(4.0, 3.0, 5.0, clips=2), "gone": {"fad": None}})
    assert compared == {"overlapping": [["drums", "bass"]], "separate": [["drums", "melody"], ["bass", "melody"]],
                        "no_interval": ["mix"]}
    text = " ".join(comparison_sentences(compared, "roles"))
    assert "Cannot be told apart (95% intervals overlap): drums and bass." in text
    assert "Can be told apart" in text and "bass and melody" in text and "no usable interval" in text and "mix" in text
    alike = compare_rows({"lofi": row(2.0, 1.0, 3.0), "house": row(2.5, 1.5, 3.5)})
    assert "These genres cannot be told apart" in comparison_sentences(alike, "genres")[0]
    assert compare_rows({"mix": row(2.0, 1.0, 3.0)}) is None


def test_reference_midi_renders_through_the_real_renderer(tmp_path):
    render = pytest.importorskip("stemforge.audio.render")
    from stemforge.eval.reference import render_midi

    piece = {r: [n for n in notes if n.start < 2 * TICKS_PER_BAR] for r, notes in random_piece(5).items()}
    write_reference_midi(tmp_path / "ref", piece, bpm=100.0, bars=2, genre="lofi")
    clips = render_midi(tmp_path / "ref" / "000_x.mid", render.RenderOptions())
    assert {c.role for c in clips} == {"drums", "bass", "melody", "mix"}
    for clip in clips:
        assert clip.audio.ndim == 2 and np.abs(clip.audio).max() > 1e-4, clip.role
        assert clip.audio.shape[1] >= int(2 * 4 * 60 / 100 * clip.sample_rate) - 1


def test_without_model_or_data_eval_uses_the_model_the_runs_were_made_with(tmp_path: Path) -> None:
    from stemforge.eval.report import model_of_runs

    def made_with(path: Path) -> RunManifest:
        return RunManifest(conditions=Conditions(), seed=1, midi={}, model={"path": str(path)})

    model = tmp_path / "model"
    model.mkdir()
    (model / "stemforge.json").write_text("{}")
    same = [made_with(model), made_with(model)]
    assert model_of_runs(same) == model
    assert model_of_runs([*same, made_with(tmp_path / "other")]) is None
    assert model_of_runs([made_with(tmp_path / "gone")]) is None


# ---------------------------------------------------------------- PANN CNN14 embedding

def tiny_pann_state(path: Path, widths=(4, 8, 8, 8, 8, 16), hidden=16, seed=0) -> None:
    """A random-weight CNN14 checkpoint in audioset_tagging_cnn's layout and key names
    (`{"model": state_dict}`, with the extractor and classifier keys), small widths."""
    import librosa
    import torch

    generator = torch.Generator().manual_seed(seed)

    def batch_norm(prefix: str, width: int, mean: float = 0.0, var: float = 1.0) -> None:
        state[f"{prefix}.weight"] = 1.0 + 0.1 * torch.randn(width, generator=generator)
        state[f"{prefix}.bias"] = 0.1 * torch.randn(width, generator=generator)
        state[f"{prefix}.running_mean"] = torch.full((width,), mean)
        state[f"{prefix}.running_var"] = torch.full((width,), var)
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    state = {
        "spectrogram_extractor.stft.conv_real.weight": torch.randn(513, 1, 1024, generator=generator),
        "spectrogram_extractor.stft.conv_imag.weight": torch.randn(513, 1, 1024, generator=generator),
        "logmel_extractor.melW": torch.from_numpy(librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50,
                                                                      fmax=14000).T.copy()),
    }
    batch_norm("bn0", 64, mean=-40.0, var=400.0)  # log-mel in dB
    in_channels = 1
    for index, width in enumerate(widths, start=1):
        for conv, n_in in (("conv1", in_channels), ("conv2", width)):
            state[f"conv_block{index}.{conv}.weight"] = torch.randn(width, n_in, 3, 3, generator=generator) * 0.3
        batch_norm(f"conv_block{index}.bn1", width)
        batch_norm(f"conv_block{index}.bn2", width)
        in_channels = width
    state["fc1.weight"] = torch.randn(hidden, widths[-1], generator=generator) * 0.3
    state["fc1.bias"] = 0.1 * torch.ones(hidden)
    state["fc_audioset.weight"] = torch.randn(527, hidden, generator=generator)
    state["fc_audioset.bias"] = torch.zeros(527)
    torch.save({"model": state}, path)


def test_pann_loads_a_cnn14_checkpoint_and_embeds_conformed_audio(tmp_path):
    from stemforge.eval.embeddings import build_pann

    weights = tmp_path / "Cnn14_mAP=0.431.pth"
    tiny_pann_state(weights)
    embedder = build_embedding("pann", str(weights))
    assert (embedder.name, embedder.sample_rate, embedder.channels, embedder.dim) == ("pann", 32000, 1, 16)
    assert embedder.frame_seconds == 1.0 and embedder.weights == str(weights)

    stereo = np.concatenate([synth_clip(1, 2.5, 44100), synth_clip(2, 2.5, 44100)])  # 44.1 kHz stereo
    audio = conform(stereo, 44100, embedder.sample_rate, embedder.channels)
    assert audio.shape == (1, 80000)
    frames = embedder.embed(audio)
    assert frames.shape == (2, 16) and frames.dtype == np.float32  # one frame per 1 s window
    assert np.isfinite(frames).all() and (frames >= 0).all() and frames.std() > 0  # after fc1's ReLU
    assert np.array_equal(frames, embedder.embed(audio))
    assert np.array_equal(frames, build_pann(str(weights)).embed(audio))  # a rebuild is the same network
    other = embedder.embed(conform(synth_clip(3, 2.5, 44100), 44100, 32000, 1))
    assert not np.allclose(frames, other)
    assert not np.allclose(frames[0], frames[1])  # the two windows differ
    assert embedder.embed(np.zeros((1, 500), np.float32)).shape == (1, 16)  # shorter than a window


def test_pann_builds_its_mel_bank_when_the_checkpoint_has_none(tmp_path):
    import torch

    from stemforge.eval.embeddings import build_pann

    full, bare = tmp_path / "full.pth", tmp_path / "bare.pth"
    tiny_pann_state(full)
    state = torch.load(full, weights_only=True)["model"]
    torch.save({k: v for k, v in state.items() if not k.startswith("logmel_extractor.")}, bare)  # no "model" key
    audio = conform(synth_clip(4, 1.5, 44100), 44100, 32000, 1)
    np.testing.assert_allclose(build_pann(str(bare)).embed(audio), build_pann(str(full)).embed(audio),
                               rtol=1e-4, atol=1e-5)


def test_pann_checkpoint_errors_are_one_line_and_name_the_file(tmp_path, monkeypatch):
    import torch

    from stemforge.eval.embeddings import build_pann

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cases = {}
    with pytest.raises(EvalError) as cases["default"]:
        build_pann(None)
    missing = tmp_path / "nowhere" / "Cnn14_mAP=0.431.pth"
    with pytest.raises(EvalError) as cases["missing"]:
        build_embedding("pann", str(missing))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file\n" * 10)
    with pytest.raises(EvalError) as cases["corrupt"]:
        build_pann(str(corrupt))
    wrong = tmp_path / "vggish.pth"
    tiny_vggish_state(wrong)
    with pytest.raises(EvalError) as cases["wrong"]:
        build_pann(str(wrong))
    mismatched = tmp_path / "mismatched.pth"
    tiny_pann_state(mismatched)
    state = torch.load(mismatched, weights_only=True)
    state["model"]["conv_block3.conv2.weight"] = torch.zeros(8, 5, 3, 3)
    torch.save(state, mismatched)
    with pytest.raises(EvalError) as cases["mismatched"]:
        build_pann(str(mismatched))
    with pytest.raises(EvalError) as cases["url"]:
        build_pann("https://example.com/Cnn14_mAP=0.431.pth")

    for case, info in cases.items():
        message = str(info.value)
        assert "\n" not in message and message.startswith("pann: "), (case, message)
    assert "--embedding-weights pann=PATH" in str(cases["default"].value)
    assert str(tmp_path / "hub") in str(cases["default"].value)
    assert str(missing) in str(cases["missing"].value) and "--embedding-weights pann=PATH" in str(cases["missing"].value)
    assert str(corrupt) in str(cases["corrupt"].value) and "not a readable" in str(cases["corrupt"].value)
    assert str(wrong) in str(cases["wrong"].value) and "CNN14" in str(cases["wrong"].value)
    assert str(mismatched) in str(cases["mismatched"].value) and "CNN14" in str(cases["mismatched"].value)
    assert "local file" in str(cases["url"].value)


def test_identical_audio_in_two_roles_is_two_cache_entries(tmp_path):
    """Two silent stems have the same bytes; keyed by bytes alone, the second was counted
    under the first one's role."""
    from stemforge.eval.cache import key_digest
    from stemforge.eval.reference import audio_key

    silent = tmp_path / "silence.wav"
    soundfile.write(silent, np.zeros((4410, 2), dtype=np.float32), 44100)
    assert key_digest(audio_key(silent, "bass")) != key_digest(audio_key(silent, "melody"))
