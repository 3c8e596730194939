"""The compiled step's argument list is spelled once (kernels.decode_parameters): the signature
compiled ahead of time is made from it, CompiledDecoder binds its arrays to it by name, and
decode_kernels.decode's own parameters (numba compiles a plain def) must be the same names."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from stemforge.symbolic.decoding.compiled_decoder import (
    CALL_INPUTS,
    CompiledDecoder,
    DecoderWeights,
    StepMatrices,
)
from stemforge.symbolic.decoding.decode_kernels import decode
from stemforge.symbolic.decoding.kernels import DECODE_ARGUMENTS, SIGNATURES, decode_parameters


def test_the_kernel_and_its_signature_take_the_one_argument_list() -> None:
    assert tuple(inspect.signature(decode.py_func).parameters) == DECODE_ARGUMENTS
    assert DECODE_ARGUMENTS[:len(CALL_INPUTS)] == CALL_INPUTS and DECODE_ARGUMENTS[-1] == "logits"
    for name, (matrix, cache) in (("decode", ("float32[:, :, :, ::1]", "float32[:, :, :, :, :, ::1]")),
                                  ("decode_int8", ("int8[:, :, :, ::1]", "int8[:, :, :, :, :, ::1]"))):
        types = [kind for _, kind in decode_parameters(matrix, cache)]
        assert SIGNATURES[name] == f"void({', '.join(types)})" and len(types) == len(DECODE_ARGUMENTS) == 31
        assert types[DECODE_ARGUMENTS.index("attn_w")] == matrix and types[DECODE_ARGUMENTS.index("keys")] == cache


def test_a_decoder_binds_its_own_arrays_by_name_and_decodes_as_the_spelled_out_call(tiny_model: Path) -> None:
    weights = DecoderWeights.from_directory(tiny_model)
    for int8 in (False, True):
        decoder = CompiledDecoder(weights, rows=1, matrices=StepMatrices.of(weights, int8=int8))
        bound = dict(zip(DECODE_ARGUMENTS[len(CALL_INPUTS):-1], decoder.step_arguments(), strict=True))
        assert bound["keys"] is decoder.keys and bound["value_scales"] is decoder.value_scales
        assert bound["attn_w"] is decoder.matrices.attn_w and bound["attn_b"] is weights.attn_b  # tiled, not raw
        assert bound["eps"] == weights.shape.layer_norm_epsilon and bound["scale"] == weights.scale
        logits = decoder.forward([1, 2, 3])
        # the same step called with every argument written out, as CompiledDecoder once did
        again = CompiledDecoder(weights, rows=1, matrices=decoder.matrices)
        m, w = again.matrices, weights
        out = np.empty((1, w.wte.shape[0]), np.float32)
        kernel = again.kernels.decode_int8 if int8 else again.kernels.decode
        kernel(np.array([1, 2, 3]), np.zeros(3, np.int64), np.arange(3), np.array([2]), w.wte, w.wpe, w.ln1_w,
               w.ln1_b, m.attn_w, m.attn_s, w.attn_b, m.proj_w, m.proj_s, w.proj_b, w.ln2_w, w.ln2_b, m.fc_w, m.fc_s,
               w.fc_b, m.mlp_w, m.mlp_s, w.mlp_b, w.lnf_w, w.lnf_b, again.keys, again.values, again.key_scales,
               again.value_scales, w.shape.layer_norm_epsilon, w.scale, out)
        assert np.array_equal(logits, out[0])
