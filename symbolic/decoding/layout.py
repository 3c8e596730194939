"""The layout of a composer's weights as the decoders hold them: the parts of a GPT-2 block in
order, the model's shape, and the tiles the compiled kernels read the matrices in. Kept apart
from the model, the decoders and the kernels so each of them can read it without importing
the others (or numba, or torch)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TILE = 16  # output columns of a tile of a matrix as the step reads it (compiled_decoder.tiled)
GROUP = 4  # tiles a product takes per pass over its inputs; matrices are padded to GROUP * TILE outputs


# A GPT-2 block's weights in the order both decoders (symbolic/decoding/decoder.py, compiled_decoder.py) hold them.
GPT2_LAYER_PARTS = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                    "mlp.c_proj.weight", "mlp.c_proj.bias")


@dataclass(frozen=True)
class DecoderShape:
    """What a decoder needs from a model directory's config.json besides the weights."""

    n_layer: int
    n_head: int
    n_positions: int
    layer_norm_epsilon: float = 1e-5

    @classmethod
    def of(cls, directory: Path) -> DecoderShape:
        config = json.loads((Path(directory) / "config.json").read_text())
        return cls(config["n_layer"], config["n_head"], config["n_positions"], config.get("layer_norm_epsilon", 1e-5))

    @classmethod
    def of_config(cls, config) -> DecoderShape:
        """From a loaded model's transformers `GPT2Config`."""
        return cls(config.n_layer, config.n_head, config.n_positions, config.layer_norm_epsilon)
