"""The whole GPT-2 decode step as compiled code (numba) over the model's weights, without torch.

Why compiled: at batch 1 the composer's 5M-parameter model spends most of each token in the
overhead between small torch calls (dispatch, allocation, views), not in arithmetic; one
function that runs every layer in plain loops removes it (bench/symbolic.py measures this
against `FastDecoder` and `generate()` in the same run). Runs of many tokens at once (a
forced bar, a kept part) multiply through numpy's BLAS instead, which is faster for them,
with the same compiled attention over the same KV cache. The weights are read from the
model's safetensors file as numpy arrays, so composing does not import torch: a cold
`pipeline run` skips its 1.5-2 s import (bench/cold_start.py). The compiled step is numba
code (symbolic/decode_kernels.py), which setup compiles ahead of time so that a run does not
import numba either (symbolic/kernels.py says how, and what happens where it cannot).

The arithmetic is the same as `FastDecoder`'s, in float32, but summed in another order, so a
logit can differ in its last bits and, rarely, a sampled token with it: a seed is
byte-identical within one decoder, and run.json names the decoder that made a run. The int8
decoder (the default) is the same step over the layers' matrices rounded to int8 with a scale
per output column (`Int8Matrices`): 5 MB of weights that stay in the CPU's cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stemforge.symbolic.errors import context_overflow
from stemforge.symbolic.kernels import kernels
from stemforge.symbolic.model import GPT2_LAYER_PARTS, DecoderShape

BLAS_FROM_TOKENS = 8  # a row's run this long multiplies through BLAS (`CompiledDecoder`)


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
class Int8Matrices:
    """A layer's four matrices (attn, proj, fc, mlp) as int8 with one float32 scale per output
    column (symmetric: the column's largest magnitude maps to 127), for the int8 decoder: 5 MB
    instead of 19, so a step's weights stay in the CPU's cache instead of streaming from memory
    (a piece composes in 35-45% less time: docs/benchmarks.md). Made from the float32 weights when a
    model loads (`of`), the same bytes on every machine (IEEE division and round-half-even)."""

    attn_w: np.ndarray
    attn_s: np.ndarray
    proj_w: np.ndarray
    proj_s: np.ndarray
    fc_w: np.ndarray
    fc_s: np.ndarray
    mlp_w: np.ndarray
    mlp_s: np.ndarray

    @classmethod
    def of(cls, weights: DecoderWeights) -> tuple[Int8Matrices, DecoderWeights]:
        """The int8 matrices of `weights`, and `weights` with those matrices as float32 again
        (int8 x scale), which a run of many tokens multiplies through BLAS: both paths then
        compute with the same numbers."""
        parts: dict[str, np.ndarray] = {}
        rounded: dict[str, np.ndarray] = {}
        for name in ("attn_w", "proj_w", "fc_w", "mlp_w"):
            matrix = getattr(weights, name)  # (layers, in, out)
            scale = np.abs(matrix).max(axis=1) / np.float32(127)
            scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
            quantized = np.clip(np.rint(matrix / scale[:, None, :]), -127, 127).astype(np.int8)
            parts[name], parts[name[:-1] + "s"] = np.ascontiguousarray(quantized), np.ascontiguousarray(scale)
            rounded[name] = np.ascontiguousarray(quantized.astype(np.float32) * scale[:, None, :])
        return cls(**parts), replace(weights, **rounded)

    @property
    def layer_matrices(self) -> tuple[np.ndarray, ...]:
        return (self.attn_w, self.attn_s, self.proj_w, self.proj_s, self.fc_w, self.fc_s, self.mlp_w, self.mlp_s)


class CompiledDecoder:
    """Decodes one sequence (`forward`, `reset`, `length`) or several at once (`forward_rows`,
    for takes) over `DecoderWeights`, with a preallocated KV cache: keys (rows, layers,
    heads, dim, positions), values (rows, layers, heads, positions, dim). Steps of a few
    tokens per row (sampling) run through the compiled step (`decode_kernels.decode`); a
    row's run of BLAS_FROM_TOKENS or more (a repeated bar, a kept part) multiplies through
    numpy's BLAS, one thread (the caller limits it: `Sampler`), faster for many tokens at once
    (bench/symbolic.py)."""

    def __init__(self, weights: DecoderWeights, rows: int = 1, int8: Int8Matrices | None = None) -> None:
        """`int8`: the step multiplies through these int8 matrices (the int8 decoder; `weights`
        then holds them as float32 again, `Int8Matrices.of`), else through `weights`' own."""
        self.weights = weights
        self.int8 = int8
        layers, heads = weights.shape.n_layer, weights.shape.n_head
        if int8 is None:  # float32 matrices go with empty scales (decode_kernels._linear)
            no_scale = np.zeros((layers, 0), np.float32)
            self._matrices = (weights.attn_w, no_scale, weights.proj_w, no_scale, weights.fc_w, no_scale,
                              weights.mlp_w, no_scale)
        else:
            self._matrices = int8.layer_matrices
        dim = weights.wte.shape[1] // heads
        self.max_tokens = weights.shape.n_positions
        self.keys = np.zeros((rows, layers, heads, dim, self.max_tokens), np.float32)
        self.values = np.zeros((rows, layers, heads, self.max_tokens, dim), np.float32)
        self.lengths = [0] * rows
        self.kernels = kernels()

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
        """row -> tokens to feed; returns row -> next-token logits after its last token."""
        for row, tokens in feeds.items():
            if self.lengths[row] + len(tokens) > self.max_tokens:
                raise context_overflow(self.max_tokens)
        # each run alone, so a take's products have the shape they have when it is composed alone
        groups = [([row], self._blas) for row, tokens in feeds.items() if len(tokens) >= BLAS_FROM_TOKENS]
        steps = [row for row, tokens in feeds.items() if 0 < len(tokens) < BLAS_FROM_TOKENS]
        if steps:
            groups.append((steps, self._compiled))
        result: dict[int, np.ndarray] = {}
        for group, decode in groups:
            ids = np.asarray([token for row in group for token in feeds[row]], dtype=np.int64)
            token_rows = np.asarray([row for row in group for _ in feeds[row]], dtype=np.int64)
            positions = np.concatenate([np.arange(self.lengths[row], self.lengths[row] + len(feeds[row]))
                                        for row in group]).astype(np.int64)
            outputs = np.cumsum([len(feeds[row]) for row in group]).astype(np.int64) - 1
            logits = decode(ids, token_rows, positions, outputs)
            for n, row in enumerate(group):
                self.lengths[row] += len(feeds[row])
                result[row] = logits[n]
        return result

    def _compiled(self, ids: np.ndarray, rows: np.ndarray, positions: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        w = self.weights
        logits = np.empty((len(outputs), w.wte.shape[0]), np.float32)
        decode = self.kernels.decode if self.int8 is None else self.kernels.decode_int8
        attn_w, attn_s, proj_w, proj_s, fc_w, fc_s, mlp_w, mlp_s = self._matrices
        decode(ids, rows, positions, outputs, w.wte, w.wpe, w.ln1_w, w.ln1_b, attn_w, attn_s, w.attn_b, proj_w, proj_s,
               w.proj_b, w.ln2_w, w.ln2_b, fc_w, fc_s, w.fc_b, mlp_w, mlp_s, w.mlp_b, w.lnf_w, w.lnf_b, self.keys,
               self.values, w.shape.layer_norm_epsilon, w.scale, logits)
        return logits

    def _blas(self, ids: np.ndarray, rows: np.ndarray, positions: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """One row's run of tokens through the compiled step's layers in numpy: the products through
        BLAS, the rest as array operations (no compiled function: each one a cold process
        loads from numba's cache costs it about 0.15 s)."""
        w, eps = self.weights, self.weights.shape.layer_norm_epsilon
        row, start, count = int(rows[0]), int(positions[0]), len(ids)
        end = start + count
        heads, dim = self.keys.shape[2], self.keys.shape[3]
        width = heads * dim
        # token i sees positions up to start + i
        hidden_future = np.arange(end)[None, :] > (start + np.arange(count))[:, None]
        x = w.wte[ids] + w.wpe[positions]
        for layer in range(w.attn_w.shape[0]):
            qkv = _numpy_layer_norm(x, w.ln1_w[layer], w.ln1_b[layer], eps) @ w.attn_w[layer] + w.attn_b[layer]
            query, key, value = (qkv[:, part * width:(part + 1) * width].reshape(count, heads, dim)
                                 for part in range(3))
            self.keys[row, layer, :, :, start:end] = key.transpose(1, 2, 0)
            self.values[row, layer, :, start:end] = value.transpose(1, 0, 2)
            scores = (query.transpose(1, 0, 2) * np.float32(w.scale)) @ self.keys[row, layer, :, :, :end]
            scores[:, hidden_future] = -np.inf
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            attended = (scores @ self.values[row, layer, :, :end]).transpose(1, 0, 2).reshape(count, width)
            x = x + (attended @ w.proj_w[layer] + w.proj_b[layer])
            hidden = _numpy_layer_norm(x, w.ln2_w[layer], w.ln2_b[layer], eps) @ w.fc_w[layer] + w.fc_b[layer]
            x = x + (_numpy_gelu_tanh(hidden) @ w.mlp_w[layer] + w.mlp_b[layer])
        return _numpy_layer_norm(x[outputs], w.lnf_w, w.lnf_b, eps) @ w.wte.T


def _numpy_layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + np.float32(eps)) * weight + bias


def _numpy_gelu_tanh(x: np.ndarray) -> np.ndarray:
    root = np.float32(math.sqrt(2.0 / math.pi))
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(root * (x + np.float32(0.044715) * x * x * x)))


def precompile() -> None:
    """Build what decoding runs on, once per machine (scripts/setup.sh calls this): the
    kernels compiled ahead of time (`kernels.build_ahead_of_time`), then numba's JIT cache of
    the same kernels, the fallback where the former cannot be built or loaded."""
    from stemforge.symbolic.decode_kernels import decode
    from stemforge.symbolic.draw import draw_token
    from stemforge.symbolic.kernels import BuildError, Kernels, build_ahead_of_time
    from stemforge.symbolic.model import DEFAULT_MODEL_DIR

    try:
        build_ahead_of_time()
    except BuildError as error:
        print(f"warning: {error}")
    weights = DecoderWeights.from_directory(DEFAULT_MODEL_DIR)
    int8, rounded = Int8Matrices.of(weights)
    for decoder in (CompiledDecoder(weights), CompiledDecoder(rounded, int8=int8)):
        decoder.kernels = Kernels(decode, decode, draw_token, ahead_of_time=False)
        logits = decoder.forward([0])
    draw_token(logits, np.ones(len(logits), np.bool_), 1.0, 0, 0.95, 0.5)
