"""The compiled decoder's step as numba functions: one call runs every layer of a GPT-2 over
the tokens of a step (one or a few per row) in plain loops, and writes the next-token logits.

These are the source of both forms `symbolic.kernels` loads: compiled ahead of time at setup
(numba.pycc, no numba at run time) or just in time (numba's JIT with its disk cache).
Why loops and not BLAS, and why compiled at all: see `_linear` and symbolic/compiled_decoder.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


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
def _linear(x: np.ndarray, weight: np.ndarray, scale: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """out = x @ weight + bias, weight (in, out) as GPT-2's Conv1D stores it; or, for int8
    weights with a scale per output (`scale` not empty), out = (x @ weight) * scale + bias: 5 MB
    of weights instead of 19, which stay in the CPU's cache between steps where float32 streams
    from memory every step (the int8 decoder, `compiled_decoder.Int8Matrices`). The input index is
    the outer loop, so each weight row is read once for the tokens of the call, and tokens go
    in fours (then a pair, then one), so each value of a row loaded feeds four outputs: a step
    of 4 takes costs 1.8 ms over the shipped model's 24 matrices against 2.4 ms in pairs and
    0.8-1.1 ms for one token. Each token's sum runs over the inputs in the same order however
    the tokens are grouped, so a take decodes in a batch exactly as it does alone. Not BLAS:
    numba's np.dot (scipy's OpenBLAS) measured 40-90 ms for the same 2-8 token steps on this
    machine, and loops keep the summation order independent of the BLAS build and its
    threads. Five tokens or more in fours measured no faster than BLAS in eights or more."""
    count, inputs = x.shape
    outputs = weight.shape[1]
    scaled = scale.shape[0] > 0
    for t in range(count):
        for j in range(outputs):
            out[t, j] = 0.0 if scaled else bias[j]
    first = 0
    while first + 4 <= count:
        out_a, out_b, out_c, out_d = out[first], out[first + 1], out[first + 2], out[first + 3]
        for i in range(inputs):
            row = weight[i]
            value_a, value_b, value_c, value_d = x[first, i], x[first + 1, i], x[first + 2, i], x[first + 3, i]
            for j in range(outputs):
                w = np.float32(row[j])
                out_a[j] += value_a * w
                out_b[j] += value_b * w
                out_c[j] += value_c * w
                out_d[j] += value_d * w
        first += 4
    if first + 2 <= count:
        out_a, out_b = out[first], out[first + 1]
        for i in range(inputs):
            row = weight[i]
            value_a, value_b = x[first, i], x[first + 1, i]
            for j in range(outputs):
                w = np.float32(row[j])
                out_a[j] += value_a * w
                out_b[j] += value_b * w
        first += 2
    if first < count:
        target = out[first]
        for i in range(inputs):
            row = weight[i]
            value = x[first, i]
            for j in range(outputs):
                target[j] += value * np.float32(row[j])
    if scaled:
        for t in range(count):
            for j in range(outputs):
                out[t, j] = out[t, j] * scale[j] + bias[j]


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
    position; their keys and values are written in first. The caches (`CompiledDecoder`'s):
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
def decode(ids: np.ndarray, rows: np.ndarray, positions: np.ndarray, outputs: np.ndarray,
            wte: np.ndarray, wpe: np.ndarray,
            ln1_w: np.ndarray, ln1_b: np.ndarray, attn_w: np.ndarray, attn_s: np.ndarray, attn_b: np.ndarray,
            proj_w: np.ndarray, proj_s: np.ndarray, proj_b: np.ndarray, ln2_w: np.ndarray, ln2_b: np.ndarray,
            fc_w: np.ndarray, fc_s: np.ndarray, fc_b: np.ndarray, mlp_w: np.ndarray, mlp_s: np.ndarray,
            mlp_b: np.ndarray, lnf_w: np.ndarray, lnf_b: np.ndarray, keys: np.ndarray, values: np.ndarray,
            eps: float, scale: float, logits: np.ndarray) -> None:
    """One step for several rows (takes) at once: token t is row rows[t]'s token at
    positions[t]; logits[n] are the next-token logits after token outputs[n]. The four matrices
    of a layer are float32 with empty scales (`*_s` of shape (layers, 0)) or int8 with a scale
    per output (the int8 decoder): one source, compiled for each."""
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
        _linear(normed, attn_w[layer], attn_s[layer], attn_b[layer], qkv)
        _attend(qkv, rows, positions, layer, keys, values, scale, attended, scores)
        _linear(attended, proj_w[layer], proj_s[layer], proj_b[layer], update)
        x += update
        _layer_norm(x, ln2_w[layer], ln2_b[layer], eps, normed)
        _linear(normed, fc_w[layer], fc_s[layer], fc_b[layer], hidden)
        _gelu_tanh(hidden)
        _linear(hidden, mlp_w[layer], mlp_s[layer], mlp_b[layer], update)
        x += update
    lasts = np.empty((outputs.shape[0], width), np.float32)
    _layer_norm(x[outputs], lnf_w, lnf_b, eps, lasts)
    _logits(lasts, wte, logits)


@njit(cache=True, fastmath=True, nogil=True)
def _logits(lasts: np.ndarray, wte: np.ndarray, logits: np.ndarray) -> None:
    """logits = lasts @ wte.T (GPT-2's tied output weights). Its own function, like every loop
    of `decode` that sums: numba.pycc compiles the exported function itself without fastmath
    but each function it calls with its own flags, so the ahead-of-time and JIT forms sum in
    the same order (symbolic/kernels.py)."""
    for n in range(lasts.shape[0]):
        for v in range(wte.shape[0]):
            total = 0.0
            for i in range(lasts.shape[1]):
                total += lasts[n, i] * wte[v, i]
            logits[n, v] = total
