"""Loudness of what stemforge writes, read back by an outside meter: ffmpeg's ebur128 filter (the
libebur128 measurement most tools use) agrees with run.json's integrated loudness and true peak;
`--loudness -14` brings a mix to -14 LUFS; every render keeps its mix and stems under the
true-peak ceiling (-1 dBTP by default); the stems still sum to the mix."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemforge.audio.loudness import LoudnessSettings, integrated_lufs, level_stems, true_peak_dbtp
from stemforge.audio.stems import StemSet
from stemforge.pipeline.cli import main

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (Debian: apt-get install ffmpeg; "
                                  "make test's setup installs it)")


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a file as ffmpeg's ebur128 filter measures them."""
    result = subprocess.run([FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true",
                             "-f", "null", "-"], capture_output=True, text=True, timeout=60, check=True)
    summary = result.stderr[result.stderr.rindex("Summary:"):]
    loudness = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return loudness, peak


def _write(path: Path, audio: np.ndarray, sample_rate: int = 48000) -> Path:
    soundfile.write(path, audio.T, sample_rate, subtype="FLOAT")
    return path


def test_the_meters_read_test_signals_as_bs1770_and_ffmpeg_do(tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(rate * 3) / rate
    tone = 0.1 * np.sin(2 * np.pi * 997 * t)  # -20 dBFS in both channels reads -20 LUFS
    stereo = np.stack([tone, tone]).astype(np.float32)
    assert integrated_lufs(stereo, rate) == pytest.approx(-20.0, abs=0.1)
    # a quarter-rate sine sampled 45 degrees off its peaks: samples reach -3 dB, the wave itself 0 dB
    quarter = np.sin(2 * np.pi * (rate / 4) * t + math.pi / 4)
    offbeat = np.stack([quarter, quarter]).astype(np.float32) * np.float32(0.5)
    assert 20 * math.log10(np.abs(offbeat).max()) == pytest.approx(-9.03, abs=0.05)
    assert true_peak_dbtp(offbeat) == pytest.approx(-6.02, abs=0.2)
    # 4 kHz, sampled 15 degrees off its peaks: -6.3 dB samples of a -6.0 dB wave (ffmpeg's interpolation
    # filter reads up to 0.6 dB high near a quarter of the sample rate, so the outside check is made lower)
    high = np.sin(2 * np.pi * (rate / 12) * t + math.pi / 12)
    between = np.stack([high, high]).astype(np.float32) * np.float32(0.5)
    assert true_peak_dbtp(between) == pytest.approx(-6.02, abs=0.05)
    if FFMPEG is not None:
        assert ebur128(_write(tmp_path / "tone.wav", stereo))[0] == pytest.approx(-20.0, abs=0.1)
        assert ebur128(_write(tmp_path / "between.wav", between))[1] == pytest.approx(-6.0, abs=0.1)


def test_leveling_scales_every_stem_together_so_they_still_sum_to_the_mix() -> None:
    rate = 44100
    rng = np.random.default_rng(0)
    length = 4 * rate
    kicks = np.zeros((2, length), np.float32)
    kicks[:, :: rate // 2] = 0.9  # sparse peaks: a peaky mix needs the limiter to get loud
    stems = StemSet(rate, 120.0, 2, {"drums": kicks, "bass": (0.05 * rng.standard_normal((2, length))).astype(np.float32),
                                     "melody": (0.02 * rng.standard_normal((2, length))).astype(np.float32)})
    leveled, report = level_stems(stems, LoudnessSettings(target_lufs=-14.0))
    assert report.integrated_lufs == pytest.approx(-14.0, abs=0.2) and report.short_of_target_db < 0.2
    assert report.true_peak_dbtp <= -1.0 and report.limiting_db > 0
    for audio in leveled.stems.values():
        assert true_peak_dbtp(audio) <= -1.0
    np.testing.assert_allclose(leveled.mix(), sum(leveled.stems.values()), atol=1e-6)
    quiet, report = level_stems(stems, LoudnessSettings())  # no target: only down to the ceiling
    assert report.gain_db <= 0 and report.true_peak_dbtp <= -1.0 and report.limiting_db == 0
    ratio = quiet.stems["bass"] / np.where(stems.stems["bass"] == 0, 1, stems.stems["bass"])
    assert np.allclose(ratio, ratio.flat[0], atol=1e-5)  # one number for every sample of every stem


def test_bad_loudness_settings_are_one_line_naming_the_flag(tiny_model: Path, tmp_path: Path, capsys) -> None:
    for flag, value in (("--loudness", "3"), ("--loudness", "nan"), ("--true-peak", "2")):
        code = main(["run", "--prompt", "lofi", "--model", str(tiny_model), "--out", str(tmp_path / "r"), "--stems",
                     "--bars", "1", flag, value])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if not line.startswith("run: ")]
        assert code == 2 and lines[-1].startswith(f"error: {flag}: ") and len(lines) == 1, err
    assert not (tmp_path / "r").exists()


@needs_ffmpeg
@pytest.mark.parametrize("target", [None, -14.0])
def test_a_renders_loudness_and_true_peak_are_what_an_outside_meter_reads(target: float | None, tiny_model: Path,
                                                                           tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["run", "--prompt", "trap 140bpm", "--model", str(tiny_model), "--out", str(out), "--stems", "--seed", "5",
            "--bars", "4"]
    assert main(args + (["--loudness", str(target)] if target is not None else [])) == 0, capsys.readouterr().err
    manifest = json.loads((out / "run.json").read_text())
    loudness = manifest["loudness"]
    measured, peak = ebur128(out / manifest["mix"])
    assert measured == pytest.approx(loudness["integrated_lufs"], abs=0.2)
    assert peak <= -1.0 + 0.05 and loudness["true_peak_dbtp"] <= -1.0  # the default ceiling, by both meters
    if target is not None:
        assert loudness["integrated_lufs"] == pytest.approx(target, abs=0.3), loudness
        assert measured == pytest.approx(target, abs=0.4)
    mix, _ = soundfile.read(out / manifest["mix"], dtype="float32")
    stems = sum(soundfile.read(out / path, dtype="float32")[0] for path in manifest["stems"].values())
    assert np.abs(stems - mix).max() < 4 * 2.0**-23  # the stems sum to the mix (24-bit rounding apart)
