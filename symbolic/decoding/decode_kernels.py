"""The compiled decoder's step as numba functions: one call runs every layer of a GPT-2 over
all the tokens fed in a step (a sampled token per take, a forced run of many tokens, or both)
in plain loops, and writes the next-token logits.

These are the source of both forms `symbolic.decoding.kernels` loads: compiled ahead of time at setup
(numba.pycc, no numba at run time) or just in time (numba's JIT with its disk cache).

Two promises hold whatever a call holds: a token's numbers do not depend on the other tokens
of the call (a take decoded beside others, or a forced run beside other takes' steps, gives the
logits it gives alone), and the ahead-of-time and JIT forms give the same bits. The products
keep every sum in the order of its inputs (`ORDERED`), and every per-token loop is the same
code for every token.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import config as numba_config
from numba.core.extending import intrinsic

from stemforge.symbolic.decoding.layout import GROUP, TILE

# LLVM's SLP vectorizer turns a block's named accumulators (`_block_source`) into vector
# registers; numba ships with it off. It only packs independent lanes, so it changes no sum's
# order. Set before these kernels compile, in both forms (numba reads it when it compiles).
numba_config.SLP_VECTORIZE = 1

ORDERED = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}  # fastmath without reassociation
PREFETCH_BYTES = 4096  # how far ahead of its reads a block asks for its tiles' rows (`_prefetch_row`)


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose bits are `bits` (uint32): numba has no scalar `view`."""

    def codegen(context, builder, signature, arguments):
        return builder.bitcast(arguments[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def _prefetch_row(typingctx, array, index):
    """Ask the CPU to start loading row `index` of a 2-D array (a hint: never faults, even past
    the end). The blocks read their tiles a row at a time, 16-64 bytes, too slowly for the
    CPU's own prefetcher to run ahead: prefetching 4 KB ahead made a 4-take step 1.7x and a
    forced run of 8 tokens 1.5x faster on this machine, a one-token step ~5% slower."""

    def codegen(context, builder, signature, arguments):
        rows = context.make_array(signature.args[0])(context, builder, arguments[0])
        start = builder.ptrtoint(rows.data, ir.IntType(64))
        offset = builder.mul(arguments[1], builder.extract_value(rows.strides, 0))
        address = builder.inttoptr(builder.add(start, offset), ir.PointerType())
        int32 = ir.IntType(32)
        prefetch = builder.module.declare_intrinsic(
            "llvm.prefetch", [ir.PointerType()], ir.FunctionType(ir.VoidType(), [ir.PointerType(), int32, int32, int32]))
        builder.call(prefetch, [address, ir.Constant(int32, 0), ir.Constant(int32, 3), ir.Constant(int32, 1)])  # read, keep
        return context.get_dummy_value()

    return types.void(array, types.intp), codegen


def _block_source(tokens: int, tiles: int) -> str:
    """Source of a product block: `tokens` consecutive rows of `x` (from `first`) times
    `tiles` consecutive tiles (`tile_0`..., each (inputs, TILE)) over their first `inputs`
    rows, into row `row` on of `out` from column `column`. Each output's sum runs over the
    inputs in their order, one named accumulator per (token, column), so a token gets the same
    bits in a block of 8, 4, 2 or 1 (a take decodes in a batch as it does alone). Generated, not
    written out: numba has no vector type, and only named scalars stay in registers (the SLP
    vectorizer packs a tile row's TILE into vectors); accumulators in an array are loaded and
    stored for every input, which measured 2-2.5x slower for 4-8 tokens."""
    lanes = [(t, k, lane) for t in range(tokens) for k in range(tiles) for lane in range(TILE)]
    names = ", ".join(f"tile_{k}" for k in range(tiles))
    lines = [f"def block_{tokens}x{tiles}(x, first, inputs, {names}, out, row, column):",
             "    " + " = ".join(f"a{t}_{k}_{lane}" for t, k, lane in lanes) + " = np.float32(0.0)",
             f"    ahead = {PREFETCH_BYTES} // tile_0.strides[0]",
             "    for i in range(inputs):"]
    for k in range(tiles):
        lines.append(f"        prefetch_row(tile_{k}, i + ahead)")
        lines.append(f"        row_{k} = tile_{k}[i]")
        lines += [f"        w{k}_{lane} = np.float32(row_{k}[{lane}])" for lane in range(TILE)]
    for t in range(tokens):
        lines.append(f"        v{t} = x[first + {t}, i]")
        lines += [f"        a{t}_{k}_{lane} += v{t} * w{k}_{lane}" for k in range(tiles) for lane in range(TILE)]
    for t in range(tokens):
        lines.append(f"    target = out[row + {t}]")
        lines += [f"    target[column + {k * TILE + lane}] = a{t}_{k}_{lane}" for k in range(tiles)
                  for lane in range(TILE)]
    return "\n".join(lines)


def _compiled_block(tokens: int, tiles: int):
    namespace = {"np": np, "prefetch_row": _prefetch_row}
    exec(compile(_block_source(tokens, tiles), f"<decode_kernels block {tokens}x{tiles}>", "exec"), namespace)
    return njit(fastmath=ORDERED, nogil=True, inline="always")(namespace[f"block_{tokens}x{tiles}"])


_block_8x1, _block_4x1, _block_2x2, _block_1x4, _block_1x2, _block_1x1 = (
    _compiled_block(t, k) for t, k in ((8, 1), (4, 1), (2, 2), (1, 4), (1, 2), (1, 1)))


@njit(cache=True, fastmath=ORDERED, nogil=True)
def _linear(x: np.ndarray, tiles: np.ndarray, scale: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """out = x @ weight + bias, or for int8 weights with a scale per output (`scale` not
    empty) (x @ weight) * scale + bias; `tiles` is the weight (in, out) as `compiled_decoder.tiled`
    lays it out, (out / TILE, in, TILE), padded to GROUP tiles. The tokens go eight or four at a
    time through each tile, then the last one to three through GROUP tiles at a time (blocks:
    `_block_source`), so each weight loaded feeds up to eight accumulators held in registers and
    each tile is read from memory once for the blocks of 8 and 4 and once for the rest. For the
    shipped model's 24 matrices (int8): 0.28 ms for one token (the loops before: 0.44), 0.59 ms
    for four (1.01), 0.92 ms for eight (2.47). Not BLAS: its sums depend on how many rows it is
    given, so a take would not decode as it does alone. (A loop over a group's tiles around the
    blocks of 8 and 4 measured 2x slower than a loop over single tiles.)"""
    count, inputs = x.shape[0], tiles.shape[1]
    outputs = bias.shape[0]
    blocked = count - count % 4
    for tile in range(tiles.shape[0]):
        first = 0
        while first + 8 <= blocked:
            _block_8x1(x, first, inputs, tiles[tile], out, first, tile * TILE)
            first += 8
        if first < blocked:
            _block_4x1(x, first, inputs, tiles[tile], out, first, tile * TILE)
    if blocked < count:
        for group in range(0, tiles.shape[0], GROUP):
            first = blocked
            if first + 2 <= count:
                _block_2x2(x, first, inputs, tiles[group], tiles[group + 1], out, first, group * TILE)
                _block_2x2(x, first, inputs, tiles[group + 2], tiles[group + 3], out, first, (group + 2) * TILE)
                first += 2
            if first < count:
                _block_1x4(x, first, inputs, tiles[group], tiles[group + 1], tiles[group + 2], tiles[group + 3], out,
                           first, group * TILE)
    scaled = scale.shape[0] > 0
    for t in range(count):
        for j in range(outputs):
            out[t, j] = (out[t, j] * scale[j] if scaled else out[t, j]) + bias[j]


@njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, out: np.ndarray) -> None:
    count, width = x.shape[0], weight.shape[0]
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


@njit(inline="always", fastmath=True)
def _exp(x: float) -> float:
    """exp(x) in float32 arithmetic that vectorizes (libm's exp and tanh are a call per value:
    6 of 14 us of a head's attention at 1500 positions, and 10% of a 4-take step in the GELU's
    tanh): 2^k times a degree-6 polynomial of the remainder, relative error ~1e-6; x is clamped
    to float32's range."""
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    k = np.floor(x * np.float32(1.442695) + np.float32(0.5))
    r = x - k * np.float32(0.693145751953125) - k * np.float32(1.428606765330187e-06)
    p = np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    return p * _float_from_bits(np.uint32(np.int32(k) + np.int32(127)) << np.uint32(23))


@njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _softmax(scores: np.ndarray, count: int) -> float:
    """scores[:count] -> exp(score - the highest), in place; returns 1 / their sum."""
    highest = np.float32(-np.inf)
    for s in range(count):
        highest = max(highest, scores[s])
    total = np.float32(0.0)
    for s in range(count):
        weight = _exp(scores[s] - highest)
        scores[s] = weight
        total += weight
    return np.float32(1.0) / total


@njit(cache=True, fastmath=ORDERED, nogil=True)
def _attend_one(query: np.ndarray, head_keys: np.ndarray, head_values: np.ndarray, key_scales: np.ndarray,
                value_scales: np.ndarray, last: int, out: np.ndarray, row: int, column: int, width: int,
                scores: np.ndarray) -> None:
    """One token's attention over positions 0..last of one head, into out[row, column:column +
    width]. `query` (1, dim) is scaled already; keys are tiled by position, (positions / TILE,
    dim, TILE), so the scores are a product of the query with GROUP * TILE positions at a time,
    and values by dim, (dim / TILE, positions, TILE), so the output is a product of the scores
    with the values (the products' blocks: `_block_source`). Both read the cache front to back
    (values laid out by dim were 64 short rows a head, which measured 10x slower for 4 takes than
    for one: each row a cache miss). An int8 cache's scales (one per position, not empty) scale
    each position's score, and its weight before the values."""
    count = last + 1
    dim = query.shape[1]
    for group in range(0, (count + GROUP * TILE - 1) // (GROUP * TILE) * GROUP, GROUP):
        _block_1x4(query, 0, dim, head_keys[group], head_keys[group + 1], head_keys[group + 2], head_keys[group + 3],
                   scores, 0, group * TILE)
    quantized = key_scales.shape[0] > 0
    if quantized:
        for s in range(count):
            scores[0, s] *= key_scales[s]
    inverse = _softmax(scores[0], count)
    if quantized:
        for s in range(count):
            scores[0, s] *= value_scales[s]
    tiles = head_values.shape[0]
    tile = 0
    while tile + 4 <= tiles:
        _block_1x4(scores, 0, count, head_values[tile], head_values[tile + 1], head_values[tile + 2],
                   head_values[tile + 3], out, row, column + tile * TILE)
        tile += 4
    if tile + 2 <= tiles:
        _block_1x2(scores, 0, count, head_values[tile], head_values[tile + 1], out, row, column + tile * TILE)
        tile += 2
    if tile < tiles:
        _block_1x1(scores, 0, count, head_values[tile], out, row, column + tile * TILE)
    for d in range(width):
        out[row, column + d] *= inverse


@njit(cache=True, fastmath=True, nogil=True)
def _store(vector: np.ndarray, cache: np.ndarray, scales: np.ndarray, position: int, by_position: bool) -> None:
    """A new key or value (`vector`, one head's dim) into a head's cache at `position`: keys are
    tiled by position (by_position), values by dim. An int8 cache (scales not empty) takes the
    vector over its largest magnitude, in 255 levels, and keeps that scale."""
    scale = np.float32(1.0)
    if scales.shape[0] > 0:
        largest = np.float32(0.0)
        for d in range(vector.shape[0]):
            largest = max(largest, abs(vector[d]))
        scale = largest / np.float32(127.0) if largest > 0 else np.float32(1.0)
        scales[position] = scale
    for d in range(vector.shape[0]):
        value = vector[d] / scale if scales.shape[0] > 0 else vector[d]
        if by_position:
            cache[position // TILE, d, position % TILE] = np.rint(value) if scales.shape[0] > 0 else value
        else:
            cache[d // TILE, position, d % TILE] = np.rint(value) if scales.shape[0] > 0 else value


@njit(cache=True, fastmath=True, nogil=True)
def _attend(qkv: np.ndarray, rows: np.ndarray, positions: np.ndarray, layer: int, keys: np.ndarray,
            values: np.ndarray, key_scales: np.ndarray, value_scales: np.ndarray, scale: float, dim: int,
            out: np.ndarray, scores: np.ndarray) -> None:
    """Causal attention of the call's tokens, each over its own row's cache up to its own
    position; their keys and values are written in first. The caches (`CompiledDecoder`'s):
    keys (rows, layers, heads, positions / TILE, dim, TILE), values (rows, layers, heads,
    dim / TILE, positions, TILE), dim padded to whole tiles with zeros; float32, or int8 with
    a scale per (row, layer, head, position) in `key_scales` / `value_scales` (empty for
    float32). `out` has room for the last head's padding."""
    count = qkv.shape[0]
    heads, padded = keys.shape[2], keys.shape[4]
    width = heads * dim
    for t in range(count):
        row, position = rows[t], positions[t]
        for h in range(heads):
            _store(qkv[t, width + h * dim:width + (h + 1) * dim], keys[row, layer, h], key_scales[row, layer, h],
                   position, True)
            _store(qkv[t, 2 * width + h * dim:2 * width + (h + 1) * dim], values[row, layer, h],
                   value_scales[row, layer, h], position, False)
    query = np.zeros((1, padded), np.float32)
    for t in range(count):
        row = rows[t]
        for h in range(heads):
            for d in range(dim):
                query[0, d] = qkv[t, h * dim + d] * scale
            _attend_one(query, keys[row, layer, h], values[row, layer, h], key_scales[row, layer, h],
                        value_scales[row, layer, h], positions[t], out, t, h * dim, dim, scores)


@njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _gelu_tanh(x: np.ndarray, width: int) -> None:
    """GPT-2's GELU, 0.5 v (1 + tanh(u)) with u = sqrt(2 / pi) (v + 0.044715 v^3), written as
    v / (1 + exp(-2u)) (the same function) so that it vectorizes through `_exp`."""
    twice_root = np.float32(2.0 * math.sqrt(2.0 / math.pi))
    for t in range(x.shape[0]):
        for i in range(width):
            v = x[t, i]
            x[t, i] = v / (np.float32(1.0) + _exp(-twice_root * (v + np.float32(0.044715) * v * v * v)))


@njit(cache=True, fastmath=True, nogil=True)
def _add(x: np.ndarray, update: np.ndarray) -> None:
    for t in range(x.shape[0]):
        for i in range(x.shape[1]):
            x[t, i] += update[t, i]


@njit(cache=True, fastmath=True, nogil=True)
def decode(ids: np.ndarray, rows: np.ndarray, positions: np.ndarray, outputs: np.ndarray,
           wte: np.ndarray, wpe: np.ndarray,
           ln1_w: np.ndarray, ln1_b: np.ndarray, attn_w: np.ndarray, attn_s: np.ndarray, attn_b: np.ndarray,
           proj_w: np.ndarray, proj_s: np.ndarray, proj_b: np.ndarray, ln2_w: np.ndarray, ln2_b: np.ndarray,
           fc_w: np.ndarray, fc_s: np.ndarray, fc_b: np.ndarray, mlp_w: np.ndarray, mlp_s: np.ndarray,
           mlp_b: np.ndarray, lnf_w: np.ndarray, lnf_b: np.ndarray, keys: np.ndarray, values: np.ndarray,
           key_scales: np.ndarray, value_scales: np.ndarray, eps: float, scale: float, logits: np.ndarray) -> None:
    """One step for several rows (takes) at once: token t is row rows[t]'s token at
    positions[t] (a row's tokens in order); logits[n] are the next-token logits after token
    outputs[n]. The four matrices of a layer are tiled (`compiled_decoder.tiled`), float32 with
    empty scales (`*_s` of shape (layers, 0)) or int8 with a scale per output (the int8
    decoder), the KV cache float32 or int8 with its scales (`_attend`): one source, compiled for
    each."""
    count = ids.shape[0]
    width = wte.shape[1]
    x = np.empty((count, width), np.float32)
    for t in range(count):
        for i in range(width):
            x[t, i] = wte[ids[t], i] + wpe[positions[t], i]
    normed = np.empty((count, width), np.float32)
    qkv = np.empty((count, attn_w.shape[1] * TILE), np.float32)  # products write whole tiles
    dim = width // keys.shape[2]
    attended = np.empty((count, width + keys.shape[4] - dim), np.float32)  # the last head writes whole tiles
    update = np.empty((count, proj_w.shape[1] * TILE), np.float32)
    hidden = np.empty((count, fc_w.shape[1] * TILE), np.float32)
    scores = np.empty((1, (positions.max() // (GROUP * TILE) + 1) * GROUP * TILE), np.float32)
    for layer in range(attn_w.shape[0]):
        _layer_norm(x, ln1_w[layer], ln1_b[layer], eps, normed)
        _linear(normed, attn_w[layer], attn_s[layer], attn_b[layer], qkv)
        _attend(qkv, rows, positions, layer, keys, values, key_scales, value_scales, scale, dim, attended, scores)
        _linear(attended, proj_w[layer], proj_s[layer], proj_b[layer], update)
        _add(x, update)
        _layer_norm(x, ln2_w[layer], ln2_b[layer], eps, normed)
        _linear(normed, fc_w[layer], fc_s[layer], fc_b[layer], hidden)
        _gelu_tanh(hidden, fc_b.shape[1])
        _linear(hidden, mlp_w[layer], mlp_s[layer], mlp_b[layer], update)
        _add(x, update)
    lasts = np.empty((outputs.shape[0], width), np.float32)
    _layer_norm(x[outputs], lnf_w, lnf_b, eps, lasts)
    _logits(lasts, wte, logits)


@njit(cache=True, fastmath=True, nogil=True)
def _logits(lasts: np.ndarray, wte: np.ndarray, logits: np.ndarray) -> None:
    """logits = lasts @ wte.T (GPT-2's tied output weights). Its own function, like every loop
    of `decode` that sums: numba.pycc compiles the exported function itself without fastmath
    but each function it calls with its own flags, so the ahead-of-time and JIT forms sum in
    the same order (symbolic/decoding/kernels.py)."""
    for n in range(lasts.shape[0]):
        for v in range(wte.shape[0]):
            total = np.float32(0.0)  # a float64 sum cost 4% of a 4-take step in conversions
            for i in range(lasts.shape[1]):
                total += lasts[n, i] * wte[v, i]
            logits[n, v] = total
