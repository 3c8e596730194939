"""The composer model: `transformers.GPT2LMHeadModel` built from the YAML config, saved in a
model directory next to its tokenizer, training config and the hashes of the data it saw.

This module imports neither torch nor miditok: the service's main process reads a model's
metadata with `read_model_info` and never composes. Composing reads the weights as numpy
arrays (`Composer.decoder_weights`, the compiled decoder); torch loads only where the torch
decoder is asked for (`Composer.decoder`, symbolic/decoding/decoder.py) or a model trains.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.hashing import file_sha256
from stemforge.symbolic.decoding.layout import DecoderShape

if TYPE_CHECKING:
    from stemforge.symbolic.decoding.compiled_decoder import DecoderWeights
    from stemforge.symbolic.decoding.decoder import FastDecoder
    from stemforge.symbolic.music.tokenizer import ComposerTokenizer

# transformers is imported inside functions: it costs seconds at start-up and composing
# only needs the weights (FastDecoder), which keeps `pipeline run` interactive.

MODEL_KIND = "stemforge-composer"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"


class ModelDirError(UserError):
    pass


def build_gpt2(vocab_size: int, n_layer: int, n_head: int, n_embd: int, n_positions: int,
               dropout: float, pad_token_id: int, bos_token_id: int, eos_token_id: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
        n_positions=n_positions, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
    )
    return GPT2LMHeadModel(config)


@dataclass
class Composer:
    """A loaded model directory. `model` (the transformers GPT2LMHeadModel) is built on
    first use; sampling reads the weights directly."""

    path: Path
    tokenizer: ComposerTokenizer
    meta: dict
    _model: object = None

    @property
    def model(self):
        if self._model is None:
            from transformers import GPT2LMHeadModel

            self._model = GPT2LMHeadModel.from_pretrained(self.path, local_files_only=True).eval()
        return self._model

    def decoder(self) -> FastDecoder:
        from stemforge.symbolic.decoding.decoder import FastDecoder

        if self._model is not None:
            return FastDecoder.from_model(self._model)
        return FastDecoder.from_directory(self.path)

    def decoder_weights(self) -> DecoderWeights:
        """The weights as numpy arrays for the compiled decoder (torch only if the model is
        already loaded in torch)."""
        from stemforge.symbolic.decoding.compiled_decoder import DecoderWeights

        if self._model is not None:  # a model built in this process may have no directory yet
            tensors = {name: t.detach().float().numpy() for name, t in self._model.state_dict().items()}
            return DecoderWeights.from_tensors(tensors, self.shape)
        return DecoderWeights.from_directory(self.path)

    @property
    def shape(self) -> DecoderShape:
        """The loaded model's, else its directory's config.json."""
        return DecoderShape.of_config(self._model.config) if self._model is not None else DecoderShape.of(self.path)

    @property
    def genres(self) -> list[str]:
        return self.tokenizer.genres

    @property
    def genre_windows(self) -> dict[str, int] | None:
        """Training windows per genre (stemforge.json, else the model's dataset.json), or None
        for a model that says neither."""
        if "genre_windows" in self.meta:
            return {g: int(n) for g, n in self.meta["genre_windows"].items()}
        dataset = self.path / "dataset.json"
        if dataset.is_file():
            genres = json.loads(dataset.read_text()).get("genres", {})
            return {g: int(counts.get("train", 0)) for g, counts in genres.items()}
        return None

    @property
    def style(self):
        """The per-genre onset statistics of the training data (`symbolic.decoding.style`), or None
        for a model trained before models carried them."""
        from stemforge.symbolic.decoding.style import STYLE_FILE, StyleStats

        path = self.path / STYLE_FILE
        if "_style" not in self.__dict__:
            self.__dict__["_style"] = StyleStats.load(path) if path.is_file() else None
        return self.__dict__["_style"]

    @property
    def max_bars(self) -> int:
        return int(self.meta.get("max_bars", self.tokenizer.spec.max_bars))

    @property
    def weights_sha256(self) -> str:
        return self.meta.get("weights_sha256") or file_sha256(self.path / "model.safetensors")


def save_composer(directory: Path, model, tokenizer: ComposerTokenizer, meta: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save(directory / "tokenizer.json")
    meta = {"kind": MODEL_KIND, **meta, "weights_sha256": file_sha256(directory / "model.safetensors")}
    (directory / "stemforge.json").write_text(json.dumps(meta, indent=1))


def is_model_dir(directory: Path) -> bool:
    return (directory / "stemforge.json").is_file() and (directory / "model.safetensors").is_file()


@dataclass(frozen=True)
class ModelInfo:
    """What a model directory says about itself without loading anything heavy: its genres and
    reach (from tokenizer.json), its metadata (stemforge.json)."""

    path: Path
    meta: dict
    genres: list[str]
    max_bars: int


def read_model_info(directory: Path | None = None) -> ModelInfo:
    """Check a model directory (the shipped default when None) and read its metadata."""
    directory = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
    if not directory.is_dir():
        raise ModelDirError(f"--model: {directory} does not exist; train one with `pipeline train`")
    if not is_model_dir(directory):
        raise ModelDirError(
            f"--model: {directory} is not a stemforge model directory (no stemforge.json/model.safetensors)"
        )
    meta = json.loads((directory / "stemforge.json").read_text())
    if meta.get("kind") != MODEL_KIND:
        raise ModelDirError(f"--model: {directory}/stemforge.json is not a composer model")
    spec = json.loads((directory / "tokenizer.json").read_text())
    return ModelInfo(directory, meta, list(spec.get("genres", [])), int(meta.get("max_bars", spec.get("max_bars", 16))))


def load_composer(directory: Path | None = None) -> Composer:
    """Load a model directory (the shipped default when None) with one call."""
    from stemforge.symbolic.music.tokenizer import ComposerTokenizer

    info = read_model_info(directory)
    return Composer(info.path, ComposerTokenizer.load(info.path / "tokenizer.json"), info.meta)


def cosine_lr(step: int, *, learning_rate: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * progress))
