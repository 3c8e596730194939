"""A reference loop as the prompt (`--like loop.wav`): estimate tempo and key from a user's clip.

`estimate_loop` reads the clip (librosa, 22.05 kHz mono, at most its first `MAX_ANALYSIS_SECONDS`),
refuses what cannot be measured (missing, unreadable, too short, silent, no steady beat) with a
`LoopError` a producer can act on, and returns a `LoopEstimate`; `describe()` is the line to print.

Tempo, from librosa's onset envelope (dB spectral flux) rather than its beat tracker, whose numba
kernels take ~2.5 s to compile in every process:
1. Beat family: of the envelope's autocorrelation peaks (30-300 bpm), the lag that best explains
   the repetition at one, two and four beats (beat, half bar, bar), also in the low attacks below;
   so hats every sixteenth do not make three sixteenths a beat. A broad prior around 120 bpm
   breaks near-ties. The period is then refined to a fraction of a frame by the comb (period and
   phase) that collects the most onset strength over the clip.
2. Octave: trackers land on half or double the beat as often as on it. The family is folded into
   90-180 bpm, then halved when every other beat has no onset at all, or, if the half stays in
   `PREFERRED_BPM` (70-180), when every other beat has no low attack: kick and snare below 1 kHz
   on the beats, only hats between, so 80 bpm boom-bap with eighth hats is 80, not 160. Low attacks
   are the rise of the percussive part's (hpss) linear magnitude below `ACCENT_MAX_HZ`; in dB flux a
   hat counts as much as a kick. What stays ambiguous: half-time drums (trap's kick on 1, snare on
   3 at 140) read as 70; the confidence drops near either test's threshold.
3. Confidence: the envelope's autocorrelation at the beat (a steady beat repeats, noise, loose
   playing and bar-long chords do not; below `MIN_PERIODICITY` there is no beat), times how clear
   the octave tests were.
4. The loop's length: a loop holds whole bars, so the tempos at which the clip is 1, 2, 3, 4, 6,
   8, 12 or 16 bars long are candidates. One within LOOP_TOLERANCE of the beat's tempo, or of
   its double, half, 3/2 or 2/3 (a riff in dotted quarters reads as 3/2 of the beat), is taken,
   the beat's own octave first: it is exact where the clip was cut at the bar line (an LMMS
   140 bpm loop of 4 bars read 95.7 from its onsets alone). The clip's end is taken to within
   LENGTH_SLOP_SECONDS (a fade, a few samples of padding).
5. A musical value: the tempo is snapped to the nearest whole bpm, else the nearest half, when
   that lies within the estimate's error (the beat: two envelope frames over the clip, at least
   0.1 bpm; the length: LENGTH_SLOP_SECONDS over the clip), and `describe()` says so (91.9 from
   a 92 bpm loop drifted 23 ms in 8 bars against it).

Key: the constant-Q spectrum's harmonic part (`librosa.decompose.hpss` on the CQT, ~10x cheaper
than splitting the audio), reduced to partials (what stands above the local spectral median: a
cymbal's wash is sustained, so "harmonic", but has no pitch), folded to a chroma, summed over the
clip and correlated with the Krumhansl-Kessler profiles stemforge uses for chords
(`symbolic.music.conditions`). Confidence is the margin over the runner-up key, which for a minor loop
is usually its relative major; a chroma that fits no key (noise, most drum loops) gives none.
`describe()` names the relative whenever it is the runner-up and the margin is not decisive: the
notes of a minor key and its relative major are the same, only the tonic tells them apart.

Measured on 30 rendered loops (POP909 piano, key and tempo labelled, with Groove MIDI drums
retimed to it, a Hydrogen kit): tempo right (or its double for labels under 70) in 23, double in
the other 7 (all labelled 70-90); key right in 20, its relative in 2. Drum loops alone often get
a key (toms and 808s are pitched), not always an unsure one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.music.conditions import _MAJOR_PROFILE, _MINOR_PROFILE, MAX_BPM, MIN_BPM
from stemforge.symbolic.music.keys import Key

SAMPLE_RATE = 22050
MAX_ANALYSIS_SECONDS = 60.0  # a whole song is accepted; its first minute is measured
MIN_SECONDS = 1.0  # one bar at 240 bpm (one bar at 130 bpm, 1.85 s, was refused at 2 s)
SILENCE_DBFS = -60.0  # a peak below this is silence
SURE = 0.6  # confidence from which describe() says "sure"
SURE_BPM_ERROR = 0.5  # ... and a tempo error no larger than this (bpm)
LOOP_BARS = (1, 2, 3, 4, 6, 8, 12, 16)  # the lengths a loop is cut to
LOOP_RELATIONS = (1.0, 2.0, 0.5, 1.5, 2.0 / 3.0)  # the beat's own tempo first, then its octaves and 3:2
LOOP_TOLERANCE = 0.04  # a length's tempo within 4 % of one of those: the clip is that many bars
LENGTH_SLOP_SECONDS = 0.01
MIN_BPM_ERROR = 0.1

HOP_LENGTH = 256  # onset envelope frames of 11.6 ms
MEL_BANDS = 96
PREFERRED_BPM = (70.0, 180.0)
FOLD_BPM = (90.0, 180.0)  # the beat family is first folded into this octave, then maybe halved
TEMPO_PRIOR_BPM, TEMPO_PRIOR_OCTAVES = 120.0, 1.5
USABLE_LAG_FRACTION = 0.6  # autocorrelation lags beyond this share of the clip overlap too little
ACCENT_MAX_HZ = 1000.0  # low attacks: kick, snare body, bass and chords; not hats
MIN_ATTACK_DB = 1.0  # an envelope that never rises this far (dB flux) has no attacks at all
MIN_PERIODICITY = 0.12  # envelope autocorrelation at the beat below this: no steady beat
SURE_PERIODICITY = 0.6  # ... from this on, fully sure
EMPTY_BEAT_RATIO = 0.1  # every other beat (nearly) without onsets: half as fast, in any range
HALF_TIME_RATIO = 0.35  # every other beat's low attacks weaker than this (relative): half as fast

CHROMA_HOP = 1024  # the key needs little time resolution; a coarse hop keeps the CQT cheap
CQT_BINS_PER_OCTAVE, CQT_OCTAVES = 36, 7  # C1 to B7, a third of a semitone per bin
WHITENING_BINS = 13  # the local median a partial must stand above: 13 bins = a major third
MIN_KEY_FIT = 0.5  # best key correlation below this: the chroma fits no key
MAX_CHROMA_FLATNESS = 0.9  # geometric over arithmetic mean of the chroma; above, it is noise
SURE_KEY_MARGIN = 0.2  # correlation margin over the runner-up that counts as fully sure

AUDIO_HINT = "give a WAV, FLAC, OGG or MP3 clip"


class LoopError(UserError):
    """A `--like` clip that cannot be measured; the message names the file and what to do."""

    field = "like"


@dataclass(frozen=True)
class LoopEstimate:
    """What a reference loop says: tempo (bpm within 1-300: a whole or half bpm where that is
    within `bpm_error`, else 0.1 steps) and key (stemforge's
    spelling, "F minor"; None without tonal content), how sure each is (0..1), and the clip's
    length in seconds. `bpm` is None only from `estimate_loop(require_beat=False)` on a clip
    without a steady beat."""

    bpm: float | None
    key: str | None
    bpm_confidence: float
    key_confidence: float
    seconds: float
    source: str = ""  # the file's name, for describe()
    key_runner_up: str | None = None  # the second-best key
    bpm_error: float | None = None  # how far off the tempo may be (bpm), where it was measured
    bpm_note: str = ""  # how the tempo was settled: "snapped from 91.9", "4 bars long"

    def describe(self) -> str:
        """One line, e.g. 'loop.wav: 92 bpm (sure, ±0.1; snapped from 91.9), F minor (or its
        relative Ab major: the same notes)'."""
        if self.bpm is None:
            tempo = "no steady beat found; pass --bpm"
        else:
            error = self.bpm_error if self.bpm_error is not None else 0.0
            sure = self.bpm_confidence >= SURE and error <= SURE_BPM_ERROR
            shown = f"±{error:.1f}" if error >= 0.1 else f"±{error:.2f}"
            words = ["sure" if sure else "unsure"] + ([shown] if self.bpm_error is not None else [])
            note = f"; {self.bpm_note}" if self.bpm_note else ""
            tempo = f"{self.bpm:g} bpm ({', '.join(words)}{note})"
        if self.key is None:
            key = "no key found; pass --key"
        elif self.key_runner_up is not None and self.key_confidence < 1.0 and _relatives(self.key, self.key_runner_up):
            key = f"{self.key} (or its relative {self.key_runner_up}: the same notes, the tonic decides)"
        elif self.key_confidence >= SURE or self.key_runner_up is None:
            key = f"{self.key} ({'sure' if self.key_confidence >= SURE else 'unsure'})"
        else:
            key = f"{self.key} (unsure: {self.key_runner_up} close)"
        return f"{self.source}: {tempo}, {key}" if self.source else f"{tempo}, {key}"


def _relatives(first: str, second: str) -> bool:
    """Whether two keys are a minor key and its relative major (the same pitch classes)."""
    from stemforge.symbolic.music.keys import parse_key

    a, b = parse_key(first), parse_key(second)
    return a.mode != b.mode and a.scale_pitch_classes == b.scale_pitch_classes


def estimate_loop(path: Path, min_seconds: float = MIN_SECONDS, *, require_beat: bool = True) -> LoopEstimate:
    """Tempo and key of the audio clip at `path` (see the module doc). Raises LoopError (field
    "like", one line naming the file) for a missing or unreadable file, a clip shorter than
    `min_seconds`, silence, or no steady beat; with `require_beat=False` (the user gave --bpm) a
    clip without a steady beat gives `bpm=None` instead, so its key is still read."""
    path = Path(path)
    audio, seconds = _load(path, min_seconds)
    import librosa

    bpm_error, note = None, ""
    try:
        bpm, bpm_confidence = _tempo(path, audio, librosa)
        bpm, bpm_error, note = musical_tempo(bpm, seconds, min(seconds, MAX_ANALYSIS_SECONDS), bpm_confidence)
    except LoopError:
        if require_beat:
            raise
        bpm, bpm_confidence = None, 0.0
    key, key_confidence, runner_up = _key(audio, librosa)
    return LoopEstimate(
        bpm=bpm, key=key, bpm_confidence=bpm_confidence, key_confidence=key_confidence,
        seconds=round(seconds, 2), source=path.name, key_runner_up=runner_up, bpm_error=bpm_error, bpm_note=note,
    )


def musical_tempo(beat_bpm: float, seconds: float, analysed_seconds: float,
                  confidence: float = 1.0) -> tuple[float, float, str]:
    """(tempo, its error in bpm, what was done) from the beat's tempo and the clip's length (the
    module doc, steps 4 and 5). The length is taken at the beat's own tempo when it lies within
    three of the beat's errors; at its 3/2 or 2/3 (a riff in dotted quarters) within
    LOOP_TOLERANCE and a quarter of a beat over the clip; at its double or half only when the beat
    was unsure (`confidence` under SURE), then within half a beat. A clip not cut at the bar line
    must not be read as one (8 bars of 123 bpm and 0.41 s read 119.9 with a looser rule)."""
    frame_seconds = HOP_LENGTH / SAMPLE_RATE
    beat_error = max(MIN_BPM_ERROR, 2 * beat_bpm * frame_seconds / analysed_seconds)
    bpm, error, notes = beat_bpm, beat_error, []
    fits = []
    for order, relation in enumerate(LOOP_RELATIONS):
        if confidence >= SURE and relation in (2.0, 0.5):
            continue  # a sure beat keeps its octave (its own tests chose it); 3:2 is another matter
        slack = 0.5 if confidence < SURE else 0.25  # beats over the whole clip
        for bars in LOOP_BARS:
            candidate = 60.0 * 4 * bars / seconds
            expected = beat_bpm * relation
            beats_off = abs(seconds * expected / 60.0 - 4 * bars)
            if not MIN_BPM <= candidate <= MAX_BPM:
                continue
            if order == 0 and abs(candidate - expected) <= 3 * beat_error or \
                    order and abs(candidate / expected - 1.0) <= LOOP_TOLERANCE and beats_off <= slack:
                fits.append((order, beats_off, bars, candidate))
    if fits:
        _, _, bars, bpm = min(fits)
        error = max(bpm * LENGTH_SLOP_SECONDS / seconds, 1e-3)
        notes.append(f"{bars} bar{'s' if bars > 1 else ''} of {seconds:.2f} s"
                     + (f"; the beat alone read {beat_bpm:.1f}" if abs(bpm - beat_bpm) > max(1.0, 3 * error) else ""))
    for step in (1.0, 0.5):
        musical = round(bpm / step) * step
        if abs(musical - bpm) <= error:
            if abs(musical - bpm) >= 0.05:
                notes.append(f"snapped from {bpm:.1f}, within ±{error:.1f}")
            return musical, round(error, 2), "; ".join(notes)
    return round(bpm, 1), round(error, 2), "; ".join(notes)


def _fail(path: Path, problem: str) -> LoopError:
    return LoopError(f"--like: {path}: {problem}", field="like")


def loop_audio(path: Path, sample_rate: int, num_samples: int) -> np.ndarray:
    """The clip as float32 stereo `(2, num_samples)` at `sample_rate`, repeated or cut to the
    piece's length from its start: MusicGen-Melody's melody condition when `--like` is given
    with `--renderer musicgen` (only the chroma of it is used, so the clip's own sounds do not
    leak into the stems). Call after `estimate_loop` accepted the clip."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio, _ = librosa.load(path, sr=sample_rate, mono=False, duration=MAX_ANALYSIS_SECONDS)
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    stereo = np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio[:2]
    repeats = -(-num_samples // stereo.shape[1])
    return np.ascontiguousarray(np.tile(stereo, (1, repeats))[:, :num_samples])


def _load(path: Path, min_seconds: float) -> tuple[np.ndarray, float]:
    """The clip as float32 mono at SAMPLE_RATE (its first minute), peak-normalised, and its full
    length in seconds."""
    if not path.exists():
        raise _fail(path, f"no such file; {AUDIO_HINT}")
    if path.is_dir():
        raise _fail(path, f"is a folder; {AUDIO_HINT}")
    import audioread.exceptions
    import librosa
    import soundfile

    try:
        header_rate = soundfile.info(str(path)).samplerate
    except (RuntimeError, OSError):  # not a libsndfile format (MP3 on an old libsndfile): audioread reads it
        header_rate = None
    if header_rate is not None and header_rate <= 0:
        raise _fail(path, f"not readable audio (its header says {header_rate} Hz); {AUDIO_HINT}")
    try:
        with warnings.catch_warnings():  # librosa warns before it falls back to audioread
            warnings.simplefilter("ignore")
            audio, native_rate = librosa.load(path, sr=None, mono=False, duration=MAX_ANALYSIS_SECONDS)
    except (RuntimeError, OSError, EOFError, ValueError, ZeroDivisionError,
            audioread.exceptions.DecodeError) as error:
        raise _fail(path, f"not readable audio ({_read_error_reason(error, soundfile)}); {AUDIO_HINT}") from error
    if not native_rate or native_rate <= 0:
        raise _fail(path, f"not readable audio (a sample rate of {native_rate} Hz); {AUDIO_HINT}")
    broken = int(np.count_nonzero(~np.isfinite(audio)))
    if broken:  # a broken export: NaN or infinity cannot be resampled or measured
        raise _fail(path, f"{broken} of its {audio.size} samples are not numbers (NaN or infinite); export the clip "
                    "again")
    audio = librosa.to_mono(audio)
    if native_rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=native_rate, target_sr=SAMPLE_RATE)
    read_seconds = audio.size / SAMPLE_RATE
    if read_seconds < min_seconds:
        raise _fail(path, f"only {read_seconds:.2f} s long; give at least {min_seconds:g} s (a bar or more)")
    try:
        seconds = max(read_seconds, float(soundfile.info(str(path)).duration))
    except (RuntimeError, OSError):  # decoded by audioread: what was read is what is known
        seconds = read_seconds
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio)))
    if peak < 10 ** (SILENCE_DBFS / 20):
        shown = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise _fail(path, f"silent (peak {shown} dBFS, below {SILENCE_DBFS:g}); give a clip where the loop plays")
    return audio / peak, seconds


def _read_error_reason(error: BaseException, soundfile) -> str:
    """What the decoder said: libsndfile's words ("Format not recognised") where it failed first
    (librosa then tries audioread, whose error often says nothing)."""
    cause: BaseException | None = error
    for _ in range(8):  # the chain: audioread's error, raised while handling libsndfile's
        if cause is None:
            break
        if isinstance(cause, soundfile.LibsndfileError):
            return (cause.error_string or "").strip().rstrip(".") or "format not recognised"
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(error).split())
    return text[:120] if text else type(error).__name__


def _tempo(path: Path, audio: np.ndarray, librosa) -> tuple[float, float]:
    """(bpm rounded to 0.1, confidence); see the module doc."""
    no_beat = "no steady beat found; pass --bpm to set the tempo"
    frames_per_minute = 60.0 * SAMPLE_RATE / HOP_LENGTH
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_mels=MEL_BANDS)
    envelope = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=SAMPLE_RATE,
                                            hop_length=HOP_LENGTH)
    if envelope.size < 16 or float(np.max(envelope)) < MIN_ATTACK_DB:
        raise _fail(path, no_beat)
    _, percussive = librosa.decompose.hpss(mel, kernel_size=(31, 9))
    centres = librosa.mel_frequencies(n_mels=MEL_BANDS + 2, fmax=SAMPLE_RATE / 2)[1:-1]
    low = np.sqrt(percussive[centres < ACCENT_MAX_HZ]).sum(axis=0)
    accent = np.maximum(0.0, np.diff(low, prepend=low[0]))
    correlations = (_autocorrelation(envelope), _autocorrelation(accent))

    # 1. beat family
    flux = correlations[0]
    lags = range(max(2, int(frames_per_minute / 300.0)), min(flux.size - 2, int(frames_per_minute / 30.0) + 1))
    peaks = [lag for lag in lags if flux[lag] > 0 and flux[lag] >= flux[lag - 1] and flux[lag] >= flux[lag + 1]]
    if not peaks:
        raise _fail(path, no_beat)

    def score(lag: int) -> float:
        prior = math.exp(-0.5 * (math.log2(frames_per_minute / lag / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
        return _metrical_fit(correlations, lag) * (0.5 + 0.5 * prior)

    best_lag = max(peaks, key=score)
    period = float(max(np.linspace(best_lag - 1.5, best_lag + 1.5, 61), key=lambda p: _comb(envelope, p)[0]))

    # 2. octave
    while frames_per_minute / period >= FOLD_BPM[1]:
        period *= 2
    while frames_per_minute / period < FOLD_BPM[0]:
        period /= 2
    phase = _comb(envelope, period)[1]
    if _on_grid(accent, phase + period / 2, period).mean() > _on_grid(accent, phase, period).mean():
        phase += period / 2  # locked onto off-beat hats: the beats are where the low attacks are
    empty = _alternation(_on_grid(envelope, phase, period))
    unaccented = _alternation(_on_grid(accent, phase, period))
    half_in_range = frames_per_minute / (2 * period) >= PREFERRED_BPM[0] - 0.5
    if empty < EMPTY_BEAT_RATIO or (half_in_range and unaccented < HALF_TIME_RATIO):
        period *= 2
    octave_sureness = min(_sureness_of(empty, EMPTY_BEAT_RATIO),
                          _sureness_of(unaccented, HALF_TIME_RATIO) if half_in_range else 1.0)

    # 3. steadiness
    steadiness = _correlation_at(flux, period)
    if steadiness is None:  # under two beats at this tempo
        steadiness = _correlation_at(flux, period / 2) or 0.0
    if steadiness < MIN_PERIODICITY:
        raise _fail(path, no_beat)
    confidence = min(1.0, (steadiness - MIN_PERIODICITY) / (SURE_PERIODICITY - MIN_PERIODICITY))
    bpm = min(MAX_BPM, max(MIN_BPM, round(frames_per_minute / period, 1)))
    return bpm, round(confidence * octave_sureness, 2)


def _autocorrelation(envelope: np.ndarray) -> np.ndarray:
    """Autocorrelation of the envelope around its mean, each lag averaged over the frames it
    overlaps (long lags are not penalised), 1 at lag 0."""
    centred = envelope - envelope.mean()
    spectrum = np.fft.rfft(centred, 2 * centred.size)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum))[: centred.size]
    correlation /= centred.size - np.arange(centred.size)
    return correlation / correlation[0] if correlation[0] > 0 else np.zeros_like(correlation)


def _correlation_at(correlation: np.ndarray, lag: float) -> float | None:
    """The autocorrelation's peak within a frame of a fractional lag; None past the usable lags."""
    if lag + 3 >= USABLE_LAG_FRACTION * correlation.size:
        return None
    return float(np.max(correlation[max(1, int(lag) - 1): int(lag) + 3]))


def _metrical_fit(correlations: tuple[np.ndarray, ...], lag: float) -> float:
    """How well a beat period explains the repetition: each envelope's autocorrelation at one,
    two and four beats, averaged, summed over the envelopes."""
    total = 0.0
    for correlation in correlations:
        values = [v for m in (1, 2, 4) if (v := _correlation_at(correlation, lag * m)) is not None]
        total += sum(values) / len(values) if values else 0.0
    return total


def _comb(envelope: np.ndarray, period: float, bins: int = 48) -> tuple[float, float]:
    """(onset strength collected, phase in frames) of the best comb with this period (frames)."""
    phases = (np.arange(envelope.size) % period) / period
    folded = np.bincount((phases * bins).astype(int) % bins, weights=envelope, minlength=bins)
    best = int(np.argmax(folded))
    return float(folded[best]), (best + 0.5) / bins * period


def _on_grid(envelope: np.ndarray, phase: float, period: float) -> np.ndarray:
    """The envelope at every beat of a grid (frames), each the peak within one frame either side."""
    frames = np.round(np.arange(phase % period, envelope.size - 1, period)).astype(int)
    padded = np.pad(envelope, 1)
    return np.max(np.stack([padded[frames], padded[frames + 1], padded[frames + 2]]), axis=0)


def _alternation(strengths: np.ndarray) -> float:
    """Mean strength of the weaker of the even and odd beats over that of the stronger."""
    if strengths.size < 2:
        return 1.0
    even, odd = float(strengths[0::2].mean()), float(strengths[1::2].mean())
    return min(even, odd) / (max(even, odd) + 1e-9)


def _sureness_of(ratio: float, threshold: float) -> float:
    """1 when an octave test's ratio is far from its threshold, down to 0.6 right at it."""
    return 0.6 + 0.4 * min(1.0, abs(ratio - threshold) / 0.25)


def _key(audio: np.ndarray, librosa) -> tuple[str | None, float, str | None]:
    """(key name, confidence, runner-up name) from the chroma of the partials; (None, 0, None)
    when it fits no key."""
    import scipy.ndimage

    tuning = float(librosa.estimate_tuning(y=audio, sr=SAMPLE_RATE, bins_per_octave=CQT_BINS_PER_OCTAVE))
    spectrum = np.abs(librosa.cqt(
        audio, sr=SAMPLE_RATE, hop_length=CHROMA_HOP, n_bins=CQT_BINS_PER_OCTAVE * CQT_OCTAVES,
        bins_per_octave=CQT_BINS_PER_OCTAVE, tuning=tuning,
    ))
    harmonic, _ = librosa.decompose.hpss(spectrum)
    floor = scipy.ndimage.median_filter(harmonic, size=(WHITENING_BINS, 1), mode="nearest")
    chroma = librosa.feature.chroma_cqt(
        C=np.maximum(0.0, harmonic - floor), sr=SAMPLE_RATE, hop_length=CHROMA_HOP,
        bins_per_octave=CQT_BINS_PER_OCTAVE, n_octaves=CQT_OCTAVES, norm=None,
    )
    profile = chroma.sum(axis=1).astype(np.float64)
    if not np.all(np.isfinite(profile)) or float(np.ptp(profile)) <= 1e-9 * max(float(profile.max()), 1e-30):
        return None, 0.0, None
    flatness = float(np.exp(np.mean(np.log(profile + 1e-12))) / np.mean(profile))
    scores = sorted(
        ((float(np.corrcoef(np.roll(profile, -tonic), template)[0, 1]), Key(tonic, mode).name)
         for mode, template in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)) for tonic in range(12)),
        reverse=True,
    )
    (best, name), (second, runner_up) = scores[0], scores[1]
    if best < MIN_KEY_FIT or flatness > MAX_CHROMA_FLATNESS:
        return None, 0.0, None
    return name, round(min(1.0, (best - second) / SURE_KEY_MARGIN), 2), runner_up
