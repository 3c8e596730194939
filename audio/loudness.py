"""Loudness of a rendered piece: integrated loudness (LUFS) and true peak (dBTP) after ITU-R
BS.1770-4, a LUFS target (`--loudness -14`) and a true-peak ceiling (`--true-peak`, default
-1 dBTP) applied to every render.

    stems, report = level_stems(stems, LoudnessSettings(target_lufs=-14.0))
    report.integrated_lufs, report.true_peak_dbtp  # of the mix, as written

Every stem gets the same gain, so the stems still sum to the mix. Without a target that is one
number: down by what the loudest true peak (of the mix or any stem) stands above the ceiling,
else nothing. With a target it is the gain that brings the mix there, times one limiter curve
computed from the mix and every stem (a linked limiter: 50 ms hold and glide around each peak),
so peaks stay under the ceiling while the mix reaches the target; the report says how deep the
limiter went. Integrated loudness is pyloudnorm's (K-weighting, 400 ms blocks, the two gates);
the true peak is the peak of the signal oversampled 4x (BS.1770-4 Annex 2, scipy's polyphase
filter), never below the plain sample peak; tests check both against ffmpeg's ebur128.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from stemforge.audio.stems import StemSet
from stemforge.symbolic.core.errors import UserError

DEFAULT_TRUE_PEAK_DBTP = -1.0  # what streaming services ask for: room for lossy encoding's overshoot
MIN_TARGET_LUFS, MAX_TARGET_LUFS = -40.0, -5.0
MIN_TRUE_PEAK_DBTP, MAX_TRUE_PEAK_DBTP = -12.0, 0.0
OVERSAMPLING = 4
HOLD_SECONDS = 0.05  # the limiter's gain holds and glides over 50 ms around a peak
# peaks are brought 0.1 dB under the ceiling: true-peak meters differ by their interpolation
# filter (ffmpeg's ebur128 reads up to ~0.1 dB above this one on rendered mixes)
MARGIN_DB = 0.1
UNCHECKED_DB = 6.0
LEVELING_ROUNDS = 4
MAX_GAIN_DB = 30.0  # a near-silent mix is not lifted further than this


class LoudnessError(UserError):
    """A loudness target or ceiling that cannot be used; one line naming the flag."""


@dataclass(frozen=True)
class LoudnessSettings:
    target_lufs: float | None = None  # integrated loudness of the mix; None: keep the rendered level
    true_peak_dbtp: float = DEFAULT_TRUE_PEAK_DBTP  # ceiling for the mix and every stem

    def check(self) -> LoudnessSettings:
        if self.target_lufs is not None and not (
                math.isfinite(self.target_lufs) and MIN_TARGET_LUFS <= self.target_lufs <= MAX_TARGET_LUFS):
            raise LoudnessError(f"--loudness: {self.target_lufs} LUFS is not a loudness target; use "
                                f"{MIN_TARGET_LUFS:g} to {MAX_TARGET_LUFS:g} (e.g. -14 for streaming)",
                                field="loudness_lufs")
        if not (math.isfinite(self.true_peak_dbtp) and MIN_TRUE_PEAK_DBTP <= self.true_peak_dbtp <= MAX_TRUE_PEAK_DBTP):
            raise LoudnessError(f"--true-peak: {self.true_peak_dbtp} dBTP is not a ceiling; use "
                                f"{MIN_TRUE_PEAK_DBTP:g} to {MAX_TRUE_PEAK_DBTP:g} (default "
                                f"{DEFAULT_TRUE_PEAK_DBTP:g})", field="true_peak_dbtp")
        return self


@dataclass(frozen=True)
class LoudnessReport:
    """What run.json records under `loudness` (figures of the mix as written)."""

    integrated_lufs: float | None  # None: silent (below the absolute gate)
    true_peak_dbtp: float | None
    target_lufs: float | None
    true_peak_ceiling_dbtp: float
    gain_db: float  # applied to every stem (and so to the mix) before limiting
    limiting_db: float  # the limiter's deepest gain reduction (0: no limiting; only with a target)
    short_of_target_db: float  # how far below the target the ceiling kept the mix (0: reached)

    def to_dict(self) -> dict:
        return asdict(self)


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of float `(channels, samples)` audio in LUFS (-inf when silent)."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    samples = np.asarray(audio, dtype=np.float64).T
    block = int(meter.block_size * sample_rate) + 1
    if samples.shape[0] < block:  # shorter than one 400 ms block: measured as the loop repeats
        samples = np.tile(samples, (math.ceil(block / samples.shape[0]), 1))
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(samples))


def peak_envelope(audio: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Per sample, the largest magnitude over the channels and the OVERSAMPLING points between
    it and the next sample (the signal reconstructed by 4x oversampling), as float32 `(samples,)`.
    Worked in chunks with a margin for the filter, the piece taken as the loop it is (its end
    runs into its start), so memory stays a few times one chunk."""
    from scipy.signal import resample_poly

    audio = np.asarray(audio, dtype=np.float32)
    length = audio.shape[1]
    envelope = np.empty(length, dtype=np.float32)
    margin = 32  # the default polyphase filter reaches 10 input samples either side
    for start in range(0, length, chunk):
        stop = min(length, start + chunk)
        indices = np.arange(start - margin, stop + margin) % length
        oversampled = resample_poly(audio[:, indices], OVERSAMPLING, 1, axis=1)
        inner = np.abs(oversampled[:, margin * OVERSAMPLING:(margin + stop - start) * OVERSAMPLING])
        points = inner.max(axis=0).reshape(stop - start, OVERSAMPLING).max(axis=1)
        envelope[start:stop] = np.maximum(points, np.abs(audio[:, start:stop]).max(axis=0))
    return envelope


def true_peak_dbtp(audio: np.ndarray, block: int = 4096) -> float:
    """True peak of float `(channels, samples)` audio in dBTP (-inf when silent). Only the blocks
    whose samples come within UNCHECKED_DB of the loudest sample are oversampled: a block
    quieter than that cannot hold the true peak (no real signal's true peak stands 6 dB above
    its samples), and an 8-bar mix then costs ~10x less than oversampling all of it."""
    from scipy.signal import resample_poly

    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0 or not np.any(audio):
        return -math.inf
    magnitude = np.abs(audio).max(axis=0)
    loudest = float(magnitude.max())
    starts = np.arange(0, magnitude.size, block)
    candidates = starts[np.maximum.reduceat(magnitude, starts) >= loudest * 10.0 ** (-UNCHECKED_DB / 20.0)]
    margin, length = 32, audio.shape[1]
    peak = loudest
    for start in candidates:
        indices = np.arange(start - margin, min(length, start + block) + margin) % length
        oversampled = resample_poly(audio[:, indices], OVERSAMPLING, 1, axis=1)
        peak = max(peak, float(np.abs(oversampled[:, margin * OVERSAMPLING:-margin * OVERSAMPLING]).max()))
    return 20.0 * math.log10(peak)


def _peak_envelopes(signals: list[np.ndarray], ceiling: float) -> np.ndarray | None:
    """The per-sample maximum of `peak_envelope` over `signals`, skipping a signal whose sample
    peak is more than UNCHECKED_DB under `ceiling` (no real signal's true peak stands that far
    above its sample peak; oversampling costs ~0.1 s per 8 bars). None when all were skipped."""
    floor = ceiling * 10.0 ** (-UNCHECKED_DB / 20.0)
    envelopes = [peak_envelope(signal) for signal in signals if float(np.abs(signal).max(initial=0.0)) > floor]
    return np.max(envelopes, axis=0) if envelopes else None


def _limiter_curve(peak: np.ndarray, ceiling: float, sample_rate: int) -> np.ndarray:
    """One gain curve that keeps a per-sample true-peak envelope under `ceiling` (linear): per
    sample the gain it needs, held over +-HOLD_SECONDS (a minimum filter) and then averaged over
    HOLD_SECONDS, so the curve is smooth (a gain moving at audio rate would distort) and still
    at or below what every sample needs (each average spans minima that all cover that sample).
    The piece is a loop: the curve wraps from its end to its start."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12)).astype(np.float32)
    hold = max(1, int(HOLD_SECONDS * sample_rate))
    held = minimum_filter1d(need, size=2 * hold + 1, mode="wrap")
    return uniform_filter1d(held, size=hold, mode="wrap")


def level_stems(stems: StemSet, settings: LoudnessSettings) -> tuple[StemSet, LoudnessReport]:
    """`stems` brought to the target loudness (when there is one) with every true peak of the
    mix and of each stem under the ceiling; without a target only turned down where a peak is
    above it. Every stem gets the same gain (a number, or with a target a curve: a linked
    limiter), so the stems still sum to the mix. Returns the new stems and the report."""
    settings.check()
    aim = 10.0 ** ((settings.true_peak_dbtp - MARGIN_DB) / 20.0)
    roles = list(stems.stems)
    audio = [stems.stems[role] for role in roles]
    mix = stems.mix_sum()
    loudness = integrated_lufs(mix, stems.sample_rate)
    if settings.target_lufs is None or not math.isfinite(loudness):
        # one gain, so only the loudest true peak matters (and the mix's, for the report)
        mix_peak = true_peak_dbtp(mix)
        floor_db = settings.true_peak_dbtp - MARGIN_DB - UNCHECKED_DB
        loudest = max([mix_peak] + [true_peak_dbtp(a) for a in audio
                                    if 20.0 * math.log10(float(np.abs(a).max()) + 1e-30) > floor_db])
        gain = min(1.0, aim / 10.0 ** (loudest / 20.0)) if math.isfinite(loudest) else 1.0
        gain_db = 20.0 * math.log10(gain)
        leveled = _scaled(stems, roles, [a * np.float32(gain) for a in audio], settings)
        return leveled, LoudnessReport(
            integrated_lufs=round(loudness + gain_db, 2) if math.isfinite(loudness) else None,  # scales with the gain
            true_peak_dbtp=round(mix_peak + gain_db, 2) if math.isfinite(mix_peak) else None,
            target_lufs=settings.target_lufs, true_peak_ceiling_dbtp=settings.true_peak_dbtp,
            gain_db=round(gain_db, 2), limiting_db=0.0, short_of_target_db=0.0)
    # a target: one gain times the limiter's curve, from the envelopes of the mix and the stems
    # (which scale with the gain, so each is measured once)
    stem_peaks = _peak_envelopes(audio, aim)
    peak = peak_envelope(mix) if stem_peaks is None else np.maximum(stem_peaks, peak_envelope(mix))
    gain_db = min(MAX_GAIN_DB, settings.target_lufs - loudness)
    for _ in range(LEVELING_ROUNDS):  # limiting lowers the loudness: the gain is raised to make up for it
        gain = np.float32(10.0 ** (gain_db / 20.0))
        curve = gain * _limiter_curve(gain * peak, aim, stems.sample_rate)
        reached = integrated_lufs(mix * curve, stems.sample_rate)
        if abs(reached - settings.target_lufs) < 0.05 or gain_db >= MAX_GAIN_DB:
            break
        gain_db = min(MAX_GAIN_DB, gain_db + settings.target_lufs - reached)
    limited_db = max(0.0, gain_db + 20.0 * math.log10(max(float(np.min(curve)), 1e-9)))
    leveled = _scaled(stems, roles, [a * curve for a in audio], settings)
    mix = leveled.mix_sum()
    measured, mix_peak = integrated_lufs(mix, stems.sample_rate), true_peak_dbtp(mix)
    short = 0.0
    if settings.target_lufs is not None and math.isfinite(measured):
        short = max(0.0, round(settings.target_lufs - measured, 2))
    return leveled, LoudnessReport(
        integrated_lufs=round(measured, 2) if math.isfinite(measured) else None,
        true_peak_dbtp=round(mix_peak, 2) if math.isfinite(mix_peak) else None,
        target_lufs=settings.target_lufs, true_peak_ceiling_dbtp=settings.true_peak_dbtp,
        gain_db=round(gain_db, 2), limiting_db=round(limited_db, 2), short_of_target_db=short,
    )


def _scaled(stems: StemSet, roles: list[str], audio: list[np.ndarray], settings: LoudnessSettings) -> StemSet:
    return StemSet(stems.sample_rate, stems.bpm, stems.bars,
                   {role: np.ascontiguousarray(a, dtype=np.float32) for role, a in zip(roles, audio)},
                   stems.beats_per_bar, ceiling_db=max(stems.ceiling_db, settings.true_peak_dbtp))
