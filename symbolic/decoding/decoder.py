"""Decoding the composer's weights fast: `FastDecoder` holds a model's weights and decodes one
sequence with a preallocated KV cache, through `BatchDecoder`, which runs several sequences
(takes) at once over the same weights.

Why not `generate()` / the HF forward: for a 5M-parameter model the per-token cost is
dominated by Python module overhead (DynamicCache bookkeeping, hooks, masks), not by
arithmetic; a flat loop over the same tensors is several times faster (bench/symbolic.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stemforge.symbolic.core.errors import context_overflow
from stemforge.symbolic.decoding.layout import GPT2_LAYER_PARTS, DecoderShape


class FastDecoder:
    """Incremental GPT-2 forward over a model's weights with a preallocated KV cache."""

    def __init__(self, weights: dict[str, torch.Tensor], shape: DecoderShape) -> None:
        def w(name: str) -> torch.Tensor:
            return weights[f"transformer.{name}"].detach().float()

        n_layer, n_head, n_positions = shape.n_layer, shape.n_head, shape.n_positions
        self.n_head = n_head
        self.wte = w("wte.weight")
        self.wpe = w("wpe.weight")
        self.head_dim = self.wte.shape[1] // n_head
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.max_tokens = n_positions
        self.eps = shape.layer_norm_epsilon
        self.layers = [tuple(w(f"h.{i}.{part}") for part in GPT2_LAYER_PARTS) for i in range(n_layer)]
        self.ln_f = (w("ln_f.weight"), w("ln_f.bias"))
        self.lm_head = weights.get("lm_head.weight", weights["transformer.wte.weight"]).detach().float()
        self.cache_shapes = ((n_layer, n_head, self.head_dim, n_positions),  # keys: dim before positions
                             (n_layer, n_head, n_positions, self.head_dim))  # values
        self._rows: BatchDecoder | None = None

    @classmethod
    def from_model(cls, model) -> FastDecoder:
        return cls(dict(model.state_dict()), DecoderShape.of_config(model.config))

    @classmethod
    def from_directory(cls, directory: Path) -> FastDecoder:
        from safetensors.torch import load_file

        return cls(load_file(directory / "model.safetensors"), DecoderShape.of(directory))

    @property
    def rows(self) -> BatchDecoder:
        """The one-row decoder `forward` runs through (its KV cache is allocated on first use)."""
        if self._rows is None:
            self._rows = BatchDecoder(self, 1)
        return self._rows

    @property
    def length(self) -> int:
        return self.rows.lengths[0]

    def reset(self) -> None:
        self.rows.lengths[0] = 0

    def forward(self, token_ids: list[int]) -> torch.Tensor:
        """Feed tokens; returns the next-token logits after the last one."""
        return self.rows.forward({0: token_ids})[0]


class BatchDecoder:
    """The torch decode step, for one sequence or several at once (takes), over the weights of
    a `FastDecoder`: the rows' new tokens go through the weight matrices together (one read of
    the weights per step, where batch-1 decoding spends much of its time), attention runs per
    row over the row's own KV cache. Rows may feed different numbers of tokens in a step (a forced bar in
    one row, a single sampled token in another). A masked attention over all rows at once
    measured no faster (bench/symbolic.py): at 600 tokens the rows' caches, not the calls,
    are what a step reads."""

    def __init__(self, single: FastDecoder, rows: int) -> None:
        self.single = single
        # keys transposed (dim before positions): scores are q @ keys without a transpose
        key_shape, value_shape = single.cache_shapes
        self.keys = torch.zeros((rows, *key_shape))
        self.values = torch.zeros((rows, *value_shape))
        self.lengths = [0] * rows

    def reset(self) -> None:
        self.lengths[:] = [0] * len(self.lengths)

    def forward_rows(self, feeds: dict[int, list[int]]) -> dict[int, np.ndarray]:
        """`forward` with numpy logits, the sampler's interface (`sampling.RowsDecoder`)."""
        return {row: logits.numpy() for row, logits in self.forward(feeds).items()}

    @torch.inference_mode()
    def forward(self, feeds: dict[int, list[int]]) -> dict[int, torch.Tensor]:
        """row -> tokens to feed; returns row -> next-token logits after its last token."""
        d = self.single
        rows = [row for row, tokens in feeds.items() if tokens]
        spans, offset = [], 0
        for row in rows:
            count, start = len(feeds[row]), self.lengths[row]
            if start + count > d.max_tokens:
                raise context_overflow(d.max_tokens)
            spans.append((row, offset, count, start))
            offset += count
        ids = torch.tensor([token for row in rows for token in feeds[row]])
        positions = torch.cat([torch.arange(start, start + count) for _, _, count, start in spans])
        x = d.wte[ids] + d.wpe[positions]
        embd = x.shape[-1]
        for index, (l1w, l1b, aw, ab, pw, pb, l2w, l2b, fw, fb, mw, mb) in enumerate(d.layers):
            h = F.layer_norm(x, (embd,), l1w, l1b, d.eps)
            qkv = torch.addmm(ab, h, aw)
            attended = []
            for row, first, count, start in spans:
                q, k_new, v_new = qkv[first:first + count].view(count, 3, d.n_head, d.head_dim).permute(1, 2, 0, 3)
                self.keys[row, index, :, :, start:start + count] = k_new.transpose(1, 2)
                self.values[row, index, :, start:start + count] = v_new
                k = self.keys[row, index, :, :, : start + count]
                v = self.values[row, index, :, : start + count]
                scores = torch.matmul(q, k) * d.scale
                if count > 1:
                    mask = torch.ones(count, start + count, dtype=torch.bool).tril(diagonal=start)
                    scores = scores.masked_fill(~mask, float("-inf"))
                attn = torch.matmul(torch.softmax(scores, dim=-1), v)
                attended.append(attn.transpose(0, 1).reshape(count, embd))
            x = x + torch.addmm(pb, torch.cat(attended) if len(attended) > 1 else attended[0], pw)
            h = F.layer_norm(x, (embd,), l2w, l2b, d.eps)
            x = x + torch.addmm(mb, F.gelu(torch.addmm(fb, h, fw), approximate="tanh"), mw)
        lasts = torch.tensor([first + count - 1 for _, first, count, _ in spans])
        final = F.layer_norm(x[lasts], (embd,), d.ln_f[0], d.ln_f[1], d.eps) @ d.lm_head.T
        for row, _, count, _ in spans:
            self.lengths[row] += count
        return {row: final[i] for i, (row, *_rest) in enumerate(spans)}
