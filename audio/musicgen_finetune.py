"""Fine-tune MusicGen-Melody on a producer's own stems, so `--renderer musicgen` sounds like them.

STEMS_DIR holds WAV/FLAC/AIFF stems. Text per stem: a sidecar `NAME.txt`, else a `metadata.csv`
row (`file,text[,melody]`), else the file name ("dusty_lofi_drums_80bpm.wav" -> "dusty lofi drums
80bpm"). Melody per stem: a sidecar `NAME.mid`/`.midi` or a paired rendered melody `NAME.melody.wav`
(or the CSV's `melody` column); its chroma conditions the stem, else the stem's own chroma does.

EnCodec codes and chroma are computed once per file and cached in `OUT/cache` (keyed by the file's
SHA-256 and the codec), the text encoder and codec stay frozen, and only the decoder learns: LoRA
adapters (peft) by default, or the whole decoder. Training draws random fixed-length crops, drops
the conditions 10 % of the time as MusicGen was trained (so classifier-free guidance keeps working),
uses mixed precision and gradient accumulation on a GPU, checkpoints to `OUT/checkpoint.pt` (resume
with `resume=True`), reports a validation loss and draws `OUT/loss.png`. The finished folder loads
with `load_musicgen(OUT)` / `--musicgen OUT`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch

from stemforge.audio.chroma import ChromaSettings, chroma_features, chroma_window, resample
from stemforge.audio.musicgen import (
    FINETUNE_FILE,
    LoadedMusicGen,
    MusicGenError,
    check_musicgen_weights,
    load_musicgen,
    save_model_folder,
)
from stemforge.symbolic.core.progress import progress_bar

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff")
MIDI_SUFFIXES = (".mid", ".midi")
MELODY_TAG = ".melody"  # NAME.melody.wav is the rendered melody paired with NAME.wav
METADATA_FILE = "metadata.csv"
SILENCE_PEAK = 1e-4  # -80 dBFS
CONDITION_DROPOUT = 0.1  # MusicGen's training recipe: learn the unconditional model too (CFG)
ENCODE_SECONDS = 30.0  # EnCodec pass length, to bound memory on long stems
LORA_TARGETS = r".*decoder\.model\.decoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|fc1|fc2)"
CHECKPOINT_FILE = "checkpoint.pt"


class FinetuneError(MusicGenError):
    """A stems folder, option or output folder fine-tuning cannot use; one line naming it."""


@dataclass
class FinetuneRequest:
    stems_dir: Path
    out_dir: Path
    base: str  # hub id the user named, or a MusicGen-Melody folder
    lora: bool = True  # False = train the whole decoder
    steps: int = 200
    chunk_seconds: float = 10.0
    batch_size: int = 2
    grad_accum: int = 1
    learning_rate: float = 1e-4
    resume: bool = False
    seed: int = 0
    lora_rank: int = 16
    eval_every: int = 0  # 0 = ten validation points over the run
    checkpoint_every: int = 50
    device: str | None = None


@dataclass
class Clip:
    """One usable stem: its cached codes (codebooks, frames) and chroma (frames, 12)."""

    name: str
    text: str
    codes: torch.Tensor
    chroma: torch.Tensor
    chroma_from: str  # "midi", "melody audio" or "own audio"


@dataclass
class ScanReport:
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ input

def _text_from_name(path: Path) -> str:
    words = re.sub(r"[_\-.]+", " ", path.stem).strip()
    return re.sub(r"\s+", " ", words)


def _read_metadata(stems_dir: Path) -> dict[str, dict[str, str]]:
    path = stems_dir / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise FinetuneError(f"{path}: not a readable CSV ({error}); expected columns file,text[,melody]") from error
    if rows and ("file" not in rows[0] or "text" not in rows[0]):
        raise FinetuneError(f"{path}: needs columns 'file' and 'text' (found {sorted(rows[0])})")
    return {row["file"].strip(): row for row in rows if row.get("file")}


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 and the file's rate; raises ValueError on unreadable files."""
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise ValueError(f"unreadable audio ({str(error).splitlines()[0]})") from error
    return np.ascontiguousarray(data.T), int(rate)


def _midi_chroma(path: Path, frames: int, settings: ChromaSettings) -> torch.Tensor:
    """One-hot chroma straight from the notes (velocity-weighted pitch classes per frame): the
    same thing the audio chroma estimates, without rendering the MIDI first."""
    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as error:  # pretty_midi raises many types on bad bytes
        raise ValueError(f"unreadable MIDI {path.name} ({error})") from error
    for instrument in midi.instruments:
        if instrument.is_drum:
            instrument.notes = []
    times = np.arange(frames) / settings.frames_per_second
    roll = midi.get_chroma(times=times) if frames else np.zeros((12, 0))
    roll = roll[:, :frames]
    one_hot = torch.zeros(frames, settings.num_chroma)
    one_hot[torch.arange(roll.shape[1]), torch.from_numpy(roll.argmax(0))] = 1.0
    return one_hot


def _partner(path: Path, row: dict[str, str] | None) -> Path | None:
    if row and row.get("melody"):
        candidate = (path.parent / row["melody"].strip())
        if not candidate.is_file():
            raise FinetuneError(f"{METADATA_FILE}: melody {row['melody']!r} for {path.name} does not exist")
        return candidate
    for suffix in MIDI_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    for suffix in AUDIO_SUFFIXES:
        candidate = path.with_name(path.stem + MELODY_TAG + suffix)
        if candidate.is_file():
            return candidate
    return None


def _cache_key(path: Path, bundle: LoadedMusicGen, partner: Path | None) -> str:
    digest = hashlib.sha256(path.read_bytes())
    if partner is not None:
        digest.update(partner.read_bytes())
    codec = bundle.model.config.audio_encoder
    digest.update(json.dumps([bundle.source, codec.sampling_rate, codec.codebook_size,
                              bundle.num_codebooks, asdict(bundle.chroma)]).encode())
    return digest.hexdigest()[:24]


def _encode(bundle: LoadedMusicGen, audio: np.ndarray) -> torch.Tensor:
    """Model-rate (channels, samples) -> codes (codebooks, frames), in ENCODE_SECONDS pieces."""
    codec = bundle.model.audio_encoder
    step = int(ENCODE_SECONDS * bundle.sampling_rate)
    pieces = []
    with torch.inference_mode():
        for start in range(0, audio.shape[-1], step):
            part = torch.from_numpy(audio[:, start : start + step]).to(bundle.device, codec.dtype)
            per_channel = [codec.encode(part[c : c + 1][None]).audio_codes[0, 0] for c in range(part.shape[0])]
            if len(per_channel) == 1:
                pieces.append(per_channel[0])
            else:  # stereo models interleave left/right codebooks
                pieces.append(torch.stack(per_channel, dim=1).reshape(-1, per_channel[0].shape[-1]))
    return torch.cat(pieces, dim=-1).cpu().to(torch.int16)


def scan_stems(stems_dir: Path, bundle: LoadedMusicGen, chunk_seconds: float, cache_dir: Path,
               progress: bool = True) -> tuple[list[Clip], ScanReport]:
    """Read, check, convert and encode every usable stem (cached); say what was skipped and why."""
    stems_dir = Path(stems_dir)
    if not stems_dir.is_dir():
        raise FinetuneError(f"STEMS_DIR {stems_dir}: no such folder")
    files = sorted(p for p in stems_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                   and not p.stem.endswith(MELODY_TAG))
    if not files:
        raise FinetuneError(f"STEMS_DIR {stems_dir}: no WAV/FLAC/AIFF stems found; put the stems to learn from there")
    metadata = _read_metadata(stems_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    report = ScanReport()
    clips: list[Clip] = []
    rates: dict[int, int] = {}
    downmixed = upmixed = 0
    channels = bundle.audio_channels

    for path in progress_bar(files, desc="encoding stems", unit="file", enabled=progress):
        rel = str(path.relative_to(stems_dir))
        row = metadata.get(rel) or metadata.get(path.name)
        sidecar = path.with_suffix(".txt")
        text = (sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file() else "") \
            or (row or {}).get("text", "").strip() or _text_from_name(path)
        partner = _partner(path, row)
        key = _cache_key(path, bundle, partner)
        cached = cache_dir / f"{key}.pt"
        if cached.is_file():
            entry = torch.load(cached, weights_only=True)
            clips.append(Clip(rel, text, entry["codes"], entry["chroma"].float(), entry["chroma_from"]))
            continue
        try:
            audio, rate = _read_audio(path)
        except ValueError as error:
            report.skipped[rel] = str(error)
            continue
        seconds = audio.shape[-1] / rate
        if not np.isfinite(audio).all() or float(np.abs(audio).max(initial=0.0)) < SILENCE_PEAK:
            report.skipped[rel] = "silent (peak below -80 dBFS) or holds NaN/inf"
            continue
        if seconds < chunk_seconds:
            report.skipped[rel] = f"{seconds:.1f} s is shorter than one {chunk_seconds:g} s chunk (lower chunk_seconds)"
            continue
        if rate != bundle.sampling_rate:
            rates[rate] = rates.get(rate, 0) + 1
        if audio.shape[0] != channels:
            if channels == 1:
                downmixed += 1
                audio = audio.mean(axis=0, keepdims=True)
            else:
                upmixed += audio.shape[0] == 1
                audio = np.repeat(audio[:1], 2, axis=0) if audio.shape[0] == 1 else audio[:2]
        audio = resample(audio, rate, bundle.sampling_rate)
        codes = _encode(bundle, audio)
        frames = int(math.ceil(codes.shape[-1] / bundle.frame_rate * bundle.chroma.frames_per_second))
        try:
            if partner is not None and partner.suffix.lower() in MIDI_SUFFIXES:
                chroma, source = _midi_chroma(partner, frames, bundle.chroma), "midi"
            elif partner is not None:
                melody, melody_rate = _read_audio(partner)
                chroma, source = chroma_features(melody, melody_rate, bundle.chroma), "melody audio"
            else:
                chroma, source = chroma_features(audio, bundle.sampling_rate, bundle.chroma), "own audio"
        except ValueError as error:
            report.skipped[rel] = f"paired melody {partner.name if partner else ''}: {error}"
            continue
        torch.save({"codes": codes, "chroma": chroma.to(torch.uint8), "chroma_from": source}, cached)
        clips.append(Clip(rel, text, codes, chroma, source))
    if rates:
        listed = ", ".join(f"{n} at {r} Hz" for r, n in sorted(rates.items()))
        report.notes.append(f"resampled {sum(rates.values())} file(s) ({listed}) to the model's {bundle.sampling_rate} Hz")
    if downmixed:
        report.notes.append(f"downmixed {downmixed} multichannel file(s) to mono (the model is mono)")
    if upmixed:
        report.notes.append(f"copied {upmixed} mono file(s) to both channels (the model is stereo)")
    if not clips:
        reasons = "; ".join(f"{name}: {why}" for name, why in list(report.skipped.items())[:3])
        raise FinetuneError(f"STEMS_DIR {stems_dir}: no usable stems ({reasons})")
    return clips, report


# --------------------------------------------------------------------------------------- training

def _delayed_labels(codes: torch.Tensor, pad: int) -> torch.Tensor:
    """(batch, codebooks, frames) -> labels (batch, frames + codebooks - 1, codebooks) in MusicGen's
    delay pattern (codebook k shifted right by k, pad elsewhere; the model masks pad out of the loss
    and shifts the labels right behind a BOS column for the decoder input, as at generation)."""
    batch, books, frames = codes.shape
    delay = books  # mono: one step per codebook
    out = torch.full((batch, books, frames + delay - 1), pad, dtype=torch.long)
    for k in range(books):
        out[:, k, k : k + frames] = codes[:, k]
    return out.transpose(1, 2)


def _stereo_delayed_labels(codes: torch.Tensor, pad: int) -> torch.Tensor:
    batch, books, frames = codes.shape
    per_channel = books // 2
    out = torch.full((batch, books, frames + per_channel - 1), pad, dtype=torch.long)
    for k in range(books):
        shift = k // 2
        out[:, k, shift : shift + frames] = codes[:, k]
    return out.transpose(1, 2)


class Batcher:
    """Random fixed-length crops of cached clips, with texts and chroma."""

    def __init__(self, clips: list[Clip], bundle: LoadedMusicGen, chunk_seconds: float, seed: int) -> None:
        self.clips = clips
        self.bundle = bundle
        self.frames = int(round(chunk_seconds * bundle.frame_rate))
        self.chunk_seconds = chunk_seconds
        self.random = random.Random(seed)

    def crop(self, clip: Clip, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        codes = clip.codes[:, start : start + self.frames].long()
        chroma = chroma_window(clip.chroma, start / self.bundle.frame_rate, self.chunk_seconds, self.bundle.chroma)
        return codes, chroma

    def sample(self, batch_size: int) -> list[tuple[Clip, int]]:
        picks = []
        for _ in range(batch_size):
            clip = self.random.choice(self.clips)
            picks.append((clip, self.random.randint(0, max(0, clip.codes.shape[-1] - self.frames))))
        return picks

    def fixed(self, count: int) -> list[tuple[Clip, int]]:
        """Deterministic crops for the validation loss: evenly along each clip."""
        picks = []
        for clip in self.clips:
            room = max(0, clip.codes.shape[-1] - self.frames)
            per_clip = max(1, count // len(self.clips))
            picks.extend((clip, int(room * i / max(1, per_clip - 1)) if per_clip > 1 else room // 2)
                         for i in range(per_clip))
        return picks[: max(count, len(self.clips))]

    def tensors(self, picks: list[tuple[Clip, int]], dropout: float, rng: random.Random | None) -> dict:
        model = self.bundle.model
        pad = int(model.config.decoder.pad_token_id)
        codes, chroma = zip(*(self.crop(clip, start) for clip, start in picks), strict=True)
        text = self.bundle.tokenizer([clip.text for clip, _ in picks], return_tensors="pt", padding=True)
        features = torch.stack(chroma)
        mask = text["attention_mask"].clone()
        if dropout > 0 and rng is not None:
            for row in range(len(picks)):
                if rng.random() < dropout:  # the null condition of generation: no text, chroma "C"
                    mask[row] = 0
                    features[row] = 0
                    features[row, :, 0] = 1
        stacked = torch.stack(codes)
        labels = (_delayed_labels(stacked, pad) if self.bundle.audio_channels == 1
                  else _stereo_delayed_labels(stacked, pad))
        device = self.bundle.device
        return {"input_ids": text["input_ids"].to(device), "attention_mask": mask.to(device),
                "input_features": features.to(device), "labels": labels.to(device)}


def _split(clips: list[Clip], seed: int) -> tuple[list[Clip], list[Clip], str]:
    if len(clips) < 2:
        return clips, clips, "the only usable clip (fixed crops; not held out)"
    order = list(range(len(clips)))
    random.Random(seed).shuffle(order)
    held = max(1, len(clips) // 10)
    val = [clips[i] for i in order[:held]]
    train = [clips[i] for i in order[held:]]
    return train, val, f"{held} held-out clip(s)"


def _trainable(model, lora: bool, rank: int):
    for param in model.parameters():
        param.requires_grad = False
    if lora:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=LORA_TARGETS)
        return get_peft_model(model, config)
    for module in (model.decoder, getattr(model, "enc_to_dec_proj", None), getattr(model, "audio_enc_to_dec_proj", None)):
        if module is not None:
            for param in module.parameters():
                param.requires_grad = True
    return model


def _loss(model, batch: dict, autocast_dtype: torch.dtype | None, device: torch.device) -> torch.Tensor:
    if autocast_dtype is not None:
        with torch.autocast(device.type, dtype=autocast_dtype):
            return model(**batch).loss
    return model(**batch).loss


def _validation_loss(model, batcher: Batcher, picks, batch_size: int, autocast_dtype, device) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(picks), batch_size):
            chunk = picks[start : start + batch_size]
            total += float(_loss(model, batcher.tensors(chunk, 0.0, None), autocast_dtype, device)) * len(chunk)
            count += len(chunk)
    model.train()
    return total / max(1, count)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _plot_losses(train: list[float], val: list[tuple[int, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(train) + 1)
    axis.plot(steps, train, color="#9bb", linewidth=0.8, label="train (per step)")
    if len(train) >= 5:
        width = max(2, len(train) // 20)
        smooth = np.convolve(train, np.ones(width) / width, mode="valid")
        axis.plot(steps[width - 1 :], smooth, color="#157", label=f"train ({width}-step mean)")
    if val:
        axis.plot([s for s, _ in val], [v for _, v in val], "o-", color="#d52", label="validation")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy per codebook")
    axis.set_title(title)
    axis.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _check_request(request: FinetuneRequest) -> None:
    if request.steps < 1:
        raise FinetuneError(f"steps: {request.steps} must be at least 1")
    if request.chunk_seconds <= 0:
        raise FinetuneError(f"chunk_seconds: {request.chunk_seconds:g} must be positive")
    if request.batch_size < 1 or request.grad_accum < 1:
        raise FinetuneError("batch_size and grad_accum must be at least 1")
    if not request.learning_rate > 0:
        raise FinetuneError(f"learning_rate: {request.learning_rate} must be positive")
    out = Path(request.out_dir)
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"--out {out}: is a file; choose a folder")
    if out.is_dir() and (out / FINETUNE_FILE).is_file() and not request.resume:
        raise FinetuneError(f"--out {out}: already holds a fine-tuned model; choose another folder or --resume")
    elif out.is_dir() and not request.resume and (out / CHECKPOINT_FILE).is_file():
        raise FinetuneError(f"--out {out}: holds an unfinished run; pass --resume to continue it or choose another folder")


def _publish(model, bundle: LoadedMusicGen, request: FinetuneRequest, summary: dict) -> None:
    """Write the loadable model into OUT: staged, then moved in with the marker file last, so a
    crash never leaves a folder that looks finished."""
    out = Path(request.out_dir)
    staging = Path(tempfile.mkdtemp(prefix=".publish.", dir=out))
    try:
        base = request.base if not Path(request.base).expanduser().exists() else str(Path(request.base).expanduser().resolve())
        marker = {"base": base, "mode": "lora" if request.lora else "full", "summary": summary}
        if request.lora:
            model.save_pretrained(staging)  # adapter_config.json + adapter_model.safetensors
            bundle.tokenizer.save_pretrained(staging)
            (staging / "preprocessor_config.json").write_text(json.dumps(bundle.chroma.to_preprocessor_config(), indent=2))
            (staging / FINETUNE_FILE).write_text(json.dumps(marker, indent=2))
            last = FINETUNE_FILE
        else:
            save_model_folder(model, bundle.tokenizer, bundle.chroma, staging / "model", {FINETUNE_FILE: marker})
            for item in (staging / "model").iterdir():
                item.rename(staging / item.name)
            (staging / "model").rmdir()
            last = "config.json"
        for name in (FINETUNE_FILE, "config.json", "adapter_config.json"):  # stale markers of an older run
            (out / name).unlink(missing_ok=True)
        items = sorted(staging.iterdir(), key=lambda p: (p.name in (last, FINETUNE_FILE), p.name))
        for item in items:
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def finetune_musicgen(request: FinetuneRequest, progress: bool = True) -> dict:
    """Train, checkpoint, validate, plot and publish; returns the summary (also in OUT/stemforge_finetune.json)."""

    _check_request(request)
    started = time.perf_counter()
    out = Path(request.out_dir)
    torch.manual_seed(request.seed)
    print(check_musicgen_weights(request.base, "--base"), file=sys.stderr)
    try:
        bundle = load_musicgen(request.base, request.device)
    except MusicGenError as error:  # its messages name --musicgen, the run flag; here the flag is --base
        raise FinetuneError(str(error).replace("--musicgen", "--base", 1), field="base") from error
    out.mkdir(parents=True, exist_ok=True)  # only now: a base that cannot be used left an empty --out
    model = bundle.model.float()  # fp32 master weights; autocast gives the half precision on GPU
    model.freeze_text_encoder()
    model.freeze_audio_encoder()
    clips, scan = scan_stems(Path(request.stems_dir), bundle, request.chunk_seconds, out / "cache", progress)
    train_clips, val_clips, val_note = _split(clips, request.seed)
    batcher = Batcher(train_clips, bundle, request.chunk_seconds, request.seed)
    val_batcher = Batcher(val_clips, bundle, request.chunk_seconds, request.seed)
    val_picks = val_batcher.fixed(max(2, request.batch_size))

    model = _trainable(model, request.lora, request.lora_rank)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=request.learning_rate, weight_decay=0.0 if request.lora else 0.01)
    device = bundle.device
    autocast_dtype = None
    if device.type == "cuda":
        autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)

    step, train_losses, val_losses = 0, [], []
    checkpoint = out / CHECKPOINT_FILE
    if request.resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        if set(state["trainable"]) != names:
            raise FinetuneError(f"--resume: {checkpoint} was written for another mode/base; remove it or change --out")
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        step, train_losses, val_losses = state["step"], state["train_losses"], [tuple(v) for v in state["val_losses"]]
        batcher.random.setstate(state["random"])
        torch.set_rng_state(state["torch_rng"])
    dropout_rng = random.Random(request.seed + step)
    eval_every = request.eval_every or max(1, request.steps // 10)

    def save_checkpoint() -> None:
        trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
        _save_atomic({"trainable": trainable, "optimizer": optimizer.state_dict(), "step": step,
                      "train_losses": train_losses, "val_losses": val_losses,
                      "random": batcher.random.getstate(), "torch_rng": torch.get_rng_state()}, checkpoint)

    if not val_losses:
        val_losses.append((0, _validation_loss(model, val_batcher, val_picks, request.batch_size, autocast_dtype, device)))
    bar = progress_bar(total=request.steps, initial=min(step, request.steps), desc="finetune-musicgen", unit="step",
                       enabled=progress)
    while step < request.steps:
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(request.grad_accum):
            batch = batcher.tensors(batcher.sample(request.batch_size), CONDITION_DROPOUT, dropout_rng)
            loss = _loss(model, batch, autocast_dtype, device) / request.grad_accum
            scaler.scale(loss).backward()
            total += float(loss.detach())
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        train_losses.append(total)
        if step % eval_every == 0 or step == request.steps:
            val_losses.append((step, _validation_loss(model, val_batcher, val_picks, request.batch_size,
                                                      autocast_dtype, device)))
        if step % request.checkpoint_every == 0 or step == request.steps:
            save_checkpoint()
        bar.set_postfix(loss=f"{total:.3f}", val=f"{val_losses[-1][1]:.3f}")
        bar.update(1)
    bar.close()

    mode = "lora" if request.lora else "full"
    _plot_losses(train_losses, val_losses, out / "loss.png",
                 f"finetune-musicgen ({mode}, {len(clips)} stems, base {Path(request.base).name})")
    summary = {
        "base": request.base, "mode": mode, "steps": step, "device": str(device),
        "clips": len(clips), "train_clips": len(train_clips), "validation": val_note,
        "chroma_from": {c.name: c.chroma_from for c in clips},
        "texts": {c.name: c.text for c in clips},
        "skipped": scan.skipped, "notes": scan.notes,
        "trainable_parameters": sum(p.numel() for p in params),
        "first_loss": train_losses[0] if train_losses else None,
        "last_loss": float(np.mean(train_losses[-max(1, len(train_losses) // 10):])) if train_losses else None,
        "val_losses": [[s, round(v, 5)] for s, v in val_losses],
        "train_losses": [round(v, 5) for v in train_losses],
        "chunk_seconds": request.chunk_seconds, "batch_size": request.batch_size,
        "grad_accum": request.grad_accum, "learning_rate": request.learning_rate,
        "seconds": round(time.perf_counter() - started, 1), "loss_png": str(out / "loss.png"),
    }
    _publish(model, bundle, request, summary)
    return summary
