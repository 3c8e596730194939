"""Audio embeddings for FAD, chosen by name from `EMBEDDINGS`.

Every embedding turns float32 audio `(channels, samples)` at its own `sample_rate` and
`channels` into `(frames, dim)` float32 frames. Callers conform audio first
(`eval.reference.conform`), so every embedding sees the same rate, channel count and a
float scale whatever the file's bit depth.

- "features": weight-free, always available offline. Per 0.51 s frame of 22.05 kHz mono:
  mean and standard deviation of 20 MFCCs (from a 64-band log-mel spectrogram in bels,
  referenced to full scale, so level differences count) and mean and standard deviation of
  the log-mel spectral flux (how percussive/busy the frame is). 42 dims.
- "vggish": VGGish (Hershey et al. 2017) written here in torch; weights from a local
  state-dict file in torchvggish layout (`vggish-10086976.pth`), or the torch hub cache.
  The 128-d pre-activation embedding per 0.96 s frame, as FAD uses it.
- "encodec": the continuous encoder latent of EnCodec (`transformers.EncodecModel`), one
  frame per codec step (75/s at 24 kHz); from a local folder, the HF cache, or a hub id the
  user names (the only case that may download).
- "pann": PANN CNN14 (Kong et al. 2020) written here in torch; weights from a local
  `Cnn14_mAP=0.431.pth` only (never downloaded). The 2048-d `fc1` embedding per 1 s window
  of 32 kHz mono, each window run through the network on its own.

Weights are never fetched unless the user names a hub id or URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemforge.eval.reference import EvalError


class EmbeddingError(EvalError):
    """An embedding that cannot be built (unknown name, weights missing or malformed)."""


@dataclass
class Embedding:
    """A named frame embedding. `embed` gets audio already at `sample_rate`/`channels`."""

    name: str
    sample_rate: int
    channels: int
    dim: int
    embed: Callable[[np.ndarray], np.ndarray]
    weights: str = ""  # where the weights came from ("" for weight-free)
    frame_seconds: float = 0.0
    revision: str = ""  # hub commit of weights loaded by hub id (the id alone does not pin them)
    libraries: tuple[str, ...] = ("numpy", "scipy", "librosa", "soxr")  # whose versions can move the frames


def weights_identity(embedder: Embedding) -> str | None:
    """What the weights are, for cache keys: the sha256 of a local file or folder (cached by
    path, size and mtime, so a 320 MB checkpoint is hashed once), `id@commit` for a hub
    model, the URL itself for a URL (torch hub checkpoints carry a hash in their name);
    None for a weight-free embedding."""
    if not embedder.weights:
        return None
    path = Path(embedder.weights).expanduser()
    if not embedder.weights.startswith(("http://", "https://")) and path.exists():
        from stemforge.audio.assets import sha256_of

        return sha256_of(path)
    return f"{embedder.weights}@{embedder.revision}" if embedder.revision else embedder.weights


def embedding_identity(embedder: Embedding) -> dict:
    """Everything an embedding's frames depend on besides the audio: its settings, weights,
    this module and the conforming code (eval.reference), and the libraries it calls."""
    from stemforge.symbolic.core.cache import code_digest, library_versions

    return {"name": embedder.name, "sample_rate": embedder.sample_rate, "channels": embedder.channels,
            "dim": embedder.dim, "frame_seconds": embedder.frame_seconds, "weights": embedder.weights,
            "weights_sha256": weights_identity(embedder), "code": code_digest(("stemforge.eval.embeddings", "stemforge.eval.reference")),
            "libraries": library_versions(embedder.libraries)}


TORCH_LIBRARIES = ("numpy", "scipy", "librosa", "soxr", "torch")


# ---------------------------------------------------------------- features (weight-free)

FEATURES_SAMPLE_RATE = 22050
FEATURES_N_FFT = 2048
FEATURES_HOP = 512
FEATURES_N_MELS = 64
FEATURES_N_MFCC = 20
FEATURES_FRAME_HOPS = 22  # STFT hops per embedding frame: 22 * 512 / 22050 = 0.51 s


def features_frames(audio: np.ndarray) -> np.ndarray:
    """(frames, 42) MFCC/flux statistics of mono 22.05 kHz audio; see the module doc."""
    import librosa

    mono = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(mono) < FEATURES_N_FFT:
        mono = np.pad(mono, (0, FEATURES_N_FFT - len(mono)))
    mel = librosa.feature.melspectrogram(
        y=mono, sr=FEATURES_SAMPLE_RATE, n_fft=FEATURES_N_FFT, hop_length=FEATURES_HOP,
        n_mels=FEATURES_N_MELS, center=False, power=2.0,
    )
    # Bels against full scale with a -100 dB floor: silence is a fixed point, not -inf.
    log_mel = np.log10(np.maximum(mel, 1e-10)).astype(np.float32)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=FEATURES_N_MFCC)
    flux = np.maximum(np.diff(log_mel, axis=1, prepend=log_mel[:, :1]), 0.0).mean(axis=0, keepdims=True)
    per_stft_frame = np.concatenate([mfcc, flux], axis=0)  # (21, T)
    span = FEATURES_FRAME_HOPS
    count = per_stft_frame.shape[1] // span
    if count == 0:  # shorter than one frame: one frame of what there is
        segments = per_stft_frame[None]
    else:
        segments = per_stft_frame[:, : count * span].reshape(per_stft_frame.shape[0], count, span).transpose(1, 0, 2)
    return np.concatenate([segments.mean(axis=2), segments.std(axis=2)], axis=1).astype(np.float32)


def build_features(weights: str | None = None) -> Embedding:
    if weights:
        raise EmbeddingError("features: this embedding has no weights; drop its --embedding-weights entry")
    return Embedding("features", FEATURES_SAMPLE_RATE, 1, 2 * (FEATURES_N_MFCC + 1), features_frames,
                     frame_seconds=FEATURES_FRAME_HOPS * FEATURES_HOP / FEATURES_SAMPLE_RATE)


# ---------------------------------------------------------------- VGGish

VGGISH_SAMPLE_RATE = 16000
VGGISH_FRAMES = 96  # 10 ms STFT hops per example: 0.96 s
VGGISH_MEL_BANDS = 64
VGGISH_CONV_INDICES = (0, 3, 6, 8, 11, 13)  # torchvggish `features` Sequential positions
VGGISH_LINEAR_INDICES = (0, 2, 4)
VGGISH_CHECKPOINT = "vggish-10086976.pth"


def _vggish_module(conv_channels: list[int], hidden: list[int]):
    """VGGish in torchvggish's layout (so its state dict loads unchanged); widths come
    from the checkpoint, which lets tests use a tiny random one."""
    import torch
    from torch import nn

    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = conv_channels
            layers: list[nn.Module] = []
            plan = [c[0], "M", c[1], "M", c[2], c[3], "M", c[4], c[5], "M"]
            in_channels = 1
            for item in plan:
                if item == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(in_channels, int(item), 3, 1, 1), nn.ReLU(inplace=True)]
                    in_channels = int(item)
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(
                nn.Linear(c[5] * 6 * 4, hidden[0]), nn.ReLU(inplace=True),
                nn.Linear(hidden[0], hidden[1]), nn.ReLU(inplace=True),
                nn.Linear(hidden[1], hidden[2]),  # no final ReLU: FAD uses the pre-activation
            )

        def forward(self, examples: torch.Tensor) -> torch.Tensor:  # (B, 1, 96, 64)
            x = self.features(examples)
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # channels last, as the TF port
            return self.embeddings(x)

    return VGGish()


def vggish_examples(audio: np.ndarray) -> np.ndarray:
    """(n, 96, 64) log-mel examples of mono 16 kHz audio, following the VGGish front end:
    25 ms Hann window, 10 ms hop, 64 HTK mel bands 125-7500 Hz, log(mel + 0.01)."""
    import librosa

    mono = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(mono) < 400:
        mono = np.pad(mono, (0, 400 - len(mono)))
    magnitude = np.abs(librosa.stft(mono, n_fft=512, hop_length=160, win_length=400, window="hann",
                                    center=False))
    mel_basis = librosa.filters.mel(sr=VGGISH_SAMPLE_RATE, n_fft=512, n_mels=VGGISH_MEL_BANDS, fmin=125.0,
                                    fmax=7500.0, htk=True, norm=None)
    log_mel = np.log(mel_basis @ magnitude + 0.01).T.astype(np.float32)  # (T, 64)
    count = len(log_mel) // VGGISH_FRAMES
    if count == 0:
        log_mel = np.pad(log_mel, ((0, VGGISH_FRAMES - len(log_mel)), (0, 0)), constant_values=np.log(0.01))
        count = 1
    return log_mel[: count * VGGISH_FRAMES].reshape(count, VGGISH_FRAMES, VGGISH_MEL_BANDS)


def _default_vggish_path() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / VGGISH_CHECKPOINT


def build_vggish(weights: str | None = None) -> Embedding:
    import torch

    if weights and weights.startswith(("http://", "https://")):
        # The user named a download explicitly; torch hub caches it.
        state = torch.hub.load_state_dict_from_url(weights, map_location="cpu", progress=True)
        source = weights
    else:
        path = Path(weights).expanduser() if weights else _default_vggish_path()
        if not path.is_file():
            raise EmbeddingError(
                f"vggish: no weights at {path}; pass --embedding-weights vggish=PATH to a torchvggish "
                f"state dict ({VGGISH_CHECKPOINT}) or drop vggish from --embedding"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise EmbeddingError(f"vggish: {path} is not a readable torch state dict ({error})") from error
        source = str(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        conv = [int(state[f"features.{i}.weight"].shape[0]) for i in VGGISH_CONV_INDICES]
        hidden = [int(state[f"embeddings.{i}.weight"].shape[0]) for i in VGGISH_LINEAR_INDICES]
        model = _vggish_module(conv, hidden)
        # pca/other extras in some checkpoints are not part of the network
        model.load_state_dict({k: v for k, v in state.items() if k.startswith(("features.", "embeddings."))})
    except (KeyError, RuntimeError, AttributeError) as error:
        raise EmbeddingError(f"vggish: {source} does not hold VGGish weights in torchvggish layout ({error})") \
            from error
    model.eval()

    def embed(audio: np.ndarray) -> np.ndarray:
        examples = torch.from_numpy(vggish_examples(audio))[:, None]
        with torch.inference_mode():
            out = [model(batch) for batch in examples.split(64)]
        return torch.cat(out).numpy().astype(np.float32)

    return Embedding("vggish", VGGISH_SAMPLE_RATE, 1, hidden[2], embed, weights=source,
                     frame_seconds=VGGISH_FRAMES / 100, libraries=TORCH_LIBRARIES)


# ---------------------------------------------------------------- EnCodec

ENCODEC_DEFAULT_ID = "facebook/encodec_24khz"
ENCODEC_CHUNK_SECONDS = 10.0


def _looks_like_hub_id(text: str) -> bool:
    return "/" in text and not text.startswith(("/", ".", "~")) and not Path(text).exists()


def build_encodec(weights: str | None = None) -> Embedding:
    import torch
    from transformers import EncodecModel

    name = weights or ENCODEC_DEFAULT_ID
    if weights and not _looks_like_hub_id(weights) and not Path(weights).expanduser().is_dir():
        raise EmbeddingError(f"encodec: {weights} is not a folder with an EnCodec model (config.json + weights)")
    # Download only when the user named a hub id; the default id must already be cached.
    offline = weights is None or not _looks_like_hub_id(weights) or os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        model = EncodecModel.from_pretrained(str(Path(name).expanduser()) if not _looks_like_hub_id(name) else name,
                                             local_files_only=offline)
    except (OSError, ValueError) as error:
        hint = ("pass --embedding-weights encodec=PATH (a local folder) or a hub id such as "
                f"{ENCODEC_DEFAULT_ID} to download it") if weights is None else "check the path or id"
        raise EmbeddingError(f"encodec: cannot load {name} ({str(error).splitlines()[0]}); {hint}") from error
    model.eval()
    sample_rate = int(model.config.sampling_rate)
    channels = int(model.config.audio_channels)
    chunk = int(ENCODEC_CHUNK_SECONDS * sample_rate)

    def embed(audio: np.ndarray) -> np.ndarray:
        signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).reshape(1, channels, -1)
        frames = []
        with torch.inference_mode():
            for start in range(0, signal.shape[-1], chunk):
                piece = signal[..., start : start + chunk]
                if piece.shape[-1] < 64:
                    continue
                frames.append(model.encoder(piece)[0].T)  # (steps, hidden)
        if not frames:
            frames.append(model.encoder(torch.nn.functional.pad(signal, (0, 64)))[0].T)
        return torch.cat(frames).numpy().astype(np.float32)

    return Embedding("encodec", sample_rate, channels, int(model.config.hidden_size), embed, weights=name,
                     frame_seconds=1.0 / float(model.config.frame_rate),
                     revision=str(getattr(model.config, "_commit_hash", None) or ""),
                     libraries=(*TORCH_LIBRARIES, "transformers"))


# ---------------------------------------------------------------- PANN CNN14

PANN_SAMPLE_RATE = 32000
PANN_N_FFT = 1024
PANN_HOP = 320
PANN_MEL_BANDS = 64
PANN_FMIN = 50.0
PANN_FMAX = 14000.0
PANN_WINDOW = PANN_SAMPLE_RATE  # samples per embedding frame: 1 s
PANN_BLOCKS = 6
PANN_CHECKPOINT = "Cnn14_mAP=0.431.pth"
PANN_NETWORK_PREFIXES = ("bn0.", "conv_block", "fc1.")  # spectrogram/logmel extractors and fc_audioset are not


def _pann_module(channels: list[int], hidden: int, mel_basis: np.ndarray):
    """CNN14 from audioset_tagging_cnn `models.py` in its parameter layout (so the public
    checkpoint loads unchanged), without torchlibrosa: the log-mel front end is torch.stft with
    a periodic Hann window, centred with reflect padding, power spectrum, `mel_basis`
    (n_fft/2+1, 64) and 10*log10(max(x, 1e-10)). Widths come from the checkpoint."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ConvBlock(nn.Module):
        def __init__(self, in_channels: int, out_channels: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.bn2 = nn.BatchNorm2d(out_channels)

        def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            return F.avg_pool2d(x, kernel_size=pool) if pool > 1 else x

    class Cnn14(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mel_basis", torch.from_numpy(np.asarray(mel_basis, dtype=np.float32)),
                                 persistent=False)
            self.register_buffer("window", torch.hann_window(PANN_N_FFT, periodic=True), persistent=False)
            self.bn0 = nn.BatchNorm2d(PANN_MEL_BANDS)
            in_channels = 1
            for index, width in enumerate(channels, start=1):
                setattr(self, f"conv_block{index}", ConvBlock(in_channels, width))
                in_channels = width
            self.fc1 = nn.Linear(channels[-1], hidden)

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:  # (B, samples) -> (B, hidden)
            spec = torch.stft(waveform, PANN_N_FFT, PANN_HOP, PANN_N_FFT, self.window, center=True,
                              pad_mode="reflect", return_complex=True)
            power = spec.real ** 2 + spec.imag ** 2  # (B, freq, T)
            mel = power.transpose(1, 2) @ self.mel_basis  # (B, T, 64)
            x = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))[:, None]  # (B, 1, T, 64)
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # batch norm over mel bins
            for index in range(1, len(channels) + 1):
                x = getattr(self, f"conv_block{index}")(x, 2 if index < len(channels) else 1)
            x = x.mean(dim=3)  # over frequency
            x = x.max(dim=2).values + x.mean(dim=2)  # over time
            return F.relu(self.fc1(x))

    return Cnn14()


def _default_pann_path() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / PANN_CHECKPOINT


def pann_windows(audio: np.ndarray) -> np.ndarray:
    """(n, 32000) non-overlapping 1 s windows of mono 32 kHz audio; a clip shorter than one
    window is zero-padded to one, a partial window at the end is dropped."""
    mono = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(mono) < PANN_WINDOW:
        mono = np.pad(mono, (0, PANN_WINDOW - len(mono)))
    count = len(mono) // PANN_WINDOW
    return mono[: count * PANN_WINDOW].reshape(count, PANN_WINDOW)


def build_pann(weights: str | None = None) -> Embedding:
    import torch

    if weights and weights.startswith(("http://", "https://")):
        raise EmbeddingError(f"pann: weights are only read from a local file; download {PANN_CHECKPOINT} "
                             "yourself and pass --embedding-weights pann=PATH")
    path = Path(weights).expanduser() if weights else _default_pann_path()
    if not path.is_file():
        raise EmbeddingError(f"pann: no weights at {path}; pass --embedding-weights pann=PATH to a PANN CNN14 "
                             f"checkpoint ({PANN_CHECKPOINT}) or drop pann from --embedding")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EmbeddingError(f"pann: {path} is not a readable torch checkpoint ({first})") from error
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    try:
        channels = [int(state[f"conv_block{i}.conv1.weight"].shape[0]) for i in range(1, PANN_BLOCKS + 1)]
        hidden = int(state["fc1.weight"].shape[0])
        if "logmel_extractor.melW" in state:
            mel_basis = state["logmel_extractor.melW"].detach().float().numpy()
        else:
            import librosa

            mel_basis = librosa.filters.mel(sr=PANN_SAMPLE_RATE, n_fft=PANN_N_FFT, n_mels=PANN_MEL_BANDS,
                                            fmin=PANN_FMIN, fmax=PANN_FMAX).T
        if tuple(mel_basis.shape) != (PANN_N_FFT // 2 + 1, PANN_MEL_BANDS):
            raise RuntimeError(f"logmel_extractor.melW has shape {tuple(mel_basis.shape)}, "
                               f"expected {(PANN_N_FFT // 2 + 1, PANN_MEL_BANDS)}")
        model = _pann_module(channels, hidden, mel_basis)
        model.load_state_dict({k: v for k, v in state.items() if k.startswith(PANN_NETWORK_PREFIXES)}, strict=False)
        missing = [k for k in model.state_dict() if k not in state and not k.endswith("num_batches_tracked")]
        if missing:
            raise KeyError(f"missing {', '.join(missing[:3])}")
    except (KeyError, RuntimeError, AttributeError, TypeError, IndexError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EmbeddingError(f"pann: {path} does not hold PANN CNN14 weights "
                             f"(audioset_tagging_cnn layout, {{'model': state_dict}}) ({first})") from error
    model.eval()

    def embed(audio: np.ndarray) -> np.ndarray:
        windows = torch.from_numpy(pann_windows(audio))
        with torch.inference_mode():
            out = [model(batch) for batch in windows.split(16)]
        return torch.cat(out).numpy().astype(np.float32)

    return Embedding("pann", PANN_SAMPLE_RATE, 1, hidden, embed, weights=str(path),
                     frame_seconds=PANN_WINDOW / PANN_SAMPLE_RATE, libraries=TORCH_LIBRARIES)


EMBEDDINGS: dict[str, Callable[[str | None], Embedding]] = {
    "features": build_features,
    "vggish": build_vggish,
    "encodec": build_encodec,
    "pann": build_pann,
}


def build_embedding(name: str, weights: str | None = None) -> Embedding:
    if name not in EMBEDDINGS:
        raise EmbeddingError(f"--embedding: unknown embedding {name!r}; choose from {', '.join(EMBEDDINGS)}")
    return EMBEDDINGS[name](weights)
