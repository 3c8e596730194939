"""Drawing the next token from the model's logits: temperature, top-k, top-p, then one
uniform number through the kept distribution's cumulative sum, in one compiled function.

Why not torch: the same steps as torch calls (mask, sort, softmax, cumsum, scatter,
multinomial) cost about 0.3 ms a token in call overhead on a 337-token vocabulary, more than
a tenth of a sampled token's time (bench/symbolic.py); here they take microseconds.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def draw_token(logits: np.ndarray, allowed: np.ndarray, temperature: float, top_k: int, top_p: float,
               uniform: float) -> int:
    """The token whose share of the kept probability mass covers `uniform` (in [0, 1)).
    Kept: allowed tokens, the `top_k` likeliest of them (0 = all), then the likeliest whose
    mass before them is at most `top_p` (so the likeliest token is always kept)."""
    candidates = np.nonzero(allowed)[0]
    if candidates.shape[0] == 0:
        return -1
    scaled = np.empty(candidates.shape[0], np.float64)
    for n in range(candidates.shape[0]):
        scaled[n] = logits[candidates[n]] / temperature
    order = np.argsort(-scaled, kind="mergesort")  # stable: ties keep token order
    kept = order.shape[0]
    if 0 < top_k < kept:
        kept = top_k
    highest = scaled[order[0]]
    weights = np.empty(kept, np.float64)
    total = 0.0
    for n in range(kept):
        weights[n] = math.exp(scaled[order[n]] - highest)
        total += weights[n]
    if top_p < 1.0:
        before = 0.0
        for n in range(kept):
            share = weights[n] / total
            if before > top_p:
                kept = n
                break
            before += share
        total = 0.0
        for n in range(kept):
            total += weights[n]
    target = uniform * total
    running = 0.0
    for n in range(kept):
        running += weights[n]
        if target < running:
            return candidates[order[n]]
    return candidates[order[kept - 1]]
