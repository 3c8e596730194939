"""The whole GPT-2 decode step as compiled code (numba) over the model's weights, without torch.

Why compiled: at batch 1 the composer's 5M-parameter model spends most of each token in the
overhead between small torch calls (dispatch, allocation, views), not in arithmetic; one
function that runs every layer in plain loops removes it (bench/symbolic.py measures this
against `FastDecoder` and `generate()` in the same run). Runs of many tokens at once (a
forced bar, a kept part) go through the same step, whose products take tokens eight at a time
(decode_kernels._linear): as fast as numpy's BLAS for them, and unlike BLAS the same sums
whatever else the step holds, so the takes' runs and steps share one call. The weights are
read from the model's safetensors file as numpy arrays, so composing does not import torch: a
cold `pipeline run` skips its 1.5-2 s import (bench/cold_start.py). The compiled step is numba
code (symbolic/decoding/decode_kernels.py), which setup compiles ahead of time so that a run does not
import numba either (symbolic/decoding/kernels.py says how, and what happens where it cannot).

The arithmetic is the same as `FastDecoder`'s, in float32, but summed in another order, so a
logit can differ in its last bits and, rarely, a sampled token with it: a seed is
byte-identical within one decoder, and run.json names the decoder that made a run. The int8
decoder (the default) is the same step over the layers' matrices rounded to int8 with a scale
per output column (`Int8Matrices`), 5 MB of weights, and an int8 KV cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.errors import context_overflow
from stemforge.symbolic.decoding.kernels import DECODE_ARGUMENTS, kernels
from stemforge.symbolic.decoding.layout import GPT2_LAYER_PARTS, GROUP, TILE, DecoderShape


@dataclass(frozen=True)
class DecoderWeights:
    """A GPT-2 composer's weights as float32 numpy arrays, each layer's parts stacked over the
    layers (ln1_w is (layers, width), attn_w (layers, width, 3 * width), ...)."""

    wte: np.ndarray
    wpe: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    attn_w: np.ndarray
    attn_b: np.ndarray
    proj_w: np.ndarray
    proj_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray
    fc_w: np.ndarray
    fc_b: np.ndarray
    mlp_w: np.ndarray
    mlp_b: np.ndarray
    lnf_w: np.ndarray
    lnf_b: np.ndarray
    shape: DecoderShape

    def __post_init__(self) -> None:
        # the kernels compiled ahead of time read the memory as it is (kernels._checked)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and (value.dtype != np.float32 or not value.flags.c_contiguous):
                raise TypeError(f"DecoderWeights.{name}: a C-contiguous float32 array is needed, got {value.dtype}")

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.wte.shape[1] // self.shape.n_head)

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], shape: DecoderShape) -> DecoderWeights:
        """From a transformers GPT2LMHeadModel's state dict (arrays, `transformer.` names)."""

        def array(name: str) -> np.ndarray:
            return np.ascontiguousarray(tensors[f"transformer.{name}"], dtype=np.float32)

        wte = array("wte.weight")
        head = tensors.get("lm_head.weight")
        if head is not None and not np.array_equal(head, wte):
            raise ValueError("the compiled decoder expects GPT-2's tied embedding and output weights")
        stacked = [np.ascontiguousarray(np.stack([array(f"h.{i}.{part}") for i in range(shape.n_layer)]))
                   for part in GPT2_LAYER_PARTS]
        return cls(wte, array("wpe.weight"), *stacked, array("ln_f.weight"), array("ln_f.bias"), shape)

    @classmethod
    def from_directory(cls, directory: Path) -> DecoderWeights:
        """A model directory's model.safetensors and config.json, read without torch."""
        from safetensors.numpy import load_file

        return cls.from_tensors(load_file(Path(directory) / "model.safetensors"), DecoderShape.of(directory))


@dataclass(frozen=True)
class LayerMatrices:
    """A layer's four matrices (attn, proj, fc, mlp; each stacked over the layers) and a scale
    per output column of each (empty where the matrices are float32)."""

    attn_w: np.ndarray
    attn_s: np.ndarray
    proj_w: np.ndarray
    proj_s: np.ndarray
    fc_w: np.ndarray
    fc_s: np.ndarray
    mlp_w: np.ndarray
    mlp_s: np.ndarray


@dataclass(frozen=True)
class Int8Matrices(LayerMatrices):
    """A layer's four matrices (attn, proj, fc, mlp) as int8 with one float32 scale per output
    column (symmetric: the column's largest magnitude maps to 127), for the int8 decoder: every
    step reads 5 MB of them instead of 19. Made from the float32 weights when a model loads
    (`of`), the same bytes on every machine (IEEE division and round-half-even)."""

    @classmethod
    def of(cls, weights: DecoderWeights) -> tuple[Int8Matrices, DecoderWeights]:
        """The int8 matrices of `weights`, and `weights` with those matrices as float32 again
        (int8 x scale): the numbers the int8 decoder computes with."""
        parts: dict[str, np.ndarray] = {}
        rounded: dict[str, np.ndarray] = {}
        for name in MATRICES:
            matrix = getattr(weights, name)  # (layers, in, out)
            scale = np.abs(matrix).max(axis=1) / np.float32(127)
            scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
            quantized = np.clip(np.rint(matrix / scale[:, None, :]), -127, 127).astype(np.int8)
            parts[name], parts[name[:-1] + "s"] = np.ascontiguousarray(quantized), np.ascontiguousarray(scale)
            rounded[name] = np.ascontiguousarray(quantized.astype(np.float32) * scale[:, None, :])
        return cls(**parts), replace(weights, **rounded)


MATRICES = ("attn_w", "proj_w", "fc_w", "mlp_w")
CALL_INPUTS = ("ids", "rows", "positions", "outputs")  # what each call of the step brings (then logits, its output)


def tiled(matrices: np.ndarray) -> np.ndarray:
    """(layers, in, out) matrices as the step's products read them: (layers, out / TILE, in,
    TILE), each tile TILE output columns of every input, its outputs padded with zero columns to
    a whole number of GROUP tiles (decode_kernels._linear)."""
    layers, inputs, outputs = matrices.shape
    padded = -(-outputs // (GROUP * TILE)) * GROUP * TILE
    full = np.zeros((layers, inputs, padded), matrices.dtype)
    full[:, :, :outputs] = matrices
    return np.ascontiguousarray(full.reshape(layers, inputs, padded // TILE, TILE).transpose(0, 2, 1, 3))


@dataclass(frozen=True)
class StepMatrices(LayerMatrices):
    """A layer's four matrices as the compiled step reads them (`tiled`): float32 with empty
    scales (the compiled decoder) or int8 with a scale per output column (the int8 decoder,
    `Int8Matrices`). Made once per model and decoder (`Sampler` keeps them)."""

    @classmethod
    def of(cls, weights: DecoderWeights, int8: bool = False) -> StepMatrices:
        if int8:
            source, _ = Int8Matrices.of(weights)
            scales = {name: getattr(source, name[:-1] + "s") for name in MATRICES}
        else:
            source = weights
            no_scale = np.zeros((weights.shape.n_layer, 0), np.float32)  # decode_kernels._linear: float32
            scales = dict.fromkeys(MATRICES, no_scale)
        parts = {}
        for name in MATRICES:
            parts[name], parts[name[:-1] + "s"] = tiled(getattr(source, name)), scales[name]
        return cls(**parts)

    @property
    def int8(self) -> bool:
        return self.attn_w.dtype == np.int8


class CompiledDecoder:
    """Decodes one sequence (`forward`, `reset`, `length`) or several at once (`forward_rows`,
    for takes) over `DecoderWeights`, with a preallocated KV cache, tiled as the step reads it
    (decode_kernels._attend): keys (rows, layers, heads, positions / TILE, dim, TILE), values
    (rows, layers, heads, dim / TILE, positions, TILE). Every call is one compiled
    step (`decode_kernels.decode`) over all the rows' tokens, a sampled token or a forced run
    alike, and each row comes out as it would alone.

    The cache is float32 with float32 matrices (the compiled decoder) and int8 with int8
    matrices (the int8 decoder, the default): each key and value vector of a head rounded to 255
    levels of its largest magnitude, with that scale kept beside it. A step at position ~1500
    read 18 MB of float32 keys and values, more than its 5 MB of int8 weights; in int8 it reads
    4.6 MB (docs/benchmarks.md). Its logits stay within ~0.05% of their spread of a float32
    cache's (median), as close as the int8 weights' own; the quality bench measured the pieces
    against real music (the model card)."""

    def __init__(self, weights: DecoderWeights, rows: int = 1, matrices: StepMatrices | None = None) -> None:
        """`matrices`: the step's matrices (`StepMatrices.of`), float32 by default."""
        self.weights = weights
        self.matrices = matrices if matrices is not None else StepMatrices.of(weights)
        layers, heads = weights.shape.n_layer, weights.shape.n_head
        dim = weights.wte.shape[1] // heads
        padded = -(-dim // TILE) * TILE
        self.max_tokens = weights.shape.n_positions
        positions = -(-self.max_tokens // (GROUP * TILE)) * GROUP * TILE  # the scores take whole groups of tiles
        cache = np.int8 if self.matrices.int8 else np.float32
        self.keys = np.zeros((rows, layers, heads, positions // TILE, padded, TILE), cache)
        self.values = np.zeros((rows, layers, heads, padded // TILE, positions, TILE), cache)
        # an int8 cache's scale per (row, layer, head, position); empty for float32 (decode_kernels._store)
        scaled = positions if self.matrices.int8 else 0
        self.key_scales = np.zeros((rows, layers, heads, scaled), np.float32)
        self.value_scales = np.zeros((rows, layers, heads, scaled), np.float32)
        self.lengths = [0] * rows
        self.kernels = kernels()
        self._bound = self.step_arguments()

    @classmethod
    def from_directory(cls, directory: Path, rows: int = 1) -> CompiledDecoder:
        return cls(DecoderWeights.from_directory(directory), rows)

    @property
    def length(self) -> int:
        return self.lengths[0]

    def reset(self) -> None:
        self.lengths[:] = [0] * len(self.lengths)

    def forward(self, token_ids: list[int]) -> np.ndarray:
        """Feed tokens (row 0); returns the next-token logits after the last one."""
        return self.forward_rows({0: token_ids})[0]

    def forward_rows(self, feeds: dict[int, list[int]]) -> dict[int, np.ndarray]:
        """row -> tokens to feed; returns row -> next-token logits after its last token. All the
        rows' tokens go through one step, so the weights are read once for them all."""
        for row, tokens in feeds.items():
            if self.lengths[row] + len(tokens) > self.max_tokens:
                raise context_overflow(self.max_tokens)
        fed = [(row, tokens) for row, tokens in feeds.items() if tokens]
        if not fed:
            return {}
        counts = np.fromiter((len(tokens) for _, tokens in fed), np.int64, len(fed))
        total = int(counts.sum())
        ids = np.fromiter((token for _, tokens in fed for token in tokens), np.int64, total)
        firsts = np.repeat(np.cumsum(counts) - counts, counts)  # where each token's row starts in the call
        starts = np.repeat(np.fromiter((self.lengths[row] for row, _ in fed), np.int64, len(fed)), counts)
        positions = starts + np.arange(total, dtype=np.int64) - firsts
        token_rows = np.repeat(np.fromiter((row for row, _ in fed), np.int64, len(fed)), counts)
        logits = self._decode(ids, token_rows, positions, np.cumsum(counts) - 1)
        for row, tokens in fed:
            self.lengths[row] += len(tokens)
        return {row: logits[n] for n, (row, _) in enumerate(fed)}

    def step_arguments(self) -> tuple:
        """The step's arguments that stay the same from call to call (the weights, the step's
        matrices, the KV cache and its scales, eps, scale), bound by name in the order of
        `kernels.DECODE_ARGUMENTS`, between a call's tokens (the first four) and its logits
        (the last). Made once per decoder: a step at batch 1 takes well under a millisecond, so
        naming 31 arguments on every call would show."""
        named = {field.name: getattr(self.weights, field.name) for field in fields(self.weights)}
        named.update((field.name, getattr(self.matrices, field.name)) for field in fields(self.matrices))
        named.update(keys=self.keys, values=self.values, key_scales=self.key_scales, value_scales=self.value_scales,
                     eps=self.weights.shape.layer_norm_epsilon, scale=self.weights.scale)
        return tuple(named[name] for name in DECODE_ARGUMENTS[len(CALL_INPUTS):-1])

    def _decode(self, ids: np.ndarray, rows: np.ndarray, positions: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        logits = np.empty((len(outputs), self.weights.wte.shape[0]), np.float32)
        decode = self.kernels.decode_int8 if self.matrices.int8 else self.kernels.decode
        decode(ids, rows, positions, outputs, *self._bound, logits)  # the one call of the compiled step
        return logits
