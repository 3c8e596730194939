"""Tokens, data preparation, training and grammar-constrained sampling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest
import symusic

from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.decoding.model import load_composer
from stemforge.symbolic.music.arrangement import Note, Track, read_tracks
from stemforge.symbolic.music.conditions import ROLES
from stemforge.symbolic.music.tokenizer import ComposerTokenizer, TokenizerSpec
from stemforge.symbolic.runtime.grammar import GrammarError, GrammarState, GrammarTables
from stemforge.symbolic.runtime.sampling import SamplePlan, Sampler, SamplingSettings
from stemforge.symbolic.training.prepare import PrepareError, prepare_dataset
from tests.midi_fixtures import GROOVES, groove_tracks, write_groove

TOKENIZER = ComposerTokenizer(TokenizerSpec(genres=list(GROOVES)))


# ------------------------------------------------------------------ tokenizer

@pytest.mark.parametrize("genre", sorted(GROOVES))
def test_tokenizer_round_trip_keeps_notes_onsets_durations_and_drums(genre: str) -> None:
    tracks = groove_tracks(genre, bars=4, tonic=2, rng=np.random.default_rng(0))
    ids = TOKENIZER.encode(tracks, TICKS_PER_BEAT, genre=genre, bpm=97.0, key="D minor", density="normal", bars=4)
    decoded = TOKENIZER.decode_tracks(ids)
    assert set(decoded) == set(ROLES)
    for role, track in tracks.items():
        got = decoded[role]
        assert got.is_drum == (role == "drums")
        assert [(n.start, n.pitch) for n in got.notes] == [(n.start, n.pitch) for n in track.notes], role
        if role != "drums":  # drums are one-shots: no duration token
            assert [n.duration for n in got.notes] == [n.duration for n in track.notes], role
        # 8 velocity bins over 1-127: within half a bin
        assert all(abs(a.velocity - b.velocity) <= 8 for a, b in zip(got.notes, track.notes))


def test_every_track_has_exactly_the_requested_bars_even_when_silent_at_the_end() -> None:
    sparse = {"bass": Track("bass", 33, False, [Note(0, 480, 40, 90)])}
    ids = TOKENIZER.encode(sparse, TICKS_PER_BEAT, genre="rock", bpm=120, key="E minor", density="sparse", bars=8)
    segment = TOKENIZER.split_tracks(ids)[0]
    assert segment.count(TOKENIZER.bar_id) == 8


def test_written_midi_has_the_exact_tempo_time_signature_and_drum_channel(tmp_path: Path) -> None:
    path = write_groove(tmp_path / "groove.mid", "house", bpm=123.5, bars=2)
    midi = mido.MidiFile(path)
    metas = [m for t in midi.tracks for m in t if m.is_meta]
    tempo = next(m.tempo for m in metas if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(123.5, abs=1e-3)
    signature = next(m for m in metas if m.type == "time_signature")
    assert (signature.numerator, signature.denominator) == (4, 4)
    drum_channels = {m.channel for t in midi.tracks for m in t if m.type == "note_on"
                     and any(x.type == "track_name" and x.name == "drums" for x in t)}
    assert drum_channels == {9}
    assert set(read_tracks(path)) == set(ROLES)
    ends = [sum(m.time for m in track) for track in midi.tracks]
    assert max(ends) == 2 * 4 * midi.ticks_per_beat  # the clip is exactly 2 bars in a DAW


def test_a_clip_whose_last_bar_is_silent_still_lasts_every_bar(tmp_path: Path) -> None:
    from stemforge.symbolic.music.arrangement import Arrangement
    from stemforge.symbolic.music.conditions import Conditions

    path = tmp_path / "short.mid"
    Arrangement(Conditions(bars=4), {"bass": Track("bass", 33, False, [Note(0, 480, 40, 90)])}).write_midi(path)
    midi = mido.MidiFile(path)
    assert max(sum(m.time for m in track) for track in midi.tracks) == 4 * 4 * midi.ticks_per_beat


# ------------------------------------------------------------------ prepare

def _odd_folder(root: Path) -> Path:
    folder = root / "mixed"
    (folder / "nested").mkdir(parents=True)
    write_groove(folder / "FunkyBeat104bpm.mid", "hiphop", bpm=104, bars=8)
    write_groove(folder / "nested" / "house_groove.midi", "house", bpm=124, bars=8, seed=1)
    (folder / "corrupt.mid").write_bytes(b"MThd this is not midi at all")
    (folder / "notes.txt").write_text("not a midi file and not named like one")
    empty = symusic.Score(480)
    empty.tracks.append(symusic.Track(name="nothing"))
    empty.dump_midi(str(folder / "empty.mid"))
    waltz = mido.MidiFile(type=0, ticks_per_beat=96)  # type 0, 3/4, another resolution
    track = mido.MidiTrack([mido.MetaMessage("time_signature", numerator=3, denominator=4)])
    for beat in range(24):
        track += [mido.Message("note_on", note=60 + beat % 5, velocity=80, time=0 if beat == 0 else 0),
                  mido.Message("note_off", note=60 + beat % 5, velocity=0, time=96)]
    waltz.tracks.append(track)
    waltz.save(folder / "waltz.mid")
    type0 = mido.MidiFile(type=0, ticks_per_beat=96)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100))])
    for step in range(64):
        track += [mido.Message("note_on", channel=9, note=36 if step % 4 == 0 else 42, velocity=90, time=0),
                  mido.Message("note_off", channel=9, note=36 if step % 4 == 0 else 42, velocity=0, time=48)]
    type0.tracks.append(track)
    type0.save(folder / "type0_drums.mid")
    return folder


def test_prepare_skips_bad_files_with_reasons_and_never_stops(tmp_path: Path) -> None:
    folder = _odd_folder(tmp_path)
    summary = prepare_dataset(folder, tmp_path / "data", progress=False)
    report = json.loads((tmp_path / "data" / "prepare_report.json").read_text())
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"corrupt.mid", "empty.mid", "waltz.mid"}
    assert "unreadable" in skipped["corrupt.mid"]
    assert "no notes" in skipped["empty.mid"]
    assert "4/4" in skipped["waltz.mid"]
    used = {u["file"]: u for u in report["used"]}
    assert used["FunkyBeat104bpm.mid"]["bpm"] == 104 and used["FunkyBeat104bpm.mid"]["genre"] == "funk"
    assert used["type0_drums.mid"]["bpm"] == pytest.approx(100) and used["type0_drums.mid"]["roles"] == ["drums"]
    assert summary["files"] == {"found": 6, "used": 3, "skipped": 3}
    assert (tmp_path / "data" / "prepare_report.md").read_text().count("|") > 10
    assert not (tmp_path / "data.partial").exists()


def test_prepare_splits_by_source_and_writes_the_index(tiny_dataset: Path) -> None:
    report = json.loads((tiny_dataset / "prepare_report.json").read_text())
    splits = {u["file"]: u["split"] for u in report["used"]}
    assert set(splits.values()) == {"train", "valid"}
    summary = json.loads((tiny_dataset / "dataset.json").read_text())
    assert summary["windows"]["valid"] > 0 and summary["sequences"]["train"] > summary["windows"]["train"]
    assert (tiny_dataset / "index" / "index.npz").is_file()
    from stemforge.symbolic.music.canonical import NoveltyIndex

    index = NoveltyIndex.load(tiny_dataset / "index")
    train_files = {f for f, s in splits.items() if s == "train"}
    assert set(index.sources) == train_files  # validation songs never enter the novelty index
    assert len(list((tiny_dataset / "reference_midi").glob("*.mid"))) > 0


@pytest.mark.parametrize("case", ["empty_folder", "only_corrupt", "existing_out"])
def test_prepare_errors(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "midi"
    folder.mkdir()
    out = tmp_path / "data"
    if case == "only_corrupt":
        (folder / "bad.mid").write_bytes(b"garbage")
    if case == "existing_out":
        write_groove(folder / "a.mid", "rock", 120)
        out.mkdir()
    with pytest.raises(PrepareError):
        prepare_dataset(folder, out, progress=False)
    assert not (tmp_path / "data.partial").exists()


# ------------------------------------------------------------------ training

def test_tiny_model_trains_and_its_loss_falls(tiny_model: Path) -> None:
    history = json.loads((tiny_model / "history.json").read_text())
    losses = [loss for _, loss in history["train"]]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    meta = json.loads((tiny_model / "stemforge.json").read_text())
    assert meta["data_sha256"] and meta["val_loss"] < losses[0]
    assert (tiny_model / "loss.png").stat().st_size > 5000
    assert (tiny_model / "index" / "index.npz").is_file()
    composer = load_composer(tiny_model)
    assert composer.genres == ["hiphop", "house", "rock"]


def test_resume_continues_from_the_checkpoint(tiny_dataset: Path, tmp_path: Path) -> None:
    from stemforge.symbolic.training.train import TrainConfig, TrainError, train

    out = tmp_path / "model"
    config = TrainConfig.load("tiny")
    train(tiny_dataset, out, config, steps=20, progress=False)
    with pytest.raises(TrainError, match="already exists"):
        train(tiny_dataset, out, TrainConfig.load("tiny"), steps=30, progress=False)
    meta = train(tiny_dataset, out, TrainConfig.load("tiny"), resume=True, steps=30, progress=False)
    assert meta["steps"] == 30
    history = json.loads((out / "history.json").read_text())
    assert [s for s, _ in history["train"]] == list(range(1, 31))


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    from stemforge.symbolic.training.train import TrainConfig, TrainError

    path = tmp_path / "bad.yaml"
    path.write_text("n_layer: 2\nlearnin_rate: 0.1\n")
    with pytest.raises(TrainError, match="learnin_rate"):
        TrainConfig.load(path)


# ------------------------------------------------------------------ sampling

def _check_valid(tracks: dict[str, Track], roles: tuple[str, ...], bars: int) -> None:
    assert set(tracks) == set(roles)
    for role, track in tracks.items():
        assert track.notes, role
        assert max(n.start + n.duration for n in track.notes) <= bars * TICKS_PER_BAR, role
        assert min(n.start for n in track.notes) >= 0


@pytest.mark.parametrize("bars", [1, 4, 8])
def test_sampling_is_always_valid_with_exact_bars(tiny_model: Path, bars: int) -> None:
    composer = load_composer(tiny_model)
    sampler = Sampler(composer)
    for seed in range(4):
        plan = SamplePlan(composer.tokenizer.prefix_ids("house", 124, "A minor", "normal", bars), ROLES, bars)
        ids = sampler.sample(plan, SamplingSettings(temperature=1.5, top_p=1.0), seed)
        assert ids[: len(plan.prefix_ids)] == plan.prefix_ids
        segments = composer.tokenizer.split_tracks(ids)
        assert [s.count(composer.tokenizer.bar_id) for s in segments] == [bars] * 3
        _check_valid(composer.tokenizer.decode_tracks(ids), ROLES, bars)


def test_grammar_refuses_a_token_that_would_break_the_bar_count() -> None:
    tables = GrammarTables(TOKENIZER)
    state = GrammarState(tables, ("bass",), bars=1)
    for token in ("Track_Start", "Program_33", "Bar_None"):
        state.advance(TOKENIZER.vocab[token])
    with pytest.raises(GrammarError):
        state.advance(TOKENIZER.vocab["Bar_None"])  # a second bar in a 1-bar piece
    with pytest.raises(GrammarError):
        state.advance(TOKENIZER.vocab["PitchDrum_36"])  # drum sound in the bass


def test_tracks_given_as_context_are_kept_token_for_token(tiny_model: Path) -> None:
    composer = load_composer(tiny_model)
    tokenizer = composer.tokenizer
    drums = groove_tracks("rock", 4, 0, np.random.default_rng(1))["drums"]
    context = tokenizer.encode_track(drums, TICKS_PER_BEAT, 4)
    plan = SamplePlan(tokenizer.prefix_ids("rock", 120, "E minor", "normal", 4), ("drums", "bass", "melody"), 4,
                      {"drums": context})
    ids = Sampler(composer).sample(plan, SamplingSettings(), seed=5)
    assert tokenizer.split_tracks(ids)[0] == context
    decoded = tokenizer.decode_tracks(ids)
    assert [(n.start, n.pitch) for n in decoded["drums"].notes] == [(n.start, n.pitch) for n in drums.notes]


def test_same_seed_same_tokens_other_seed_other_tokens(tiny_model: Path) -> None:
    composer = load_composer(tiny_model)
    plan = SamplePlan(composer.tokenizer.prefix_ids("hiphop", 90, "C minor", "normal", 4), ROLES, 4)
    first = Sampler(composer).sample(plan, SamplingSettings(), seed=11)
    second = Sampler(composer).sample(plan, SamplingSettings(), seed=11)
    third = Sampler(composer).sample(plan, SamplingSettings(), seed=12)
    assert first == second and first != third


def test_fast_decoder_matches_the_transformers_forward(tiny_model: Path) -> None:
    import torch

    from stemforge.symbolic.decoding.decoder import FastDecoder

    composer = load_composer(tiny_model)
    ids = composer.tokenizer.prefix_ids("rock", 120, "E minor", "normal", 4) + [composer.tokenizer.track_start_id]
    decoder = FastDecoder.from_directory(tiny_model)
    ours = decoder.forward(ids[:4])
    ours = decoder.forward(ids[4:])
    with torch.no_grad():
        reference = composer.model(torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(ours, reference, atol=1e-4)


def test_shipped_configs_load() -> None:
    from stemforge.symbolic.training.train import TrainConfig

    for name in ("tiny", "small"):
        assert TrainConfig.load(name).n_layer >= 1


def test_copy_of_model_dir_loads(tiny_model: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_model, tmp_path / "copy")
    assert load_composer(tmp_path / "copy").max_bars >= 8


def test_key_guidance_keeps_bass_and_melody_in_the_requested_key(tiny_model: Path) -> None:
    from stemforge.symbolic.music.keys import parse_key

    composer = load_composer(tiny_model)
    sampler = Sampler(composer)
    scale = parse_key("F# minor").scale_pitch_classes

    def in_key_share(key_bias: float) -> float:
        notes = []
        for seed in range(3):
            plan = SamplePlan(composer.tokenizer.prefix_ids("rock", 120, "F# minor", "normal", 4), ROLES, 4,
                              key="F# minor")
            tracks = composer.tokenizer.decode_tracks(
                sampler.sample(plan, SamplingSettings(key_bias=key_bias), seed))
            notes += [n for role in ("bass", "melody") for n in tracks[role].notes]
        return float(np.mean([n.pitch % 12 in scale for n in notes]))

    assert in_key_share(8.0) == 1.0  # a strong bias leaves no room outside the scale
    assert in_key_share(8.0) > in_key_share(0.0)


@pytest.mark.parametrize("feeds", [[4, 1, 1, 1], [1] * 8, [12, 3]], ids=["prefix-then-steps", "token-by-token",
                                                                       "forced-runs"])
def test_compiled_decoder_matches_the_torch_decoder(tiny_model: Path, feeds: list[int]) -> None:
    """The compiled step gives the torch decoder's logits, fed one token at a time (sampling)
    or in runs (forced bars), so both decoders sample the same distribution."""
    from stemforge.symbolic.decoding.compiled_decoder import CompiledDecoder
    from stemforge.symbolic.decoding.decoder import FastDecoder

    composer = load_composer(tiny_model)
    ids = composer.tokenizer.prefix_ids("rock", 120, "E minor", "normal", 4) + [composer.tokenizer.track_start_id]
    ids = (ids * 3)[: sum(feeds)]
    reference, compiled = FastDecoder.from_directory(tiny_model), CompiledDecoder.from_directory(tiny_model)
    fed = 0
    for count in feeds:
        expected, got = reference.forward(ids[fed:fed + count]).numpy(), compiled.forward(ids[fed:fed + count])
        fed += count
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"after {fed} tokens")
    assert compiled.length == fed


def test_the_int8_decoder_computes_with_its_rounded_weights_and_an_int8_cache(tiny_model: Path) -> None:
    """The int8 decoder's matrices are the float32 ones rounded to 255 levels per output column
    (each within half a level, the same bytes every time), and so is its KV cache, per head and
    position: the first layer's keys and values are the float32 decoder's over the same rounded
    weights within half a level of their largest magnitude, with that scale kept beside them. Its
    logits stay near that decoder's (2% of their spread) and near the float32 model's (10%)."""
    from stemforge.symbolic.decoding.compiled_decoder import (
        CompiledDecoder,
        DecoderWeights,
        Int8Matrices,
        StepMatrices,
    )

    weights = DecoderWeights.from_directory(tiny_model)
    int8, rounded = Int8Matrices.of(weights)
    again, _ = Int8Matrices.of(weights)
    for name in ("attn", "proj", "fc", "mlp"):
        matrix, quantized, scale = getattr(weights, f"{name}_w"), getattr(int8, f"{name}_w"), getattr(int8, f"{name}_s")
        assert quantized.dtype == np.int8 and np.abs(quantized).max() == 127
        assert np.all(np.abs(getattr(rounded, f"{name}_w") - matrix) <= scale[:, None, :] * 0.5001)
        assert np.array_equal(quantized, getattr(again, f"{name}_w"))
    composer = load_composer(tiny_model)
    ids = composer.tokenizer.prefix_ids("rock", 120, "E minor", "normal", 4) + [composer.tokenizer.track_start_id]
    int8_decoder = CompiledDecoder(weights, matrices=StepMatrices.of(weights, int8=True))
    same_math, float32 = CompiledDecoder(rounded), CompiledDecoder(weights)
    for token in ids:
        got, expected, original = int8_decoder.forward([token]), same_math.forward([token]), float32.forward([token])
        assert np.abs(got - expected).max() < 0.02 * (expected.max() - expected.min())
        assert np.abs(got - original).max() < 0.1 * (original.max() - original.min())
    assert int8_decoder.keys.dtype == np.int8 and same_math.keys.dtype == np.float32
    fed = len(ids)
    # layer 0 of row 0: the same inputs in both decoders; keys by position (tiles of positions), values by dim
    keys = int8_decoder.keys[0, 0].transpose(0, 1, 3, 2).reshape(int8_decoder.keys.shape[2], -1,
                                                                  int8_decoder.keys.shape[4])[:, :fed]
    exact_keys = same_math.keys[0, 0].transpose(0, 1, 3, 2).reshape(keys.shape[0], -1, keys.shape[2])[:, :fed]
    values = int8_decoder.values[0, 0].transpose(0, 2, 1, 3).reshape(keys.shape[0], -1, keys.shape[2])[:, :fed]
    exact_values = same_math.values[0, 0].transpose(0, 2, 1, 3).reshape(keys.shape[0], -1, keys.shape[2])[:, :fed]
    for stored, exact, scales in ((keys, exact_keys, int8_decoder.key_scales[0, 0, :, :fed]),
                                  (values, exact_values, int8_decoder.value_scales[0, 0, :, :fed])):
        assert np.abs(stored).max() == 127
        np.testing.assert_allclose(scales, np.abs(exact).max(axis=2) / 127, rtol=1e-3)
        assert np.all(np.abs(stored * scales[..., None] - exact) <= scales[..., None] * 0.51)


def test_compiled_decoder_refuses_to_run_past_the_context(tiny_model: Path) -> None:
    from stemforge.symbolic.core.errors import UserError
    from stemforge.symbolic.decoding.compiled_decoder import CompiledDecoder

    decoder = CompiledDecoder.from_directory(tiny_model)
    decoder.forward([3] * (decoder.max_tokens - 1))
    with pytest.raises(UserError, match="context of"):
        decoder.forward([3, 3])
    assert decoder.length == decoder.max_tokens - 1  # the refused call wrote nothing


@pytest.mark.parametrize("decoder", ["int8", "compiled", "torch"])
def test_each_decoder_is_reproducible_per_seed_and_valid(tiny_model: Path, decoder: str) -> None:
    composer = load_composer(tiny_model)
    plan = SamplePlan(composer.tokenizer.prefix_ids("hiphop", 90, "C minor", "normal", 2), ROLES, 2)
    settings = SamplingSettings(decoder=decoder)
    first, second = Sampler(composer).sample(plan, settings, seed=3), Sampler(composer).sample(plan, settings, seed=3)
    assert first == second
    _check_valid(composer.tokenizer.decode_tracks(first), ROLES, 2)


def test_draw_follows_top_k_top_p_the_mask_and_the_probabilities() -> None:
    from stemforge.symbolic.decoding.draw import draw_token

    logits = np.log(np.array([0.1, 0.4, 0.2, 0.3], np.float32))
    everything = np.ones(4, bool)
    uniforms = (np.arange(10_000) + 0.5) / 10_000
    counts = np.bincount([draw_token(logits, everything, 1.0, 0, 1.0, u) for u in uniforms], minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.4, 0.2, 0.3], atol=1e-3)
    assert {draw_token(logits, everything, 1.0, 1, 1.0, u) for u in uniforms[::97]} == {1}  # top-k 1: the argmax
    # top-p 0.6: 0.4 and 0.3 are kept (0.4 before the 0.3), 0.2 is not (0.7 before it)
    assert {draw_token(logits, everything, 1.0, 0, 0.6, u) for u in uniforms[::97]} == {1, 3}
    masked = np.array([True, False, True, False])
    assert {draw_token(logits, masked, 1.0, 0, 1.0, u) for u in uniforms[::97]} == {0, 2}
    assert draw_token(logits, np.zeros(4, bool), 1.0, 0, 1.0, 0.5) == -1
    cold = np.bincount([draw_token(logits, everything, 0.25, 0, 1.0, u) for u in uniforms], minlength=4)
    assert cold[1] / cold.sum() > 0.6  # a low temperature sharpens toward the likeliest


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_compiled_rows_decode_each_take_as_it_would_decode_alone(tiny_model: Path, precision: str) -> None:
    """Rows fed different numbers of tokens in one step (a forced bar in one take, a sampled
    token in another) each get the logits that row's tokens give alone."""
    from stemforge.symbolic.decoding.compiled_decoder import CompiledDecoder, DecoderWeights, StepMatrices

    composer = load_composer(tiny_model)
    ids = composer.tokenizer.prefix_ids("rock", 120, "E minor", "normal", 4) + [composer.tokenizer.track_start_id]
    weights = DecoderWeights.from_directory(tiny_model)
    matrices = StepMatrices.of(weights, int8=precision == "int8")
    batch = CompiledDecoder(weights, rows=3, matrices=matrices)
    alone = [CompiledDecoder(weights, matrices=matrices) for _ in range(3)]
    ids = ids * 3  # a step holds 1 to 9 tokens a row: the products' blocks of 8, 4, 2 and 1 all serve
    steps = [{0: ids[:5], 1: ids[:2], 2: ids[:1]}, {0: ids[5:6], 1: ids[2:7], 2: []}, {0: ids[6:7], 2: ids[1:10]},
             {0: ids[7:16], 1: ids[7:15], 2: ids[10:11]}]
    for feeds in steps:
        got = batch.forward_rows(feeds)
        assert set(got) == {row for row, tokens in feeds.items() if tokens}
        for row, logits in got.items():
            assert np.array_equal(logits, alone[row].forward(feeds[row])), row  # exactly: takes = seeds alone
    assert batch.lengths == [d.length for d in alone] == [16, 15, 11]


@pytest.mark.parametrize("threads", ["2", "3"])
def test_takes_shared_over_threads_are_the_takes_of_one_thread(tiny_model: Path, monkeypatch, threads: str) -> None:
    """`--takes` decodes its takes in threads (the cores OMP_NUM_THREADS allows); each take is
    still the piece its seed composes in one thread, in the order of the seeds."""
    composer = load_composer(tiny_model)
    plan = SamplePlan(composer.tokenizer.prefix_ids("rock", 120, "E minor", "normal", 2), ROLES, 2)
    seeds = [7, 8, 9, 10, 11]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one_thread = Sampler(composer).sample_takes([plan] * 5, SamplingSettings(), seeds)
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(4)))  # as on a 4-core machine
    sampler = Sampler(composer)
    tokens: list[int] = []
    shared = sampler.sample_takes([plan] * 5, SamplingSettings(), seeds, on_token=tokens.append)
    assert shared == one_thread
    assert len(set(map(tuple, shared))) == 5
    assert len(tokens) == sum(s.sampled + s.forced for s in sampler.take_stats) == sum(len(t) for t in shared) - 5 * len(
        plan.prefix_ids)


def test_a_take_that_fails_in_one_thread_fails_the_call_and_leaves_the_sampler_usable(tiny_model: Path,
                                                                                      monkeypatch) -> None:
    composer = load_composer(tiny_model)
    vocab = composer.tokenizer.vocab
    plan = SamplePlan(composer.tokenizer.prefix_ids("rock", 120, "E minor", "normal", 2), ROLES, 2)
    broken = SamplePlan(plan.prefix_ids, ROLES, 2,  # a drum sound in the bass: the grammar refuses it
                        {"bass": [vocab["Track_Start"], vocab["Program_33"], vocab["Bar_None"], vocab["PitchDrum_36"]]})
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(2)))
    sampler = Sampler(composer)
    with pytest.raises(GrammarError):
        sampler.sample_takes([plan, plan, plan, broken], SamplingSettings(), [1, 2, 3, 4])
    assert sampler.sample_takes([plan, plan], SamplingSettings(), [1, 2]) == [sampler.sample(plan, SamplingSettings(), s)
                                                                          for s in (1, 2)]


@pytest.fixture(scope="module")
def kernels_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the kernels compiled ahead of time, as setup builds them: a copy
    of the module setup built for this source, where there is one (building it again costs ~45 s
    of CPU), else built here."""
    from stemforge.symbolic.decoding.kernels import (
        _module_path,
        build_ahead_of_time,
        kernels_dir,
        module_name,
    )

    root = tmp_path_factory.mktemp("cache")
    name = module_name()
    built = _module_path(kernels_dir(), name) if name else None
    if built is not None:
        (root / "kernels").mkdir()
        shutil.copy(built, root / "kernels" / built.name)
    elif build_ahead_of_time(root / "kernels") is None:
        pytest.skip("numba.pycc is not available in this numba: the JIT serves alone")
    return root


def test_kernels_compiled_ahead_of_time_decode_and_draw_exactly_as_the_jit(tiny_model: Path,
                                                                         kernels_cache: Path) -> None:
    """The ahead-of-time module (what a cold `pipeline run` loads) and numba's JIT (the
    fallback) give the same logits bit for bit and draw the same tokens, so a seed composes
    the same piece whichever form a process found."""
    from stemforge.symbolic.decoding.compiled_decoder import CompiledDecoder, DecoderWeights, StepMatrices
    from stemforge.symbolic.decoding.decode_kernels import decode
    from stemforge.symbolic.decoding.draw import draw_token
    from stemforge.symbolic.decoding.kernels import Kernels, kernels

    ahead = kernels(kernels_cache / "kernels")
    assert ahead.ahead_of_time
    jit = Kernels(decode, decode, draw_token, ahead_of_time=False)
    composer = load_composer(tiny_model)
    ids = (composer.tokenizer.prefix_ids("rock", 120, "E minor", "normal", 4) * 4)[:24]
    weights = DecoderWeights.from_directory(tiny_model)
    for matrices in (StepMatrices.of(weights), StepMatrices.of(weights, int8=True)):  # the compiled and the int8 decoder
        logits = {}
        for form in (ahead, jit):
            decoder = CompiledDecoder(weights, rows=2, matrices=matrices)
            decoder.kernels = form
            steps = [{0: ids[:5], 1: ids[:1]}] + [{0: [t], 1: [t, t]} for t in ids[5:12]] + [{0: ids[12:22], 1: ids[:1]}]
            logits[form.ahead_of_time] = [decoder.forward_rows(feeds) for feeds in steps]
        for ahead_step, jit_step in zip(logits[True], logits[False], strict=True):
            for row in ahead_step:
                assert np.array_equal(ahead_step[row], jit_step[row])
    rng = np.random.default_rng(0)
    for _ in range(50):
        row_logits = rng.standard_normal(64).astype(np.float32) * 3
        allowed = rng.random(64) < 0.5
        arguments = (row_logits, allowed, float(rng.uniform(0.5, 1.5)), int(rng.integers(0, 8)), 0.9, rng.random())
        assert ahead.draw_token(*arguments) == jit.draw_token(*arguments)


def test_a_run_with_the_kernels_built_composes_and_renders_without_torch_or_numba(
        tiny_model: Path, kernels_cache: Path, tmp_path: Path) -> None:
    """A cold `pipeline run --stems` pays neither torch's import nor numba's (about 3 s of CPU
    together, bench/cold_start.py): the weights are read as numpy arrays, the grammar and the
    guide are numpy, and the step is the module compiled ahead of time. Nor the Hugging Face
    hub client that miditok imports (~0.2 s), which a later import still gets whole."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from stemforge.pipeline.cli import main\n"
        f"code = main(['run', '--prompt', 'hiphop 90bpm', '--bars', '2', '--model', {str(tiny_model)!r}, "
        f"'--stems', '--seed', '4', '--out', {str(tmp_path / 'run')!r}])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numba', 'librosa', 'huggingface_hub') if m in sys.modules))\n"
        "import huggingface_hub\n"
        "print(huggingface_hub.ModelHubMixin.__module__)\n"
    )
    env = {**os.environ, "STEMFORGE_CACHE_DIR": str(kernels_cache)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-2:] == ["[]", "huggingface_hub.hub_mixin"]
    assert len(list((tmp_path / "run").rglob("*.wav"))) >= 3


def test_a_cache_folder_that_cannot_hold_the_kernels_leaves_the_jit_serving(tmp_path: Path) -> None:
    """Setup on a machine where the kernels cannot be compiled ahead of time (here: the cache
    path is a file) says why in one line, and a broken module where the built one should be (a
    truncated copy) is passed over: runs go on with numba's JIT."""
    from stemforge.symbolic.decoding.kernels import BuildError, build_ahead_of_time, kernels, module_name

    pytest.importorskip("numba.pycc", reason="numba.pycc is not available in this numba: the JIT serves alone")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with pytest.raises(BuildError, match="runs use numba's JIT"):
        build_ahead_of_time(blocked / "kernels")
    broken = tmp_path / "kernels"
    broken.mkdir()
    import importlib.machinery

    (broken / f"{module_name()}{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"\x7fELF truncated")
    assert not kernels(broken).ahead_of_time


def test_the_kernels_compiled_ahead_of_time_refuse_arrays_they_would_misread(kernels_cache: Path) -> None:
    """The ahead-of-time draw reads memory as it is: float64 logits crashed the process and a
    strided array drew the wrong token; they are refused with a TypeError instead."""
    from stemforge.symbolic.decoding.kernels import kernels

    draw = kernels(kernels_cache / "kernels").draw_token
    logits, allowed = np.zeros(8, np.float32), np.ones(8, bool)
    assert 0 <= draw(logits, allowed, 1.0, 0, 1.0, 0.5) < 8
    with pytest.raises(TypeError, match="float32"):
        draw(logits.astype(np.float64), allowed, 1.0, 0, 1.0, 0.5)
    with pytest.raises(TypeError, match="strided"):
        draw(np.zeros(16, np.float32)[::2], allowed, 1.0, 0, 1.0, 0.5)
