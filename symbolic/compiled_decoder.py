"""The whole GPT-2 decode step as one compiled function (numba) over the model's weights.

Why compiled: at batch 1 the composer's 5M-parameter model spends most of each token in the
overhead between small torch calls (dispatch, allocation, views), not in arithmetic; one
function that runs every layer in plain loops removes it (bench/symbolic.py measures this
against `FastDecoder` and `generate()` in the same run). Runs of many tokens at once (a
forced bar, a kept part) are left to torch (`BatchDecoder`), which multiplies them faster,
over the same KV cache. numba came with librosa already (pyproject now names it); its
machine code is cached on disk (`cache=True`, `precompile` at setup), so a process loads it
instead of compiling.

The arithmetic is the same as `FastDecoder`'s, in float32, but summed in another order, so a
logit can differ in its last bits and, rarely, a sampled token with it: a seed is
byte-identical within one decoder, and run.json names the decoder that made a run.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from stemforge.symbolic.decoder import BatchDecoder, FastDecoder, context_overflow

TORCH_FROM_TOKENS = 8  # a row's forced run this long goes through torch (`CompiledDecoder`)


@njit(cache=True, fastmath=True, nogil=True)
def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, out: np.ndarray) -> None:
    count, width = x.shape
    for t in range(count):
        mean = 0.0
        for i in range(width):
            mean += x[t, i]
        mean /= width
        variance = 0.0
        for i in range(width):
            centred = x[t, i] - mean
            variance += centred * centred
        inverse = 1.0 / math.sqrt(variance / width + eps)
        for i in range(width):
            out[t, i] = (x[t, i] - mean) * inverse * weight[i] + bias[i]


@njit(cache=True, fastmath=True, nogil=True)
def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """out = x @ weight + bias, weight (in, out) as GPT-2's Conv1D stores it. The input index is
    the outer loop, so each weight row is read once for the tokens of the call, and tokens go
    in pairs, so each value of a row loaded feeds two outputs: 2.6 ms for a step of 8 tokens
    over the shipped model's 24 matrices against 6.3 ms one token at a time. Not BLAS: numba's
    np.dot (scipy's OpenBLAS) measured 40-90 ms for the same 2-8 token steps on this machine,
    and loops keep the summation order independent of the BLAS build and its threads."""
    count, inputs = x.shape
    outputs = weight.shape[1]
    for t in range(count):
        for j in range(outputs):
            out[t, j] = bias[j]
    first = 0
    while first + 2 <= count:
        out_a, out_b = out[first], out[first + 1]
        for i in range(inputs):
            row = weight[i]
            value_a, value_b = x[first, i], x[first + 1, i]
            for j in range(outputs):
                w = row[j]
                out_a[j] += value_a * w
                out_b[j] += value_b * w
        first += 2
    if first < count:
        target = out[first]
        for i in range(inputs):
            row = weight[i]
            value = x[first, i]
            for j in range(outputs):
                target[j] += value * row[j]


@njit(cache=True, fastmath=True, nogil=True)
def _attend_one(query: np.ndarray, head_keys: np.ndarray, head_values: np.ndarray, last: int, scale: float,
                out: np.ndarray, scores: np.ndarray) -> None:
    """One token's attention over positions 0..last of one head; keys (dim, positions) so
    the scores build up along contiguous memory (a vector loop, no per-position sum)."""
    for s in range(last + 1):
        scores[s] = 0.0
    for d in range(query.shape[0]):
        q = query[d] * scale
        key_row = head_keys[d]
        for s in range(last + 1):
            scores[s] += q * key_row[s]
    highest = -np.inf
    for s in range(last + 1):
        if scores[s] > highest:
            highest = scores[s]
    total = 0.0
    for s in range(last + 1):
        weight = math.exp(scores[s] - highest)
        scores[s] = weight
        total += weight
    out[:] = 0.0
    for s in range(last + 1):
        share = scores[s] / total
        value = head_values[s]
        for d in range(out.shape[0]):
            out[d] += share * value[d]


@njit(cache=True, fastmath=True, nogil=True)
def _attend(qkv: np.ndarray, rows: np.ndarray, positions: np.ndarray, layer: int, keys: np.ndarray,
            values: np.ndarray, scale: float, out: np.ndarray, scores: np.ndarray) -> None:
    """Causal attention of the call's tokens, each over its own row's cache up to its own
    position; their keys and values are written in first. The caches are `BatchDecoder`'s:
    keys (rows, layers, heads, dim, positions), values (rows, layers, heads, positions, dim)."""
    count = qkv.shape[0]
    heads, dim = keys.shape[2], keys.shape[3]
    width = heads * dim
    for t in range(count):
        for h in range(heads):
            for d in range(dim):
                keys[rows[t], layer, h, d, positions[t]] = qkv[t, width + h * dim + d]
                values[rows[t], layer, h, positions[t], d] = qkv[t, 2 * width + h * dim + d]
    for t in range(count):
        for h in range(heads):
            _attend_one(qkv[t, h * dim:(h + 1) * dim], keys[rows[t], layer, h], values[rows[t], layer, h],
                        positions[t], scale, out[t, h * dim:(h + 1) * dim], scores)


@njit(cache=True, fastmath=True, nogil=True)
def _gelu_tanh(x: np.ndarray) -> None:
    root = math.sqrt(2.0 / math.pi)
    count, width = x.shape
    for t in range(count):
        for i in range(width):
            v = x[t, i]
            x[t, i] = 0.5 * v * (1.0 + math.tanh(root * (v + 0.044715 * v * v * v)))


@njit(cache=True, fastmath=True, nogil=True)
def _decode(ids: np.ndarray, rows: np.ndarray, positions: np.ndarray, outputs: np.ndarray,
            wte: np.ndarray, wpe: np.ndarray,
            ln1_w: np.ndarray, ln1_b: np.ndarray, attn_w: np.ndarray, attn_b: np.ndarray,
            proj_w: np.ndarray, proj_b: np.ndarray, ln2_w: np.ndarray, ln2_b: np.ndarray,
            fc_w: np.ndarray, fc_b: np.ndarray, mlp_w: np.ndarray, mlp_b: np.ndarray,
            lnf_w: np.ndarray, lnf_b: np.ndarray, keys: np.ndarray, values: np.ndarray,
            eps: float, scale: float, logits: np.ndarray) -> None:
    """One step for several rows (takes) at once: token t is row rows[t]'s token at
    positions[t]; logits[n] are the next-token logits after token outputs[n]."""
    count = ids.shape[0]
    width = wte.shape[1]
    inner = fc_w.shape[2]
    x = np.empty((count, width), np.float32)
    for t in range(count):
        for i in range(width):
            x[t, i] = wte[ids[t], i] + wpe[positions[t], i]
    normed = np.empty((count, width), np.float32)
    qkv = np.empty((count, 3 * width), np.float32)
    attended = np.empty((count, width), np.float32)
    update = np.empty((count, width), np.float32)
    hidden = np.empty((count, inner), np.float32)
    scores = np.empty(positions.max() + 1, np.float32)
    for layer in range(attn_w.shape[0]):
        _layer_norm(x, ln1_w[layer], ln1_b[layer], eps, normed)
        _linear(normed, attn_w[layer], attn_b[layer], qkv)
        _attend(qkv, rows, positions, layer, keys, values, scale, attended, scores)
        _linear(attended, proj_w[layer], proj_b[layer], update)
        x += update
        _layer_norm(x, ln2_w[layer], ln2_b[layer], eps, normed)
        _linear(normed, fc_w[layer], fc_b[layer], hidden)
        _gelu_tanh(hidden)
        _linear(hidden, mlp_w[layer], mlp_b[layer], update)
        x += update
    lasts = np.empty((outputs.shape[0], width), np.float32)
    _layer_norm(x[outputs], lnf_w, lnf_b, eps, lasts)
    for n in range(outputs.shape[0]):
        for v in range(wte.shape[0]):
            total = 0.0
            for i in range(width):
                total += lasts[n, i] * wte[v, i]
            logits[n, v] = total


class CompiledDecoder:
    """`FastDecoder`'s interface (forward, reset, length, max_tokens) and `BatchDecoder`'s
    (forward_rows, for takes) over the same weights. Steps of a few tokens per row (sampling)
    run through `_decode`; a row's forced run of TORCH_FROM_TOKENS or more (a repeated bar, a
    kept part) goes through `BatchDecoder`, whose batched products are faster for many tokens
    at once (bench/symbolic.py). Both work on one KV cache, `BatchDecoder`'s."""

    def __init__(self, torch_decoder: FastDecoder, rows: int = 1) -> None:
        d = torch_decoder

        def stacked(part: int) -> np.ndarray:
            return np.ascontiguousarray(np.stack([layer[part].numpy() for layer in d.layers]), dtype=np.float32)

        (self.ln1_w, self.ln1_b, self.attn_w, self.attn_b, self.proj_w, self.proj_b, self.ln2_w, self.ln2_b,
         self.fc_w, self.fc_b, self.mlp_w, self.mlp_b) = (stacked(part) for part in range(12))
        self.wte = np.ascontiguousarray(d.wte.numpy())
        self.wpe = np.ascontiguousarray(d.wpe.numpy())
        if not torch.equal(d.lm_head, d.wte):
            raise ValueError("the compiled decoder expects GPT-2's tied embedding and output weights")
        self.lnf_w, self.lnf_b = (np.ascontiguousarray(t.numpy()) for t in d.ln_f)
        self.eps = float(d.eps)
        self.scale = float(d.scale)
        self.max_tokens = d.max_tokens
        self.batch = BatchDecoder(d, rows)
        self.keys, self.values = self.batch.keys.numpy(), self.batch.values.numpy()  # views: one cache
        self.lengths = self.batch.lengths  # one list, advanced by whichever path fed a row

    @property
    def length(self) -> int:
        return self.lengths[0]

    def reset(self) -> None:
        self.lengths[:] = [0] * len(self.lengths)

    def forward(self, token_ids: list[int]) -> torch.Tensor:
        """Feed tokens (row 0); returns the next-token logits after the last one."""
        return self.forward_rows({0: token_ids})[0]

    def forward_rows(self, feeds: dict[int, list[int]]) -> dict[int, torch.Tensor]:
        """row -> tokens to feed; returns row -> next-token logits after its last token."""
        for row, tokens in feeds.items():
            if self.lengths[row] + len(tokens) > self.max_tokens:
                raise context_overflow(self.max_tokens)
        runs = {row: tokens for row, tokens in feeds.items() if len(tokens) >= TORCH_FROM_TOKENS}
        steps = [row for row, tokens in feeds.items() if 0 < len(tokens) < TORCH_FROM_TOKENS]
        result = self.batch.forward(runs) if runs else {}
        if steps:
            ids = np.asarray([token for row in steps for token in feeds[row]], dtype=np.int64)
            token_rows = np.asarray([row for row in steps for _ in feeds[row]], dtype=np.int64)
            positions = np.concatenate([np.arange(self.lengths[row], self.lengths[row] + len(feeds[row]))
                                        for row in steps]).astype(np.int64)
            outputs = np.cumsum([len(feeds[row]) for row in steps]).astype(np.int64) - 1
            logits = np.empty((len(steps), self.wte.shape[0]), np.float32)
            _decode(ids, token_rows, positions, outputs, self.wte, self.wpe,
                    self.ln1_w, self.ln1_b, self.attn_w, self.attn_b, self.proj_w, self.proj_b, self.ln2_w,
                    self.ln2_b, self.fc_w, self.fc_b, self.mlp_w, self.mlp_b, self.lnf_w, self.lnf_b, self.keys,
                    self.values, self.eps, self.scale, logits)
            for n, row in enumerate(steps):
                self.lengths[row] += len(feeds[row])
                result[row] = torch.from_numpy(logits[n])
        return result


def precompile() -> None:
    """Compile the decoding functions once, so the first run on a machine does not pay it
    (scripts/setup.sh calls this): numba keeps the machine code in its cache."""
    from stemforge.symbolic.model import load_composer
    from stemforge.symbolic.sampling import Sampler

    Sampler(load_composer(None)).warm()
