"""`pipeline train`: GPT-2 on a prepared dataset. AdamW, warm-up + cosine decay, gradient
clipping, validation loss, checkpoints and `--resume` after Ctrl-C or a crash.

Work happens in `MODEL_DIR.partial/`; the finished model directory is moved into place
at the end (`paths.publish_folder`), so `MODEL_DIR` is never half-written. The work folder is
not one of `atomic_folder`'s: it outlives a crash on purpose, as what `--resume` continues.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from stemforge.configs import load_config, resolve_config
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import publish_folder
from stemforge.symbolic.core.progress import progress_bar
from stemforge.symbolic.decoding.model import build_gpt2, cosine_lr, save_composer
from stemforge.symbolic.decoding.style import STYLE_FILE, style_of_dataset
from stemforge.symbolic.music.tokenizer import ComposerTokenizer


class TrainError(UserError):
    pass


@dataclass
class TrainConfig:
    # model
    n_layer: int = 6
    n_head: int = 4
    n_embd: int = 256
    n_positions: int = 2048
    dropout: float = 0.1
    # optimisation
    batch_size: int = 8
    batch_tokens: int = 0  # >0: sequences per batch = batch_tokens // longest in a same-length bucket
    pack_batches: bool = False  # with batch_tokens: fill each batch to batch_tokens at its own longest sequence
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 200
    max_steps: int = 5000
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    # bookkeeping
    eval_interval: int = 250
    eval_batches: int = 8
    checkpoint_interval: int = 250
    seed: int = 0
    track_shuffle_prob: float = 0.5  # share of batches whose track order is permuted
    # Sequences longer than n_positions are trained on their first n_positions tokens only
    # (the model never sees how they end): with a warning up to this share of the training
    # sequences, refused above it. 0 refuses any cut.
    max_truncated_share: float = 0.25
    # fine-tuning (`--init`): 0 trains every weight; > 0 trains LoRA adapters of this rank (peft)
    lora_rank: int = 0
    lora_alpha: float = 16.0
    device: str = "auto"

    @classmethod
    def load(cls, name_or_path: str | Path) -> TrainConfig:
        return load_config(cls, resolve_config(name_or_path, "train"), TrainError, "training config")


class TokenDataset:
    def __init__(self, data_dir: Path, split: str, token_map: np.ndarray | None = None) -> None:
        self.tokens = np.load(data_dir / f"{split}_tokens.npy")
        if token_map is not None:  # the data's ids as the (fine-tuned) model's vocabulary numbers them
            self.tokens = token_map[self.tokens.astype(np.int64)]
        self.offsets = np.load(data_dir / f"{split}_offsets.npy")
        # buckets of sequences with the same bar count, so a batch is not mostly padding
        bars_tokens = self.tokens[self.offsets[:-1] + 5] if len(self) else np.zeros(0)
        self.buckets = [np.flatnonzero(bars_tokens == b) for b in np.unique(bars_tokens)]
        lengths = np.diff(self.offsets)
        self.bucket_longest = [int(lengths[b].max()) for b in self.buckets]

    def draw(self, rng: np.random.Generator, batch_size: int, batch_tokens: int, block: int,
             pack: bool = False) -> np.ndarray:
        """Sequence indices of one batch: `batch_size` at random, or (`batch_tokens` > 0) from
        one bucket, as many as `batch_tokens` holds at the bucket's longest sequence, or with
        `pack` as many as it holds at the longest sequence drawn (a few long outliers in a
        bucket otherwise make every batch one or two sequences)."""
        if batch_tokens <= 0:
            return rng.integers(0, len(self), size=batch_size)
        sizes = np.array([len(b) for b in self.buckets], dtype=float)
        bucket = int(rng.choice(len(self.buckets), p=sizes / sizes.sum()))
        if not pack:
            count = max(1, batch_tokens // min(block, self.bucket_longest[bucket]))
            return rng.choice(self.buckets[bucket], size=count)
        lengths = np.minimum(np.diff(self.offsets), block)
        chosen: list[int] = []
        longest = 0
        while True:
            index = int(rng.choice(self.buckets[bucket]))
            if chosen and max(longest, int(lengths[index])) * (len(chosen) + 1) > batch_tokens:
                return np.asarray(chosen)
            chosen.append(index)
            longest = max(longest, int(lengths[index]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, index: int) -> list[int]:
        return self.tokens[self.offsets[index]: self.offsets[index + 1]].tolist()


def shuffle_tracks(ids: list[int], tokenizer: ComposerTokenizer, rng: np.random.Generator) -> list[int]:
    """Same piece, tracks in another order: teaches the model to write any role after any
    other, which is what "regenerate the bass around these drums" needs."""
    segments = tokenizer.split_tracks(ids)
    if len(segments) < 2:
        return ids
    head = ids[: ids.index(tokenizer.track_start_id)]
    order = rng.permutation(len(segments))
    return head + [t for i in order for t in segments[i]] + [tokenizer.eos_id]


def make_batch(dataset: TokenDataset, indices: np.ndarray, tokenizer: ComposerTokenizer, block: int,
               rng: np.random.Generator, shuffle_prob: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sequences = []
    for index in indices:
        ids = dataset.sequence(int(index))
        if rng.random() < shuffle_prob:
            ids = shuffle_tracks(ids, tokenizer, rng)
        sequences.append(ids[:block])
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), tokenizer.pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
    labels = input_ids.masked_fill(attention == 0, -100)
    return input_ids, attention, labels


def check_context(train_set: TokenDataset, valid_set: TokenDataset, config: TrainConfig) -> dict:
    """How many sequences are longer than the model's context. Refuses (TrainError) when
    more than `max_truncated_share` of the training sequences would be cut, so a too-small
    context is never found out only from a model that cannot finish long pieces."""
    lengths = train_set.lengths()
    over = {"n_positions": config.n_positions, "train": int((lengths > config.n_positions).sum()),
            "valid": int((valid_set.lengths() > config.n_positions).sum()), "longest": int(lengths.max())}
    share = over["train"] / len(lengths)
    if share > config.max_truncated_share:
        raise TrainError(
            f"n_positions={config.n_positions} would cut {over['train']} of {len(lengths)} training sequences "
            f"({share:.0%}, the longest {over['longest']} tokens), more than max_truncated_share="
            f"{config.max_truncated_share:g}: raise n_positions in the training config (to {over['longest']} to "
            f"keep them all), prepare with shorter window_bars, or raise max_truncated_share")
    return over


def training_warnings(over: dict, dataset_meta: dict, train_count: int) -> list[str]:
    """What the user should know before the first step: cut sequences, untrained genres."""
    warnings = []
    if over["train"] or over["valid"]:
        warnings.append(
            f"{over['train']} of {train_count} training sequences ({over['train'] / train_count:.1%}; "
            f"{over['valid']} validation) are longer than n_positions={over['n_positions']} tokens (the longest "
            f"{over['longest']}): training sees only their first {over['n_positions']} tokens. To train on all "
            f"of them, raise n_positions in the training config or prepare with shorter window_bars")
    for genre in untrained_genres(dataset_meta):
        warnings.append(f"genre {genre!r} has no training windows: the model will know its name but not its "
                        f"music (see prepare_report.md)")
    return warnings


def untrained_genres(dataset_meta: dict) -> list[str]:
    """Genres of the tokenizer with no training window (all in validation, or none at all)."""
    return sorted(g for g, counts in dataset_meta.get("genres", {}).items() if not counts.get("train"))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank). Under `torchrun` / `accelerate launch` (WORLD_SIZE > 1)
    this joins the process group they set up: NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


@torch.no_grad()
def validation_loss(model, dataset: TokenDataset, tokenizer, config: TrainConfig, device) -> float:
    model.eval()
    rng = np.random.default_rng(1234)
    losses = []
    for _ in range(config.eval_batches):
        indices = rng.integers(0, len(dataset), size=min(config.batch_size, len(dataset)))
        ids, attention, labels = make_batch(dataset, indices, tokenizer, config.n_positions, rng, 0.0)
        out = model(input_ids=ids.to(device), attention_mask=attention.to(device), labels=labels.to(device))
        losses.append(float(out.loss))
    model.train()
    return float(np.mean(losses))


def plot_losses(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    if history["train"]:
        steps, losses = zip(*history["train"])
        axis.plot(steps, losses, label="train", alpha=0.7)
    if history["valid"]:
        steps, losses = zip(*history["valid"])
        axis.plot(steps, losses, "o-", label="validation")
    axis.set_xlabel("step")
    axis.set_ylabel("cross-entropy (nats/token)")
    axis.set_title("composer training loss")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


ARCHITECTURE_FIELDS = ("n_layer", "n_head", "n_embd", "n_positions")


def refresh_data_index(data_dir: Path, progress: bool = True) -> None:
    """The data's novelty index in this stemforge's reading (`symbolic.training.training_index`):
    rebuilt from the data's own training pieces when an older stemforge wrote it, so the
    model's copy is one `pipeline eval` reads."""
    from stemforge.symbolic.training.training_index import PIECES_FILE, build_novelty_index, index_is_current

    if index_is_current(data_dir / "index"):
        return
    if not (data_dir / PIECES_FILE).is_file():
        print(f"warning: {data_dir}/index was written by an older stemforge and the data has no {PIECES_FILE} to "
              "rebuild it from: `pipeline eval` will ask for the data to be prepared again", file=sys.stderr)
        return
    print(f"rebuilding the novelty index of {data_dir} (written by an older stemforge)", file=sys.stderr)
    build_novelty_index(data_dir, progress=progress)


def checkpoint_init(out_dir: Path) -> str | None:
    """The model an interrupted fine-tune of `out_dir` started from (None: from scratch)."""
    out_dir = Path(out_dir)
    for folder in (out_dir.with_name(out_dir.name + ".partial"), out_dir):
        state = folder / "checkpoint" / "state.pt"
        if state.is_file():
            return torch.load(state, weights_only=False, map_location="cpu").get("init")
    return None


def checkpoint_config(out_dir: Path) -> TrainConfig | None:
    """The training config a checkpoint of `out_dir` (interrupted or finished) was made with,
    or None when there is none: `--resume` continues with it, so an interrupted `tiny` run
    is not rebuilt at the default size."""
    out_dir = Path(out_dir)
    for folder in (out_dir.with_name(out_dir.name + ".partial"), out_dir):
        state = folder / "checkpoint" / "state.pt"
        if state.is_file():
            saved = torch.load(state, weights_only=False, map_location="cpu").get("config")
            if saved:
                known = {f.name for f in dataclasses.fields(TrainConfig)}
                return TrainConfig(**{k: v for k, v in saved.items() if k in known})
    return None


def train(data_dir: Path, out_dir: Path, config: TrainConfig, *, resume: bool = False,
          steps: int | None = None, progress: bool = True, init: str | Path | None = None) -> dict:
    """Train a composer on a prepared dataset, from scratch or (`init`: "default" or a model
    folder) fine-tuned from a trained model's weights (symbolic/training/finetune.py)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not (data_dir / "dataset.json").is_file():
        raise TrainError(f"DATA_DIR: {data_dir} is not a prepared dataset (run `pipeline prepare` first)")
    partial = out_dir.with_name(out_dir.name + ".partial")
    if not resume and out_dir.exists():
        raise TrainError(f"--out: {out_dir} already exists; pass --resume to continue it or choose another folder")
    if not resume and partial.exists():
        raise TrainError(f"--out: an interrupted run is in {partial}; pass --resume to continue it or delete it")
    if steps is not None:
        config.max_steps = steps
    dataset_meta = json.loads((data_dir / "dataset.json").read_text())
    tokenizer = ComposerTokenizer.load(data_dir / "tokenizer.json")
    if resume and init is None:
        init = checkpoint_init(out_dir)
    base, lookup = None, None
    if init is not None:
        from stemforge.symbolic.training.finetune import BaseModel, token_map

        base = BaseModel.load(init)
        data_tokenizer, tokenizer = tokenizer, base.vocabulary_for(tokenizer)
        lookup = token_map(data_tokenizer, tokenizer)
        config = dataclasses.replace(config, **base.architecture)  # the init model's size and context
    elif config.lora_rank:
        raise TrainError("--lora: LoRA trains adapters of a trained model; give it one with --init default|MODEL_DIR")
    train_set, valid_set = TokenDataset(data_dir, "train", lookup), TokenDataset(data_dir, "valid", lookup)
    if len(train_set) == 0:
        raise TrainError(f"DATA_DIR: {data_dir} has no training sequences")
    if len(valid_set) == 0:
        valid_set = train_set
    over_context = check_context(train_set, valid_set, config)
    if int(os.environ.get("RANK", "0")) == 0:
        for warning in training_warnings(over_context, dataset_meta, len(train_set)):
            print(f"warning: {warning}", file=sys.stderr)

    rank, world, local_rank = init_distributed()
    lead = rank == 0  # only the first process evaluates, checkpoints and saves
    checkpoint_dir = partial / "checkpoint"
    source_checkpoint = None
    if resume:
        for candidate in (partial / "checkpoint", out_dir / "checkpoint"):
            if (candidate / "state.pt").is_file():
                source_checkpoint = candidate
                break
        if source_checkpoint is None:
            raise TrainError(f"--resume: no checkpoint in {partial} or {out_dir}")
    barrier(world)
    if lead:
        if source_checkpoint is not None and source_checkpoint.parent == out_dir and not partial.exists():
            shutil.copytree(out_dir, partial)
        partial.mkdir(parents=True, exist_ok=True)
    if source_checkpoint is not None and source_checkpoint.parent == out_dir:
        source_checkpoint = checkpoint_dir
    barrier(world)

    torch.manual_seed(config.seed)
    device = pick_device(config.device, local_rank)
    if base is not None:
        from stemforge.symbolic.training.finetune import with_lora

        model = base.build_model(tokenizer, config.dropout)
        if config.lora_rank:
            data_genres = [tokenizer.vocab[f"Genre_{g}"] for g in data_tokenizer.genres]
            model = with_lora(model, config.lora_rank, config.lora_alpha, config.dropout, data_genres)
        model = model.to(device)
    else:
        model = build_gpt2(len(tokenizer), config.n_layer, config.n_head, config.n_embd, config.n_positions,
                           config.dropout, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id).to(device)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.dim() >= 2]
    no_decay = [p for n, p in trainable if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate, betas=(0.9, 0.95),
    )
    step, history, elapsed = 0, {"train": [], "valid": []}, 0.0
    rng = np.random.default_rng(config.seed if world == 1 else [config.seed, rank])
    if source_checkpoint is not None:
        state = torch.load(source_checkpoint / "state.pt", weights_only=False)
        if state["data_sha256"] != dataset_meta["data_sha256"]:
            raise TrainError("--resume: the checkpoint was trained on another dataset")
        saved = state.get("config") or {}
        differs = [f"{name} {saved[name]} vs {getattr(config, name)}" for name in ARCHITECTURE_FIELDS
                   if name in saved and saved[name] != getattr(config, name)]
        if differs:
            raise TrainError(f"--config: the checkpoint's model has another size ({', '.join(differs)}); resume "
                             "without --config to continue with the checkpoint's own config")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history, elapsed = state["step"], state["history"], state.get("elapsed", 0.0)
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        if world > 1:  # each process draws its own batches
            rng = np.random.default_rng([config.seed, rank, step])
    if step >= config.max_steps:
        raise TrainError(f"--steps: the checkpoint is already at step {step}; ask for more than {step} steps")

    def save_checkpoint() -> None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint_dir / "state.pt.tmp"
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "history": history, "elapsed": elapsed, "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "data_sha256": dataset_meta["data_sha256"],
                    "config": asdict(config), "init": None if base is None else str(base.path)}, tmp)
        tmp.replace(checkpoint_dir / "state.pt")

    interrupted = {"flag": False}
    previous_handler = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: interrupted.__setitem__("flag", True))
    forward = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    before = None
    if base is not None and lead and step == 0:  # the init model on the tuning data, for the model card
        before = validation_loss(model, valid_set, tokenizer, config, device)
        history.setdefault("valid_before", before)
    model.train()
    tokens_seen = 0
    started = time.perf_counter()
    bar = progress_bar(total=config.max_steps, initial=step, desc="training", unit="step", enabled=progress and lead)
    try:
        while step < config.max_steps and not interrupted["flag"]:
            lr = cosine_lr(step, learning_rate=config.learning_rate, min_lr=config.min_lr,
                           warmup_steps=config.warmup_steps, max_steps=config.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = train_set.draw(rng, config.batch_size, config.batch_tokens, config.n_positions,
                                     config.pack_batches)
            ids, attention, labels = make_batch(train_set, indices, tokenizer, config.n_positions, rng,
                                                config.track_shuffle_prob)
            loss = forward(input_ids=ids.to(device), attention_mask=attention.to(device), labels=labels.to(device)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            tokens_seen += int(attention.sum())
            loss_value = loss.item()
            history["train"].append((step, loss_value))
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.1e}")
            if lead and (step % config.eval_interval == 0 or step == config.max_steps):
                history["valid"].append((step, validation_loss(model, valid_set, tokenizer, config, device)))
                bar.set_postfix(loss=f"{loss_value:.3f}", val=f"{history['valid'][-1][1]:.3f}")
            if lead and step % config.checkpoint_interval == 0:
                save_checkpoint()
    except KeyboardInterrupt:
        interrupted["flag"] = True
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, previous_handler)
        elapsed += time.perf_counter() - started
    barrier(world)
    if not lead:
        return {"rank": rank, "steps": step}
    save_checkpoint()
    plot_losses(history, partial / "loss.png")
    if interrupted["flag"]:
        raise TrainError(f"training stopped at step {step}; continue with `pipeline train {data_dir} --out "
                         f"{out_dir} --resume`")

    window_bars = dataset_meta["config"]["window_bars"]
    meta = {
        "data_sha256": dataset_meta["data_sha256"],
        "data_dir": str(data_dir.resolve()),
        "genres": tokenizer.genres,
        "genres_without_training_windows": untrained_genres(dataset_meta),
        "genre_windows": {g: int(c.get("train", 0)) for g, c in dataset_meta.get("genres", {}).items()},
        "sequences_over_context": over_context,
        "max_bars": tokenizer.spec.max_bars,
        "trained_window_bars": window_bars,
        "steps": step,
        "train_seconds": round(elapsed, 1),
        "tokens_per_second": round(tokens_seen / max(1e-9, time.perf_counter() - started), 1),
        "tokens_trained": tokens_seen,  # this session's (a resumed run counts from its resume)
        "final_train_loss": float(np.mean([loss for _, loss in history["train"][-50:]])),
        "val_loss": history["valid"][-1][1] if history["valid"] else math.nan,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": asdict(config),
        "density_thresholds": dataset_meta.get("density_thresholds", {}),
    }
    if base is not None:
        from stemforge.symbolic.training.finetune import genre_windows, merged

        meta["init"] = {"path": str(base.path.resolve()), "weights_sha256": base.meta.get("weights_sha256", ""),
                        "data_sha256": base.meta.get("data_sha256")}
        meta["method"] = (f"LoRA (peft), rank {config.lora_rank}, alpha {config.lora_alpha:g}, on "
                          "c_attn/c_proj/c_fc and the data's genre embeddings" if config.lora_rank
                          else "full fine-tuning (every weight)")
        meta["trainable_parameters"] = sum(p.numel() for _, p in trainable)
        meta["new_genres"] = base.new_genres(data_tokenizer)
        meta["genres_without_training_windows"] = []  # the init model's genres keep their windows
        meta["genre_windows"] = genre_windows(base, dataset_meta)
        meta["fine_tune_losses"] = {"before": history.get("valid_before", math.nan), "after": meta["val_loss"]}
        model = merged(model)
        meta["parameters"] = sum(p.numel() for p in model.parameters())
    model.to("cpu")
    save_composer(partial, model, tokenizer, meta)
    (partial / "train_config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
    (partial / "history.json").write_text(json.dumps(history))
    refresh_data_index(data_dir, progress)
    for name in ("index", "reference_midi"):
        if (data_dir / name).is_dir():
            shutil.rmtree(partial / name, ignore_errors=True)
            shutil.copytree(data_dir / name, partial / name)
    shutil.copy(data_dir / "dataset.json", partial / "dataset.json")
    # what sets each genre apart in this data: the sampler's genre emphasis and density targets
    style_of_dataset(data_dir).save(partial / STYLE_FILE)
    if base is not None:
        from stemforge.symbolic.training.finetune import carry_over, write_model_card

        carry_over(base, data_dir, partial)
        write_model_card(partial, meta, dataset_meta)
    publish_folder(partial, out_dir, replace=resume)  # --resume of a finished model: swap it whole
    return meta
