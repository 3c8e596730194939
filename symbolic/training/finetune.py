"""Fine-tuning a trained composer on a user's prepared data: `pipeline train DATA --init
default|MODEL_DIR [--lora]`.

The model starts from the init model's weights instead of from scratch. Its vocabulary is
the init model's with the data's genres added (a token keeps its weights whatever its id:
embeddings are carried over by token name), so the data's token ids are mapped onto it; the
rest of the tokenizer (grid, velocities, durations, pitch ranges, bars) must be the init
model's, else a one-line error says which setting differs. The architecture is the init
model's. Full fine-tuning trains every weight; LoRA (`peft`) trains low-rank adapters of
every attention and MLP matrix and the embeddings of the data's genre tokens only, then
merges them, so the result is a plain model folder either way.

The finished folder holds what any model folder holds, with the init model's knowledge
carried along: the novelty index and the stored training windows of both training sets
(a copy of either is caught), the FAD reference clips of both, the style statistics (the
data's genres from the data, the others from the init model), the training windows per
genre of both, and a MODEL_CARD.md saying what it was tuned from and on, and its figures.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.decoding.model import DEFAULT_MODEL_DIR, ModelDirError, read_model_info
from stemforge.symbolic.music.tokenizer import ComposerTokenizer, TokenizerSpec

LORA_TARGETS = ("c_attn", "c_proj", "c_fc")  # every attention and MLP matrix of a GPT-2 block
ARCHITECTURE = ("n_layer", "n_head", "n_embd", "n_positions")


class FineTuneError(UserError):
    pass


@dataclass
class BaseModel:
    """The trained model a fine-tune starts from."""

    path: Path
    meta: dict
    tokenizer: ComposerTokenizer
    architecture: dict[str, int]

    @classmethod
    def load(cls, init: str | Path) -> BaseModel:
        path = DEFAULT_MODEL_DIR if str(init) == "default" else Path(init)
        try:
            info = read_model_info(path)
        except ModelDirError as error:
            raise FineTuneError(f"--init: {str(error).removeprefix('--model: ')}") from error
        config = json.loads((path / "config.json").read_text())
        return cls(path, info.meta, ComposerTokenizer.load(path / "tokenizer.json"),
                   {name: int(config[name]) for name in ARCHITECTURE})

    def vocabulary_for(self, data: ComposerTokenizer) -> ComposerTokenizer:
        """The fine-tuned model's tokenizer: the init model's, with the data's genres added.
        FineTuneError naming the setting where the data was tokenized otherwise."""
        mine, theirs = asdict(self.tokenizer.spec), asdict(data.spec)
        differs = [f"{name} {theirs[name]} vs the model's {mine[name]}" for name in mine
                   if name not in ("genres", "max_bars") and _plain(theirs[name]) != _plain(mine[name])]
        if theirs["max_bars"] > mine["max_bars"]:
            differs.append(f"max_bars {theirs['max_bars']} vs the model's {mine['max_bars']}")
        if differs:
            raise FineTuneError(f"--init: DATA_DIR was tokenized for another model ({'; '.join(differs)}); prepare it "
                                f"again with settings the model {self.path} holds (its tokenizer.json)")
        genres = sorted(set(self.tokenizer.genres) | set(data.genres))
        spec = TokenizerSpec(**{**mine, "genres": genres})
        return ComposerTokenizer(spec)

    def new_genres(self, data: ComposerTokenizer) -> list[str]:
        return sorted(set(data.genres) - set(self.tokenizer.genres))

    def build_model(self, tokenizer: ComposerTokenizer, dropout: float):
        """The init model's GPT-2 with its embeddings carried over to `tokenizer`'s ids; a new
        genre token starts as the mean of the model's genre embeddings."""
        import torch
        from transformers import GPT2LMHeadModel

        model = GPT2LMHeadModel.from_pretrained(self.path, local_files_only=True, resid_pdrop=dropout,
                                                embd_pdrop=dropout, attn_pdrop=dropout)
        old = model.transformer.wte.weight.detach().clone()
        genre_rows = [self.tokenizer.vocab[f"Genre_{g}"] for g in self.tokenizer.genres]
        new = old[genre_rows].mean(dim=0, keepdim=True).repeat(len(tokenizer), 1)
        for token, index in tokenizer.vocab.items():
            if token in self.tokenizer.vocab:
                new[index] = old[self.tokenizer.vocab[token]]
        model.resize_token_embeddings(len(tokenizer))
        with torch.no_grad():
            model.transformer.wte.weight.copy_(new)
        model.tie_weights()
        model.config.pad_token_id, model.config.bos_token_id = tokenizer.pad_id, tokenizer.bos_id
        model.config.eos_token_id = tokenizer.eos_id
        return model


def _plain(value: object) -> object:
    """JSON-comparable (tuples and lists alike)."""
    return json.loads(json.dumps(value))


def token_map(source: ComposerTokenizer, target: ComposerTokenizer) -> np.ndarray:
    """source id -> target id of the same token."""
    lookup = np.zeros(len(source), dtype=np.int64)
    for token, index in source.vocab.items():
        lookup[index] = target.vocab[token]
    return lookup


def with_lora(model, rank: int, alpha: float, dropout: float, trainable_tokens: list[int]):
    """`model` wrapped with LoRA adapters (peft) on every attention and MLP matrix, the
    embeddings of `trainable_tokens` trainable too; every other weight frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(LORA_TARGETS),
                        fan_in_fan_out=True,  # GPT-2's Conv1D stores its matrices transposed
                        trainable_token_indices={"wte": sorted(trainable_tokens)} if trainable_tokens else None)
    return get_peft_model(model, config)


def merged(model):
    """A LoRA-wrapped model as a plain GPT2LMHeadModel (adapters added into the weights)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


# ---------------------------------------------------------------- what the model folder carries

def carry_over(base: BaseModel, data_dir: Path, out_dir: Path) -> None:
    """The init model's index, stored windows, reference clips and style merged with the
    data's into the new model folder (the data's already copied there by `train`)."""
    from stemforge.symbolic.decoding.style import STYLE_FILE, StyleStats
    from stemforge.symbolic.music.canonical import IndexVersionError, NoveltyIndex
    from stemforge.symbolic.training.window_store import load_window_notes, save_window_notes

    index_dir = out_dir / "index"
    if (base.path / "index" / "index.json").is_file() and (index_dir / "index.json").is_file():
        try:
            merged_index = merge_indexes(NoveltyIndex.load(base.path / "index"), NoveltyIndex.load(index_dir))
            merged_index.save(index_dir)
        except IndexVersionError as error:
            raise FineTuneError(f"--init: {error}") from None
    if (base.path / "index" / "windows.npz").is_file() and (index_dir / "windows.npz").is_file():
        windows = []
        for store, prefix in ((load_window_notes(base.path / "index" / "windows.npz"), "init:"),
                              (load_window_notes(index_dir / "windows.npz"), "")):
            windows += [(prefix + store.sources[int(store.source_ids[i])], int(store.start_bars[i]), _window_tracks(
                store, i)) for i in range(len(store))]
        from stemforge.symbolic.core.ticks import TICKS_PER_BEAT

        save_window_notes(windows, TICKS_PER_BEAT, index_dir / "windows.npz")
    _merge_reference(base.path / "reference_midi", out_dir / "reference_midi")
    if (base.path / STYLE_FILE).is_file() and (out_dir / STYLE_FILE).is_file():
        mine, theirs = StyleStats.load(base.path / STYLE_FILE), StyleStats.load(out_dir / STYLE_FILE)
        merged_style = StyleStats(**{f.name: ({**getattr(mine, f.name), **getattr(theirs, f.name)}
                                              if isinstance(getattr(mine, f.name), dict) else getattr(theirs, f.name))
                                     for f in fields(StyleStats)})
        merged_style.save(out_dir / STYLE_FILE)


def _window_tracks(store, i: int) -> dict:
    from stemforge.symbolic.core.ticks import GRID_PER_BEAT, TICKS_PER_BEAT
    from stemforge.symbolic.music.arrangement import Note

    scale = TICKS_PER_BEAT // GRID_PER_BEAT
    return {role: [Note(int(o) * scale, max(1, int(d)) * scale, int(p), 100) for o, d, p in rows.tolist()]
            for role, rows in store.window(i).items()}


def merge_indexes(base, data):
    """One NoveltyIndex holding both training sets (the init model's sources prefixed "init:")."""
    from stemforge.symbolic.music.canonical import NoveltyIndex

    out = NoveltyIndex(sources=[f"init:{s}" for s in base.sources] + list(data.sources),
                       groups=[f"init:{g}" for g in base.groups] + list(data.groups),
                       source_group=list(base.source_group) + [g + len(base.groups) for g in data.source_group])
    notes = data.notes.copy()
    notes[:, 0] += len(base.sources)
    out._set(np.concatenate([base.digest, data.digest]), np.concatenate([base.source, data.source + len(base.sources)]),
             np.concatenate([base.part, data.part]), np.concatenate([base.bar, data.bar]),
             np.concatenate([base.low, data.low]), np.concatenate([base.notes, notes]))
    return out


def _merge_reference(base: Path, ours: Path) -> None:
    """The init model's FAD reference clips next to the data's (names prefixed init_)."""
    if not (base / "reference.json").is_file():
        return
    ours.mkdir(exist_ok=True)
    rows = json.loads((ours / "reference.json").read_text()) if (ours / "reference.json").is_file() else []
    for row in json.loads((base / "reference.json").read_text()):
        name = f"init_{row['file']}"
        shutil.copy(base / row["file"], ours / name)
        rows.append({**row, "file": name, "source": f"init:{row.get('source', '')}"})
    (ours / "reference.json").write_text(json.dumps(rows, indent=1))


def genre_windows(base: BaseModel, dataset_meta: dict) -> dict[str, int]:
    """Training windows per genre of both training sets."""
    counts = dict(base.meta.get("genre_windows") or {})
    if not counts and (base.path / "dataset.json").is_file():
        genres = json.loads((base.path / "dataset.json").read_text()).get("genres", {})
        counts = {g: int(c.get("train", 0)) for g, c in genres.items()}
    for genre, split in dataset_meta.get("genres", {}).items():
        counts[genre] = counts.get(genre, 0) + int(split.get("train", 0))
    return counts


def write_model_card(out_dir: Path, meta: dict, dataset_meta: dict) -> None:
    """MODEL_CARD.md of a fine-tuned model: what it was tuned from and on, how, and its figures."""
    init = meta["init"]
    genres = dataset_meta.get("genres", {})
    losses = meta.get("fine_tune_losses", {})
    lines = [
        "# stemforge composer, fine-tuned", "",
        f"Fine-tuned from `{init['path']}` (weights sha256 `{init['weights_sha256'][:16]}...`, trained on data "
        f"`{str(init.get('data_sha256'))[:16]}...`) on the data prepared in `{meta['data_dir']}` (data sha256 "
        f"`{meta['data_sha256'][:16]}...`), by `pipeline train DATA_DIR --init ...`.", "",
        "## What it was tuned on", "",
        f"- source folder: `{dataset_meta.get('source')}`; files: {dataset_meta.get('files', {}).get('used')} used, "
        f"{dataset_meta.get('files', {}).get('skipped')} skipped (see the data's prepare_report.md)",
        f"- windows: {dataset_meta.get('windows', {}).get('train')} training, "
        f"{dataset_meta.get('windows', {}).get('valid')} validation (split by source song)",
        "- genres: " + (", ".join(f"{g} ({c.get('train', 0)} training windows)" for g, c in genres.items()) or "none"),
        f"- genres added to the init model's vocabulary: {', '.join(meta['new_genres']) or 'none'}", "",
        "## How", "",
        f"- method: {meta['method']}; {meta['steps']} steps, learning rate {meta['config']['learning_rate']:g} "
        f"(warm-up {meta['config']['warmup_steps']}, cosine to {meta['config']['min_lr']:g}), "
        f"{meta['tokens_trained']:,} tokens ({meta['tokens_trained'] / max(1, meta['steps']):.0f} a step)",
        f"- trainable parameters: {meta['trainable_parameters']:,} of {meta['parameters']:,}",
        f"- time: {meta['train_seconds']:.0f} s ({meta['tokens_per_second']:.0f} tokens/s)", "",
        "## Figures", "",
        "| | validation loss on the tuning data (nats/token) |", "|---|---|",
        f"| the init model, before | {losses.get('before', float('nan')):.3f} |",
        f"| this model, after | {losses.get('after', float('nan')):.3f} |", "",
        "The loss curve is in `loss.png`. How close its pieces come to the tuning data, and what happened to the "
        "other genres, is measured by `python bench/finetune.py` (docs/training.md, \"Fine-tuning\").", "",
        "## Carried over", "",
        "The novelty index and stored windows hold both training sets (the init model's sources prefixed "
        "`init:`), so `pipeline eval --model` catches copies of either; `reference_midi/` holds both sets of "
        "FAD reference clips; `style.json` takes the tuning data's genres from the tuning data and the others "
        "from the init model. The init model's licences and credits (its MODEL_CARD.md) still apply.",
    ]
    (out_dir / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
