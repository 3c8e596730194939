"""Chroma conditioning for MusicGen-Melody, computed the way transformers' feature extractor does.

`transformers.MusicgenMelodyFeatureExtractor` needs torchaudio only for its spectrogram and
resampler. We keep its filter bank (`transformers.audio_utils.chroma_filter_bank`, the same call
with the same arguments) and replace `torchaudio.transforms.Spectrogram(power=2, normalized=True,
center=True)` with `torch.stft` plus the same window normalisation, and the resampler with
`scipy.signal.resample_poly`, so the project does not depend on torchaudio.

The output is what the model's `input_features` expects: (frames, num_chroma) float32 with a one at
the strongest pitch class of each frame (argmax, as the extractor does), ~7.8 frames per second at
the model's 32 kHz and hop 4096.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.signal
import torch
from transformers.audio_utils import chroma_filter_bank

from stemforge.symbolic.core.errors import UserError

PREPROCESSOR_FILE = "preprocessor_config.json"


class ChromaError(UserError):
    """Audio that cannot become a chroma condition."""


@dataclass(frozen=True)
class ChromaSettings:
    """The feature extractor's fields that shape the chroma (defaults = facebook/musicgen-melody)."""

    sampling_rate: int = 32000
    n_fft: int = 16384
    hop_length: int = 4096
    num_chroma: int = 12

    @property
    def frames_per_second(self) -> float:
        return self.sampling_rate / self.hop_length

    @classmethod
    def from_model_dir(cls, model_dir: Path | None) -> ChromaSettings:
        """Read `preprocessor_config.json` when the model folder has one (hub snapshots do)."""
        if model_dir is None or not (Path(model_dir) / PREPROCESSOR_FILE).is_file():
            return cls()
        data = json.loads((Path(model_dir) / PREPROCESSOR_FILE).read_text())
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def to_preprocessor_config(self) -> dict:
        """What transformers writes for MusicgenMelodyFeatureExtractor, so the folder stays loadable
        by `AutoProcessor` where torchaudio is installed."""
        return {
            "feature_extractor_type": "MusicgenMelodyFeatureExtractor",
            "feature_size": self.num_chroma,
            "sampling_rate": self.sampling_rate,
            "hop_length": self.hop_length,
            "chunk_length": 30,
            "n_fft": self.n_fft,
            "num_chroma": self.num_chroma,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": False,
            "stem_indices": [3, 2],
            "processor_class": "MusicgenMelodyProcessor",
        }


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling along the last axis (float32 in, float32 out)."""
    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float32)
    ratio = Fraction(int(to_rate), int(from_rate))
    out = scipy.signal.resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32)


def to_mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return audio if audio.ndim == 1 else audio.mean(axis=0)


def chroma_features(
    audio: np.ndarray, sample_rate: int, settings: ChromaSettings | None = None
) -> torch.Tensor:
    """(channels, samples) or (samples,) audio at `sample_rate` -> one-hot chroma (frames, num_chroma)."""
    settings = settings or ChromaSettings()
    mono = to_mono(audio)
    if mono.size == 0 or not np.all(np.isfinite(mono)):
        raise ChromaError("chroma: the melody audio is empty or holds NaN/inf; render the melody first")
    waveform = torch.from_numpy(resample(mono, sample_rate, settings.sampling_rate))
    if waveform.shape[-1] < settings.n_fft:  # as the extractor: centre-pad short clips to one window
        pad = settings.n_fft - waveform.shape[-1]
        waveform = torch.nn.functional.pad(waveform, (pad // 2, pad - pad // 2))
    window = torch.hann_window(settings.n_fft)
    spectrum = torch.stft(
        waveform, n_fft=settings.n_fft, hop_length=settings.hop_length, win_length=settings.n_fft,
        window=window, center=True, pad_mode="reflect", return_complex=True,
    )
    # torchaudio's normalized=True ("window") divides the magnitude by the window's L2 norm.
    power = (spectrum.abs() / window.pow(2).sum().sqrt()).pow(2)
    filters = torch.from_numpy(
        chroma_filter_bank(
            sampling_rate=settings.sampling_rate, num_frequency_bins=settings.n_fft, tuning=0,
            num_chroma=settings.num_chroma,
        )
    ).float()
    raw = filters @ power  # (num_chroma, frames)
    normalised = torch.nn.functional.normalize(raw, p=float("inf"), dim=0, eps=1e-6).T
    one_hot = torch.zeros_like(normalised)
    one_hot.scatter_(-1, normalised.argmax(-1, keepdim=True), 1.0)
    return one_hot


def chroma_window(
    chroma: torch.Tensor, start_seconds: float, duration_seconds: float, settings: ChromaSettings
) -> torch.Tensor:
    """Frames of a looping chroma from `start_seconds` for `duration_seconds`, wrapping round the loop.

    Stems are loops, so a generation window that runs past the end of the melody continues with
    its beginning, as the producer will hear it in the DAW.
    """
    fps = settings.frames_per_second
    first = int(round(start_seconds * fps))
    count = max(1, int(math.ceil(duration_seconds * fps)))
    index = (first + torch.arange(count)) % chroma.shape[0]
    return chroma[index]
