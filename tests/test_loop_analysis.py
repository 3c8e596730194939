"""`--like loop.wav`: tempo and key estimated from a clip (stemforge.audio.loop_analysis).

The loops are synthesized here (numpy, written with soundfile): a kick/snare/hat pattern at a known
tempo over sustained saw-like chords of a progression in a known key, so no audio is shipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemforge.audio.loop_analysis import LoopError, LoopEstimate, estimate_loop
from stemforge.symbolic.music.keys import PITCH_CLASSES, parse_key

RATE = 22050


def _chord(symbol: str) -> tuple[int, ...]:
    """'Fm' -> pitch classes of F minor, 'Db' -> D-flat major (root first)."""
    minor = symbol.endswith("m")
    root = PITCH_CLASSES[(symbol[:-1] if minor else symbol).lower()]
    return root, (root + (3 if minor else 4)) % 12, (root + 7) % 12


def _tone(midi: int, samples: int) -> np.ndarray:
    """Six partials of a saw-like tone with 20 ms attack and 50 ms release."""
    t = np.arange(samples) / RATE
    frequency = 440.0 * 2 ** ((midi - 69) / 12)
    tone = sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, 7) if frequency * k < RATE / 2)
    return tone * np.minimum(1.0, np.minimum(t / 0.02, (samples / RATE - t) / 0.05))


def _loop(bpm: float, chords: list[str], bars: int, drums: bool = True, harmony: bool = True) -> np.ndarray:
    """A 4/4 loop: kick on 1 and 3, snare on 2 and 4, eighth-note hats; one chord per bar (a bass
    root and a triad around middle C)."""
    rng = np.random.default_rng(7)
    beat = 60.0 / bpm
    out = np.zeros(int(round(bars * 4 * beat * RATE)))

    def place(sound: np.ndarray, seconds: float) -> None:
        start = int(round(seconds * RATE))
        length = min(sound.size, out.size - start)
        out[start:start + length] += sound[:length]

    if drums:
        def hit(seconds: float, decay: float) -> tuple[np.ndarray, np.ndarray]:
            t = np.arange(int(seconds * RATE)) / RATE
            return t, np.exp(-t / decay) * np.minimum(1.0, (seconds - t) / 0.02)  # faded: no end click

        t, envelope = hit(0.25, 0.12)
        kick = np.sin(2 * np.pi * np.cumsum(50 + 70 * np.exp(-t / 0.03)) / RATE) * envelope
        t, envelope = hit(0.15, 0.05)
        snare = (0.6 * rng.standard_normal(t.size) + 0.4 * np.sin(2 * np.pi * 190 * t)) * envelope
        t, envelope = hit(0.05, 0.012)
        hat = 0.25 * np.diff(rng.standard_normal(t.size + 1)) * envelope
        for index in range(bars * 4):
            place(kick if index % 2 == 0 else snare, index * beat)
            place(hat, index * beat)
            place(hat, (index + 0.5) * beat)
    if harmony:
        bar = int(round(4 * beat * RATE))
        for index in range(bars):
            pitch_classes = _chord(chords[index % len(chords)])
            start = index * bar
            length = min(bar, out.size - start)
            chord = 0.5 * _tone(36 + pitch_classes[0], length)
            for pitch_class in pitch_classes:
                chord += 0.3 * _tone(60 + pitch_class if pitch_class < 8 else 48 + pitch_class, length)
            out[start:start + length] += 0.4 * chord
    return (0.8 * out / np.max(np.abs(out))).astype(np.float32)


def _write(path: Path, audio: np.ndarray) -> Path:
    soundfile.write(path, audio, RATE)
    return path


def _relative(key: str) -> str:
    parsed = parse_key(key)
    if parsed.mode == "minor":
        return parsed.transposed(3).name.replace("minor", "major")
    return parsed.transposed(-3).name.replace("major", "minor")


LOOPS = [
    pytest.param(80.0, "F minor", ["Fm", "Db", "Ab", "Eb"], 4, id="80bpm-F-minor"),
    pytest.param(92.0, "A major", ["A", "D", "E", "A"], 8, id="92bpm-A-major"),
    pytest.param(124.0, "C major", ["C", "F", "G", "C"], 8, id="124bpm-C-major"),
    pytest.param(140.0, "E minor", ["Em", "C", "G", "B"], 4, id="140bpm-E-minor"),
]


@pytest.mark.parametrize("bpm,key,chords,bars", LOOPS)
def test_estimates_tempo_and_key(tmp_path: Path, bpm: float, key: str, chords: list[str], bars: int) -> None:
    path = _write(tmp_path / "loop.wav", _loop(bpm, chords, bars))
    estimate = estimate_loop(path)
    # Within 2 %, not at half or double: beat trackers lock onto the eighth-note hats (160 for the
    # 80 bpm loop) as readily as onto the beat. The estimator folds into 90-180 bpm and halves when
    # every other beat has no low attack (only a hat), so 80 stays 80 while 140 (a kick or snare
    # on every beat) stays 140.
    assert estimate.bpm == pytest.approx(bpm, rel=0.02)
    # a minor loop and its relative major share every note; which is the tonic is a close call
    assert estimate.key in (key, _relative(key))
    assert 0.0 <= estimate.bpm_confidence <= 1.0 and 0.0 <= estimate.key_confidence <= 1.0
    assert estimate.bpm_confidence >= 0.6  # a machine-steady loop is a sure tempo
    assert estimate.seconds == pytest.approx(bars * 4 * 60 / bpm, abs=0.01)
    # cut at the bar line, the loop's length gives the tempo exactly, and the error says so
    assert estimate.bpm == bpm and estimate.bpm_error <= 0.25 and f"{bars} bars of" in estimate.bpm_note
    assert estimate.describe().startswith(f"loop.wav: {bpm:g} bpm (sure, ±")


def test_relative_helper() -> None:
    assert _relative("F minor") == "Ab major" and _relative("A major") == "F# minor"


def _assert_like_error(error: pytest.ExceptionInfo[LoopError], path: Path, *words: str) -> None:
    message = str(error.value)
    assert error.value.field == "like"
    assert "\n" not in message
    assert message.startswith(f"--like: {path}: ")
    for word in words:
        assert word in message


def test_too_short_clip(tmp_path: Path) -> None:
    path = _write(tmp_path / "short.wav", _loop(120.0, ["C"], 1)[: RATE // 2])
    with pytest.raises(LoopError) as error:
        estimate_loop(path)
    _assert_like_error(error, path, "0.50 s", "at least 1 s")


def test_a_one_bar_loop_of_under_two_seconds_is_read(tmp_path: Path) -> None:
    """One bar at 130 bpm is 1.85 s: it was refused (at least 2 s)."""
    estimate = estimate_loop(_write(tmp_path / "bar.wav", _loop(130.0, ["Am"], 1)))
    assert estimate.bpm == 130.0 and "1 bar of 1.85 s" in estimate.describe()


@pytest.mark.parametrize("bpm, extra_seconds", [(92.0, 0.37), (87.5, 0.29), (123.0, 0.41)])
def test_a_tempo_is_snapped_to_a_musical_value_within_its_error_and_says_so(
        tmp_path: Path, bpm: float, extra_seconds: float) -> None:
    """A clip not cut at the bar line (its length says nothing): the beat's own estimate, snapped
    to the whole or half bpm it is within error of (91.9 for a 92 bpm loop drifted 23 ms in 8
    bars), and the error bar covers the truth."""
    audio = _loop(bpm, ["Am", "F", "C", "G"], 8)
    audio = np.concatenate([audio, audio[: int(extra_seconds * RATE)]])
    estimate = estimate_loop(_write(tmp_path / "cut.wav", audio))
    assert abs(estimate.bpm - bpm) <= estimate.bpm_error, estimate
    assert estimate.bpm == bpm, estimate.describe()
    assert "bars of" not in estimate.bpm_note


def test_a_riff_in_dotted_quarters_takes_its_tempo_from_the_loops_length(tmp_path: Path) -> None:
    """A 4-bar 140 bpm riff whose stabs fall every three eighths reads 93.3 (2/3) from its onsets;
    a loop holds whole bars, and 4 bars of 6.86 s are 140 (LMMS's techno_synth04 read 95.7)."""
    beat, length = 60 / 140, int(round(16 * 60 / 140 * RATE))
    out = np.zeros(length)
    stab = _tone(57, int(0.2 * RATE)) * np.exp(-np.arange(int(0.2 * RATE)) / RATE / 0.05)
    for index in range(0, 32, 3):
        start = int(round(index * beat / 2 * RATE))
        out[start:start + stab.size] += stab[: max(0, min(stab.size, length - start))]
    estimate = estimate_loop(_write(tmp_path / "riff.wav", (0.8 * out / np.abs(out).max()).astype(np.float32)))
    assert estimate.bpm == 140.0 and "4 bars of 6.86 s" in estimate.bpm_note, estimate.describe()


LMMS_LOOP = Path("/usr/share/lmms/samples/bassloops/techno_synth04.ogg")


@pytest.mark.skipif(not LMMS_LOOP.is_file(), reason="LMMS's loops are not installed (Debian: lmms-common)")
def test_an_lmms_140_bpm_loop_reads_140() -> None:
    estimate = estimate_loop(LMMS_LOOP)
    assert estimate.bpm == 140.0, estimate.describe()


def test_silent_clip(tmp_path: Path) -> None:
    path = _write(tmp_path / "silence.wav", np.zeros(4 * RATE, dtype=np.float32))
    with pytest.raises(LoopError) as error:
        estimate_loop(path)
    _assert_like_error(error, path, "silent")


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "loop.wav"
    path.write_text("these are words, not samples\n" * 100)
    with pytest.raises(LoopError) as error:
        estimate_loop(path)
    _assert_like_error(error, path, "not readable audio")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(LoopError) as error:
        estimate_loop(tmp_path / "nowhere.wav")
    _assert_like_error(error, tmp_path / "nowhere.wav", "no such file")
    with pytest.raises(LoopError) as error:
        estimate_loop(tmp_path)
    _assert_like_error(error, tmp_path, "folder")


def test_no_beat(tmp_path: Path) -> None:
    """Chords changing once a bar have no beat to count: an error pointing at --bpm, or, when
    the user gave --bpm (require_beat=False), no tempo but still the key."""
    path = _write(tmp_path / "pads.wav", _loop(100.0, ["A", "D", "E", "A"], 4, drums=False))
    with pytest.raises(LoopError) as error:
        estimate_loop(path)
    _assert_like_error(error, path, "no steady beat", "--bpm")
    estimate = estimate_loop(path, require_beat=False)
    assert estimate.bpm is None and estimate.key == "A major"
    assert estimate.describe().startswith("pads.wav: no steady beat found; pass --bpm, A major")


def test_noise_has_neither_beat_nor_key(tmp_path: Path) -> None:
    noise = 0.3 * np.random.default_rng(0).standard_normal(4 * RATE).astype(np.float32)
    estimate = estimate_loop(_write(tmp_path / "noise.wav", noise), require_beat=False)
    assert estimate.bpm is None and estimate.key is None
    assert estimate.describe() == "noise.wav: no steady beat found; pass --bpm, no key found; pass --key"


def test_describe() -> None:
    """Honest words: "sure" of a tempo only with a steady beat and an error of at most 0.5 bpm (it
    said "sure" of tempos 1-1.5 bpm off), and never of a key whose relative is the runner-up
    short of a decisive margin (the same notes: it said "sure" of the relative major)."""
    sure = LoopEstimate(92.0, "F minor", 0.9, 1.0, 10.4, source="loop.wav", key_runner_up="Ab major", bpm_error=0.1,
                        bpm_note="snapped from 91.9, within ±0.1")
    assert sure.describe() == "loop.wav: 92 bpm (sure, ±0.1; snapped from 91.9, within ±0.1), F minor (sure)"
    relative = LoopEstimate(92.0, "F minor", 0.9, 0.8, 10.4, source="loop.wav", key_runner_up="Ab major",
                            bpm_error=1.2)
    assert relative.describe() == ("loop.wav: 92 bpm (unsure, ±1.2), F minor (or its relative Ab major: the same "
                                   "notes, the tonic decides)")
    unsure = LoopEstimate(87.4, "F minor", 0.3, 0.2, 10.4, source="loop.wav", key_runner_up="C minor", bpm_error=0.2)
    assert unsure.describe() == "loop.wav: 87.4 bpm (unsure, ±0.2), F minor (unsure: C minor close)"
    keyless = LoopEstimate(120.0, None, 1.0, 0.0, 4.0, source="beat.wav")
    assert keyless.describe() == "beat.wav: 120 bpm (sure), no key found; pass --key"


def test_librosa_loads_only_when_estimating() -> None:
    code = "import sys, stemforge.audio.loop_analysis; print('librosa' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------ `pipeline run --like`

def test_a_reference_loop_sets_tempo_and_key_unless_flags_or_the_prompt_name_them(
        tiny_model: Path, tmp_path: Path, capsys) -> None:
    from stemforge.pipeline.cli import main
    from stemforge.symbolic.runtime.run_manifest import RunManifest

    clip = _write(tmp_path / "loop.wav", _loop(92.0, ["Am", "F", "C", "G"], bars=4))
    base = ["run", "--prompt", "rock", "--model", str(tiny_model), "--bars", "1", "--seed", "3", "--like", str(clip)]
    assert main([*base, "--out", str(tmp_path / "like")]) == 0
    err = capsys.readouterr().err
    conditions = RunManifest.read(tmp_path / "like").conditions
    assert abs(conditions.bpm - 92.0) <= 1.0 and conditions.key in ("A minor", "C major")
    assert "reference loop loop.wav: 92" in err  # says what it found
    assert RunManifest.read(tmp_path / "like").context["like"] == str(clip)

    assert main([*base, "--bpm", "100", "--key", "D minor", "--out", str(tmp_path / "flags")]) == 0
    flagged = RunManifest.read(tmp_path / "flags").conditions
    assert (flagged.bpm, flagged.key) == (100.0, "D minor")

    silent = _write(tmp_path / "silent.wav", np.zeros(22050 * 4, dtype=np.float32))
    capsys.readouterr()
    assert main([*base[:-1], str(silent), "--out", str(tmp_path / "silent")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --like:") and "silent.wav" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "silent").exists()
