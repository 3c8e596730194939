"""MusicGen-Melody renderer, chroma, tempo lock and fine-tuning, on a tiny model built here.

Nothing is downloaded: `build_debug_musicgen` makes a random tiny MusicGen-Melody (tiny T5 with a
locally trained tokenizer, tiny EnCodec, 2-layer decoder) from configs/musicgen/debug.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from stemforge.audio.chroma import ChromaSettings, chroma_features, chroma_window
from stemforge.audio.musicgen import (
    MusicGenError,
    MusicGenOptions,
    build_debug_musicgen,
    generate_audio,
    load_musicgen,
    render_musicgen,
    stem_text,
)
from stemforge.audio.musicgen_finetune import FinetuneError, FinetuneRequest, finetune_musicgen
from stemforge.audio.stems import StemSet, loop_samples
from stemforge.audio.tempo_lock import lock_tempo
from stemforge.symbolic.music.arrangement import Arrangement, Note, Track
from stemforge.symbolic.music.conditions import Conditions

torch.set_num_threads(1)
SR = 44100


@pytest.fixture(scope="module")
def debug_musicgen(tmp_path_factory) -> Path:
    return build_debug_musicgen(tmp_path_factory.mktemp("musicgen") / "debug-musicgen")


@pytest.fixture(scope="module")
def tiny_bundle(debug_musicgen):
    return load_musicgen(str(debug_musicgen), device="cpu")


def click_track(bpm: float, first_click_seconds: float, seconds: float, sample_rate: int = SR):
    audio = np.zeros(int(seconds * sample_rate), dtype=np.float32)
    n = np.arange(int(0.05 * sample_rate)) / sample_rate
    hit = (np.exp(-n * 60) * np.sin(2 * np.pi * 1000 * n)).astype(np.float32)
    t = first_click_seconds
    while t < seconds - 0.06:
        start = int(round(t * sample_rate))
        audio[start : start + hit.size] += hit
        t += 60.0 / bpm
    return audio


def click_onsets(audio: np.ndarray, sample_rate: int = SR) -> np.ndarray:
    """Sample-exact click starts: first sample over a threshold, then skip the click's ring."""
    loud = np.flatnonzero(np.abs(audio) > 0.2)
    onsets = [loud[0]] if loud.size else []
    for index in loud[1:]:
        if index - onsets[-1] > 0.3 * sample_rate:
            onsets.append(index)
    return np.asarray(onsets) / sample_rate


def sine(freq_hz: float, seconds: float, sample_rate: int = SR, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


# ----------------------------------------------------------------------------------------- loading

def test_tiny_model_loads_from_its_folder(debug_musicgen, tiny_bundle):
    assert (debug_musicgen / "config.json").is_file() and (debug_musicgen / "tokenizer.json").is_file()
    assert type(tiny_bundle.model).__name__ == "MusicgenMelodyForConditionalGeneration"
    assert tiny_bundle.frame_rate == 50.0 and tiny_bundle.sampling_rate == 32000
    assert tiny_bundle.chroma == ChromaSettings()  # read back from preprocessor_config.json
    # The tiny window is short on purpose, so rendering a 2-bar loop needs continuation.
    assert tiny_bundle.window_seconds() < 3.0


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda tmp: str(tmp / "missing" / "deeper" / "x"), "no such folder", id="missing-path"),
        pytest.param(lambda tmp: str(tmp), "no config.json", id="folder-without-model"),
        pytest.param(lambda tmp: str(_touch(tmp / "weights.bin")), "is a file", id="a-file"),
    ],
)
def test_load_errors_are_one_line(tmp_path, make, expected):
    with pytest.raises(MusicGenError, match=expected) as error:
        load_musicgen(make(tmp_path), device="cpu")
    assert "\n" not in str(error.value)


def _touch(path: Path) -> Path:
    path.write_bytes(b"\0")
    return path


# ------------------------------------------------------------------------------------------ chroma

@pytest.mark.parametrize(("freq_hz", "pitch_class"), [(261.63, 0), (329.63, 4), (440.0, 9), (493.88, 11)],
                         ids=["C4", "E4", "A4", "B4"])
def test_chroma_finds_the_pitch_class_of_a_tone(freq_hz, pitch_class):
    chroma = chroma_features(np.stack([sine(freq_hz, 3.0)] * 2), SR)
    settings = ChromaSettings()
    assert chroma.shape == (int(3.0 * settings.frames_per_second) + 1, 12)
    assert torch.all(chroma.sum(-1) == 1)  # one-hot per frame, as the model was trained
    assert torch.all(chroma.argmax(-1) == pitch_class)


def test_chroma_window_wraps_round_the_loop():
    chroma = torch.eye(12)[torch.arange(10) % 12]
    settings = ChromaSettings()
    window = chroma_window(chroma, start_seconds=8 / settings.frames_per_second,
                           duration_seconds=4 / settings.frames_per_second, settings=settings)
    assert window.argmax(-1).tolist() == [8, 9, 0, 1]


def test_stem_text_comes_from_conditions_and_role():
    conditions = Conditions(genre="lofi", bpm=80.0, key="A minor", moods=("dusty", "mellow"))
    assert stem_text(conditions, "drums") == "lofi hip hop drums, 80 bpm, dusty, mellow"
    assert stem_text(conditions, "bass") == "lofi hip hop bass, 80 bpm, A minor, dusty, mellow"


# -------------------------------------------------------------------------------------- tempo lock

@pytest.mark.parametrize(("speed", "first_click_seconds"), [(1.03, 0.10), (0.97, 0.31)],
                         ids=["3pct-fast-late-start", "3pct-slow-later-start"])
def test_tempo_lock_puts_a_stretched_click_track_on_the_grid(tmp_path, speed, first_click_seconds):
    bpm, bars = 80.0, 4
    num_samples = loop_samples(bars, bpm, SR)
    clicks = click_track(bpm * speed, first_click_seconds, 14.0)
    locked, lock = lock_tempo(np.stack([clicks, clicks]), SR, bpm, num_samples)
    soundfile.write(tmp_path / "locked.wav", locked.T, SR)  # listen here if this fails
    assert locked.shape == (2, num_samples)
    assert lock.bpm_before == pytest.approx(bpm * speed, rel=2e-3)
    assert lock.bpm_after == pytest.approx(bpm, rel=3e-3)
    onsets = click_onsets(locked[0])
    onsets = onsets[onsets < num_samples / SR - 0.01]  # the next loop's beat 1 may start in the last ms
    grid = np.arange(onsets.size) * 60.0 / bpm
    assert onsets.size == bars * 4  # every beat present, none doubled
    assert np.max(np.abs(onsets - grid)) < 0.004, f"beats off the grid by {np.abs(onsets - grid).max():.4f} s"
    assert lock.off_beats < 0.05


def test_tempo_lock_without_beats_only_cuts_to_length():
    quiet = np.zeros((2, 5 * SR), np.float32)
    quiet[:, SR] = 0.5  # one lone tick: nothing to fit a tempo to
    locked, lock = lock_tempo(quiet, SR, 90.0, 3 * SR)
    assert np.array_equal(locked, quiet[:, : 3 * SR])
    assert lock.bpm_before is None and lock.off_beats is None and not lock.warped


# ----------------------------------------------------------------------------------------- render

def _arrangement(bpm: float = 120.0, bars: int = 2) -> Arrangement:
    conditions = Conditions(prompt=f"lofi {bpm:g}bpm", genre="lofi", bpm=bpm, bars=bars, moods=("dusty",))
    tracks = {role: Track(role, 0, role == "drums", [Note(0, 480, 60 if role != "bass" else 36, 100)])
              for role in ("drums", "bass", "melody")}
    return Arrangement(conditions, tracks)


def _melody_stems(bpm: float, bars: int, sample_rate: int = SR) -> StemSet:
    n = loop_samples(bars, bpm, sample_rate)
    t = np.arange(n) / sample_rate
    beat = (t * bpm / 60).astype(int)
    freq = np.array([440.0, 523.25, 659.25, 587.33])[beat % 4]  # A C E D, one per beat
    tone = (0.3 * np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)).astype(np.float32)
    return StemSet(sample_rate, bpm, bars, {"melody": np.stack([tone, tone])})


def test_render_musicgen_obeys_the_stem_contract(tmp_path, debug_musicgen, tiny_bundle):
    arrangement = _arrangement()
    options = MusicGenOptions(model=str(debug_musicgen), sample_rate=SR, max_retries=1, device="cpu")
    messages: list[str] = []
    stems, manifest = render_musicgen(arrangement, options, _melody_stems(120.0, 2), progress=messages.append,
                                      bundle=tiny_bundle)
    n = loop_samples(2, 120.0, SR)
    for role, audio in stems.stems.items():
        soundfile.write(tmp_path / f"{role}.wav", audio.T, SR)
    assert set(stems.stems) == {"drums", "bass", "melody"}
    assert all(a.shape == (2, n) and a.dtype == np.float32 for a in stems.stems.values())
    assert all(np.isfinite(a).all() and np.abs(a).max() > 1e-3 for a in stems.stems.values())
    assert stems.sample_rate == SR and stems.bpm == 120.0 and stems.bars == 2
    report = manifest["musicgen"]
    assert manifest["renderer"] == "musicgen" and report["model"] == str(debug_musicgen)
    assert set(report["texts"]) == set(report["tempo_before"]) == set(report["tempo_after"]) == set(report["retries"])
    assert "120 bpm" in report["texts"]["drums"]
    assert all(0 <= r <= 1 for r in report["retries"].values())
    assert any("drums done" in m for m in messages)
    json.dumps(manifest)  # goes into run.json as is


def test_long_loops_are_generated_in_windows_with_continuation(tiny_bundle, monkeypatch):
    import stemforge.audio.musicgen as musicgen

    calls: list[bool] = []
    real = musicgen._generate_window

    def counting(bundle, text, chroma, prompt, new_frames, options, bar):
        calls.append(prompt is not None)
        return real(bundle, text, chroma, prompt, new_frames, options, bar)

    monkeypatch.setattr(musicgen, "_generate_window", counting)
    chroma = chroma_features(np.stack([sine(440.0, 2.0)] * 2), SR)
    options = MusicGenOptions(model="unused", window_seconds=1.0, continuation_seconds=0.4)
    audio = generate_audio(tiny_bundle, "lofi hip hop drums, 80 bpm", chroma, 3.3, options, seed=0)
    assert audio.shape == (1, int(np.ceil(3.3 * 50)) * 640)
    assert calls[0] is False and len(calls) >= 4 and all(calls[1:])


def test_render_retries_a_stem_that_stays_off_the_grid_a_bounded_number_of_times(debug_musicgen, tiny_bundle,
                                                                                  monkeypatch):
    import stemforge.audio.musicgen as musicgen
    from stemforge.audio.tempo_lock import TempoLock

    seeds: list[int] = []
    real_generate = musicgen.generate_audio

    def recording_generate(bundle, text, chroma, seconds, options, seed, bar=None):
        seeds.append(seed)
        return real_generate(bundle, text, chroma, seconds, options, seed, bar)

    def always_off(audio, sample_rate, bpm, num_samples):  # as if the model kept missing the tempo
        lock = TempoLock(bpm_before=bpm * 1.3, bpm_after=None, first_beat_seconds=0.0, stretch=1.0,
                         off_beats=0.9, warped=False)
        return np.zeros((2, num_samples), np.float32) + 0.01, lock

    monkeypatch.setattr(musicgen, "generate_audio", recording_generate)
    monkeypatch.setattr(musicgen, "lock_tempo", always_off)
    options = MusicGenOptions(model=str(debug_musicgen), max_retries=2, device="cpu")
    stems, manifest = render_musicgen(_arrangement(bars=1), options, _melody_stems(120.0, 1), bundle=tiny_bundle)
    assert manifest["musicgen"]["retries"] == {"drums": 2, "bass": 2, "melody": 2}
    assert len(seeds) == 9 and len(set(seeds)) == 9  # each retry is a fresh seed
    stems.check()


def test_render_rejects_a_silent_melody(debug_musicgen, tiny_bundle):
    silent = StemSet(SR, 120.0, 1, {"melody": np.zeros((2, loop_samples(1, 120.0, SR)), np.float32)})
    with pytest.raises(MusicGenError, match="melody stem is silent"):
        render_musicgen(_arrangement(bars=1), MusicGenOptions(model=str(debug_musicgen)), silent, bundle=tiny_bundle)


# ------------------------------------------------------------------------------------- fine-tuning

def _write_stems(folder: Path) -> Path:
    """Three 2-second stems: one 44.1 kHz stereo with a .txt sidecar, one 32 kHz mono with a MIDI
    melody, one 48 kHz mono named for its text."""
    import pretty_midi

    folder.mkdir(parents=True, exist_ok=True)
    pulse = lambda sr: (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 2 * np.arange(2 * sr) / sr))).astype(np.float32)  # noqa: E731
    left = sine(220.0, 2.0) * pulse(SR)
    soundfile.write(folder / "keys_a.wav", np.stack([left, 0.8 * left]).T, SR)
    (folder / "keys_a.txt").write_text("lofi hip hop melody, dusty keys")
    soundfile.write(folder / "bass_b.flac", sine(110.0, 2.0, 32000) * pulse(32000), 32000)
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(100, 45 + 2 * i, 0.5 * i, 0.5 * i + 0.4) for i in range(4)]
    midi.instruments.append(piano)
    midi.write(str(folder / "bass_b.mid"))
    soundfile.write(folder / "dusty_lofi_drums_80bpm.wav", sine(660.0, 2.0, 48000) * pulse(48000), 48000)
    return folder


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_finetune_lowers_the_loss_and_writes_a_loadable_folder(tmp_path, debug_musicgen, lora):
    stems = _write_stems(tmp_path / "stems")
    out = tmp_path / "tuned"
    request = FinetuneRequest(stems_dir=stems, out_dir=out, base=str(debug_musicgen), lora=lora, steps=10,
                              chunk_seconds=1.0, batch_size=2, learning_rate=3e-3, device="cpu")
    summary = finetune_musicgen(request, progress=False)
    assert summary["clips"] == 3 and summary["mode"] == ("lora" if lora else "full")
    assert summary["last_loss"] < summary["first_loss"]
    assert summary["val_losses"][-1][1] < summary["val_losses"][0][1]
    assert summary["chroma_from"]["bass_b.flac"] == "midi"
    assert summary["texts"]["keys_a.wav"] == "lofi hip hop melody, dusty keys"
    assert summary["texts"]["dusty_lofi_drums_80bpm.wav"] == "dusty lofi drums 80bpm"
    assert any("resampled 2 file(s)" in note for note in summary["notes"])
    assert any("downmixed 1" in note for note in summary["notes"])
    assert (out / "loss.png").stat().st_size > 1000
    assert any((out / "cache").glob("*.pt"))  # codes cached for the next run

    tuned = load_musicgen(str(out), device="cpu")
    chroma = chroma_features(np.stack([sine(440.0, 1.0)] * 2), SR)
    audio = generate_audio(tuned, "lofi hip hop drums", chroma, 0.5, MusicGenOptions(model=str(out)), seed=0)
    assert audio.shape == (1, 25 * 640) and np.isfinite(audio).all()
    if lora:  # adapters only: the base stays where it was and is named in the marker file
        assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
        with pytest.raises(FinetuneError, match="already holds a fine-tuned model"):
            finetune_musicgen(request, progress=False)
        more = finetune_musicgen(FinetuneRequest(**{**request.__dict__, "steps": 14, "resume": True}), progress=False)
        assert more["steps"] == 14 and len(more["train_losses"]) == 14
        assert more["train_losses"][:10] == summary["train_losses"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({}, "no WAV/FLAC/AIFF stems", id="empty-folder"),
        pytest.param({"broken.wav": b"RIFF....not audio"}, "unreadable audio", id="unreadable"),
        pytest.param({"quiet.wav": "silence"}, "silent", id="silence"),
        pytest.param({"short.wav": "short"}, "shorter than one 1 s chunk", id="too-short"),
    ],
)
def test_finetune_bad_inputs_give_clear_errors(tmp_path, debug_musicgen, files, expected):
    stems = tmp_path / "stems"
    stems.mkdir()
    for name, content in files.items():
        if content == "silence":
            soundfile.write(stems / name, np.zeros(2 * SR, np.float32), SR)
        elif content == "short":
            soundfile.write(stems / name, sine(440.0, 0.5), SR)
        else:
            (stems / name).write_bytes(content)
    request = FinetuneRequest(stems_dir=stems, out_dir=tmp_path / "out", base=str(debug_musicgen), steps=1,
                              chunk_seconds=1.0, device="cpu")
    with pytest.raises(FinetuneError, match=expected) as error:
        finetune_musicgen(request, progress=False)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out" / "stemforge_finetune.json").exists()


def test_pipeline_run_with_the_musicgen_renderer_keeps_the_stem_contract(
    debug_musicgen: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """The whole `pipeline run --stems --renderer musicgen` path on a tiny model."""
    import json

    import soundfile

    from stemforge.pipeline.cli import main

    composer_dir = tiny_model  # the tiny composer from conftest
    out = tmp_path / "run"
    code = main(["run", "--prompt", "hiphop 90bpm", "--model", str(composer_dir), "--out", str(out), "--seed", "3",
                 "--bars", "1", "--stems", "--renderer", "musicgen", "--musicgen", str(debug_musicgen)])
    assert code == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["renderer"] == "musicgen" and manifest["musicgen"]["model"] == str(debug_musicgen)
    expected = round(1 * 4 * 60 / 90 * 44100)
    for relative in [*manifest["stems"].values(), manifest["mix"]]:
        info = soundfile.info(out / relative)
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (expected, 44100, 2, "PCM_24")
    assert set(manifest["musicgen"]["tempo_after"]) == {"drums", "bass", "melody"}
    assert manifest["musicgen"]["melody_condition"] == "the rendered melody stem"

    # a reference loop is the melody condition too (its chroma), and sets the tempo and key
    from tests.test_loop_analysis import RATE, _loop

    clip = tmp_path / "loop.wav"
    soundfile.write(clip, _loop(90.0, ["Am", "F", "C", "G"], bars=2), RATE)
    liked = tmp_path / "liked"
    assert main(["run", "--prompt", "hiphop", "--model", str(composer_dir), "--out", str(liked), "--seed", "3",
                 "--bars", "1", "--stems", "--renderer", "musicgen", "--musicgen", str(debug_musicgen),
                 "--like", str(clip)]) == 0
    manifest = json.loads((liked / "run.json").read_text())
    assert manifest["musicgen"]["melody_condition"] == f"reference loop {clip}"
    assert abs(manifest["conditions"]["bpm"] - 90.0) <= 1.0 and manifest["context"]["like"] == str(clip)


def test_musicgen_renders_with_samples_only_the_melody_it_is_conditioned_on(
    debug_musicgen: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample renderer made every stem first and MusicGen threw all but the melody away:
    now only the melody condition is rendered with samples, and nothing when a reference loop
    (--like) is the condition."""
    import soundfile

    import stemforge.audio.render as render
    from stemforge.pipeline.run import RunRequest, run

    rendered: list[tuple[str, ...]] = []
    real = render.render_arrangement

    def spy(arrangement, options, progress=None):
        rendered.append(tuple(arrangement.tracks))
        return real(arrangement, options, progress)

    monkeypatch.setattr(render, "render_arrangement", spy)
    result = run(RunRequest(prompt="hiphop 90bpm", model=tiny_model, out=tmp_path / "r", seed=3, bars=1, stems=True,
                            renderer="musicgen", musicgen=str(debug_musicgen)))
    assert rendered == [("melody",)]
    assert set(result.manifest.stems) == set(result.arrangement.tracks) == {"drums", "bass", "melody"}
    assert set(result.manifest.instruments) == {"melody"}  # the sound that rendered the condition

    from tests.test_loop_analysis import RATE, _loop

    clip = tmp_path / "loop.wav"
    soundfile.write(clip, _loop(90.0, ["Am", "F", "C", "G"], bars=2), RATE)
    rendered.clear()
    liked = run(RunRequest(prompt="hiphop", model=tiny_model, out=tmp_path / "liked", seed=3, bars=1, stems=True,
                           renderer="musicgen", musicgen=str(debug_musicgen), like=clip))
    assert rendered == [] and liked.manifest.soundfont is None and len(liked.manifest.stems) == 3


# ------------------------------------------------------------------ weights checked before anything slow

@pytest.mark.parametrize("weights, words", [
    ("facebook/musicgen-melody", "not in the Hugging Face cache"),
    ("{tmp}", "no config.json and weights"),
    ("{tmp}/missing-folder", "no such folder"),
    ("", "name the MusicGen-Melody weights"),
], ids=["hub id offline", "folder without weights", "missing folder", "not named"])
def test_unusable_musicgen_weights_stop_the_run_before_composing_with_how_to_get_them(
        weights: str, words: str, tiny_model: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from stemforge.pipeline.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on this machine: the hub cannot be reached
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    flags = ["--musicgen", weights.format(tmp=tmp_path)] if weights else []
    code = main(["run", "--prompt", "lofi", "--bars", "1", "--model", str(tiny_model), "--stems",
                 "--renderer", "musicgen", *flags, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1, err
    # every case says how to get weights: the command, their size and their licence
    assert "hf download facebook/musicgen-melody" in err and "6 GB" in err and "CC-BY-NC" in err
    assert not (tmp_path / "run").exists()


def test_usable_musicgen_weights_pass_the_check_and_say_what_is_used(debug_musicgen: Path) -> None:
    from stemforge.audio.musicgen import check_musicgen_weights

    assert check_musicgen_weights(str(debug_musicgen)) == f"MusicGen: folder {debug_musicgen}"


def test_finetune_names_base_and_needs_it(tmp_path: Path, capsys) -> None:
    from stemforge.pipeline.cli import main

    with pytest.raises(SystemExit) as exited:  # no default base: nothing is downloaded unasked
        main(["finetune-musicgen", str(tmp_path), "--out", str(tmp_path / "ft")])
    assert exited.value.code == 2 and "--base" in capsys.readouterr().err
    assert main(["finetune-musicgen", str(tmp_path), "--out", str(tmp_path / "ft"), "--base", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: --base {tmp_path}: no config.json")


def test_a_worker_keeps_musicgen_loaded_between_jobs_until_its_weights_change(debug_musicgen: Path,
                                                                              tmp_path: Path) -> None:
    import os
    import shutil

    from stemforge.audio.musicgen import cached_musicgen

    first = cached_musicgen(str(debug_musicgen), device="cpu")
    assert cached_musicgen(str(debug_musicgen), device="cpu") is first  # the next job: no reload
    copy = tmp_path / "copy"
    shutil.copytree(debug_musicgen, copy)
    other = cached_musicgen(str(copy), device="cpu")
    assert other is not first  # another model replaces it
    weights = next(f for f in copy.iterdir() if f.suffix == ".safetensors")
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000_000))
    assert cached_musicgen(str(copy), device="cpu") is not other  # rewritten weights load again


def test_a_musicgen_run_reaches_100_percent_only_once_its_stems_are_generated(
    debug_musicgen: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """The run's progress moves forward through the sample render of the melody condition and
    then MusicGen's stems; it said "100% done" before MusicGen had started."""
    from stemforge.pipeline.run import RunRequest, run

    seen: list[tuple[str, float]] = []
    run(RunRequest(prompt="hiphop 90bpm", model=tiny_model, out=tmp_path / "r", seed=3, bars=1, stems=True,
                   renderer="musicgen", musicgen=str(debug_musicgen)), lambda stage, fraction: seen.append((stage, fraction)))
    first = next(i for i, (stage, _) in enumerate(seen) if stage.startswith("musicgen"))
    assert max(fraction for _, fraction in seen[:first]) < 0.7, seen[:first]
    assert not [stage for stage, _ in seen[:-1] if stage in ("done", "rendered")], seen
    assert seen[-1] == ("done", 1.0)
