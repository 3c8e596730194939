"""What setup builds once per machine for decoding (scripts/setup.sh runs `precompile`): the
kernels compiled ahead of time, and numba's JIT cache as the fallback. Apart from the decoders
because it needs the shipped model as well as the kernels' source."""

from __future__ import annotations

import numpy as np

from stemforge.symbolic.decoding.compiled_decoder import CompiledDecoder, DecoderWeights, StepMatrices
from stemforge.symbolic.decoding.decode_kernels import decode
from stemforge.symbolic.decoding.draw import draw_token
from stemforge.symbolic.decoding.kernels import BuildError, Kernels, build_ahead_of_time
from stemforge.symbolic.decoding.model import DEFAULT_MODEL_DIR


def precompile() -> None:
    """Build what decoding runs on, once per machine (scripts/setup.sh calls this): the
    kernels compiled ahead of time (`kernels.build_ahead_of_time`), then numba's JIT cache of
    the same kernels, the fallback where the former cannot be built or loaded."""
    try:
        build_ahead_of_time()
    except BuildError as error:
        print(f"warning: {error}")
    weights = DecoderWeights.from_directory(DEFAULT_MODEL_DIR)
    for decoder in (CompiledDecoder(weights), CompiledDecoder(weights, matrices=StepMatrices.of(weights, int8=True))):
        decoder.kernels = Kernels(decode, decode, draw_token, ahead_of_time=False)
        logits = decoder.forward([0])
    draw_token(logits, np.ones(len(logits), np.bool_), 1.0, 0, 0.95, 0.5)
