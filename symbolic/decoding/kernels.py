"""The compiled decoder's kernels (`decode_kernels.decode`, for float32 and for int8 matrices, and
`draw.draw_token`), loaded in the form that starts fastest: compiled ahead of time when setup
built them, else numba's JIT.

Why ahead of time: numba's JIT costs a cold process about 1.2 s of CPU before its first token,
even with its machine code cached on disk (importing numba 0.45 s, then 0.7 s loading its
target's registries: bench/cold_start.py), more than composing the piece. The same functions
compiled by numba.pycc into an extension module load in milliseconds without importing numba,
and give bit-identical logits and draws (tests/test_symbolic.py checks both forms against each
other). The module is built once per machine by `build_ahead_of_time` (scripts/setup.sh, via
`symbolic.decoding.precompile`) into the user cache (symbolic.core.cache.default_cache_root()), named by
a digest of the kernels' source and of this module, the numba and numpy versions and the CPU's
instruction-set flags: edited kernels, other libraries or a cache folder shared with another
CPU find no module and fall back to the JIT, never to stale or foreign code; a machine whose
flags cannot be read uses the JIT. numba.pycc is pending deprecation upstream; where it is
gone the build is skipped and the JIT serves.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.cores import usable_cores

# the kernels' source and this module (the exported signatures, the compiler settings)
KERNEL_MODULES = ("stemforge.symbolic.decoding.decode_kernels", "stemforge.symbolic.decoding.draw", "stemforge.symbolic.decoding.kernels")
F32_1, F32_2, F32_4, F32_6 = "float32[::1]", "float32[:, ::1]", "float32[:, :, :, ::1]", "float32[:, :, :, :, :, ::1]"
I64_1, I8_4, I8_6 = "int64[::1]", "int8[:, :, :, ::1]", "int8[:, :, :, :, :, ::1]"


def decode_parameters(matrix: str, cache: str) -> tuple[tuple[str, str], ...]:
    """`decode_kernels.decode`'s parameters in order, each with its type as CompiledDecoder
    passes it (C-contiguous arrays), a layer's four matrices tiled of type `matrix` (float32, or
    int8 with their scales) and the KV cache of type `cache` (float32, or int8 with its scales).
    The one spelling of the step's argument list: the signature compiled ahead of time is made
    from it and CompiledDecoder's call is ordered by it; numba compiles a plain def, which cannot
    take a bundle, so `decode` spells the names once more and a test holds them equal."""
    return (("ids", I64_1), ("rows", I64_1), ("positions", I64_1), ("outputs", I64_1),
            ("wte", F32_2), ("wpe", F32_2),
            ("ln1_w", F32_2), ("ln1_b", F32_2), ("attn_w", matrix), ("attn_s", F32_2), ("attn_b", F32_2),
            ("proj_w", matrix), ("proj_s", F32_2), ("proj_b", F32_2),
            ("ln2_w", F32_2), ("ln2_b", F32_2), ("fc_w", matrix), ("fc_s", F32_2), ("fc_b", F32_2),
            ("mlp_w", matrix), ("mlp_s", F32_2), ("mlp_b", F32_2),
            ("lnf_w", F32_1), ("lnf_b", F32_1), ("keys", cache), ("values", cache),
            ("key_scales", F32_4), ("value_scales", F32_4),
            ("eps", "float64"), ("scale", "float64"), ("logits", F32_2))


# the names alone, in order (CompiledDecoder binds the weights, matrices and cache to them once)
DECODE_ARGUMENTS = tuple(name for name, _ in decode_parameters(F32_4, F32_6))


def _decode_signature(matrix: str, cache: str) -> str:
    return f"void({', '.join(kind for _, kind in decode_parameters(matrix, cache))})"


SIGNATURES = {
    "decode": _decode_signature(F32_4, F32_6),
    "decode_int8": _decode_signature(I8_4, I8_6),  # the same function over int8 matrices and an int8 cache
    "draw_token": "int64(float32[::1], boolean[::1], float64, int64, float64, float64)",
}


def decode_threads() -> int:
    """Threads that may decode side by side (a run's takes): the usable cores, or fewer where
    OMP_NUM_THREADS says so (a service worker sets it to its share of the cores)."""
    cores = usable_cores()
    try:
        asked = int(os.environ.get("OMP_NUM_THREADS", cores))
    except ValueError:
        asked = cores
    return max(1, min(cores, asked))


@dataclass(frozen=True)
class Kernels:
    decode: Callable  # over float32 matrices and KV cache
    decode_int8: Callable  # the same over int8 matrices and an int8 cache (the JIT: `decode`, compiled per type)
    draw_token: Callable
    ahead_of_time: bool  # False: numba's JIT


def _cpu_fingerprint() -> str | None:
    """The CPU the module is built for: its instruction-set flags decide which instructions the
    module may use. None where they cannot be read (no /proc/cpuinfo): such a machine uses the
    JIT, since a module built for another CPU in a shared cache folder could crash it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    flags = next((line for line in lines if line.split(":")[0].strip() in ("flags", "Features")), None)
    return f"{platform.machine()} {flags}" if flags else None


def module_name() -> str | None:
    """The ahead-of-time module's name for these kernels, libraries and CPU (None: this CPU
    cannot be told apart, use the JIT)."""
    from stemforge.symbolic.core.cache import code_digest, library_versions

    cpu = _cpu_fingerprint()
    if cpu is None:
        return None
    key = repr((sorted(code_digest(KERNEL_MODULES).items()), sorted(library_versions(("numba", "numpy")).items()),
                cpu, sys.version))
    return "stemforge_kernels_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def kernels_dir() -> Path:
    from stemforge.symbolic.core.cache import default_cache_root

    return default_cache_root() / "kernels"


def _module_path(directory: Path, name: str) -> Path | None:
    return next((directory / f"{name}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES
                 if (directory / f"{name}{suffix}").is_file()), None)


def _load_ahead_of_time(directory: Path):
    """The built module for these kernels, or None (not built, or it does not load)."""
    name = module_name()
    path = _module_path(directory, name) if name else None
    if path is None:
        return None
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.decode, module.decode_int8, module.draw_token  # noqa: B018 - all exported, or it is not ours
    except Exception:  # a truncated or foreign file: the JIT gives the same results
        return None
    return module


def _checked(function: Callable, arrays: tuple[tuple[int, type], ...]) -> Callable:
    """`function` (compiled ahead of time) refusing arrays of another dtype or layout: its
    wrapper takes the memory as it is (a float64 array crashes the process, a strided one gives
    wrong numbers) where the JIT would compile another version. `arrays`: (argument index,
    dtype) of the arguments to check (the decoder's own arrays are checked where they are made:
    `DecoderWeights`, `CompiledDecoder`)."""

    def call(*arguments):
        for index, dtype in arrays:
            array = arguments[index]
            if array.dtype != dtype or not array.flags.c_contiguous:
                raise TypeError(f"draw_token: argument {index} must be a C-contiguous {np.dtype(dtype).name} array, "
                                f"got {'a C-contiguous' if array.flags.c_contiguous else 'a strided'} {array.dtype}")
        return function(*arguments)

    return call


@functools.cache
def kernels(directory: Path | None = None) -> Kernels:
    """The kernels: ahead of time where built for this exact source, else numba's JIT. Looked
    up once per process and folder (the first answer is kept)."""
    module = _load_ahead_of_time(directory or kernels_dir())
    if module is not None:
        return Kernels(module.decode, module.decode_int8,
                       _checked(module.draw_token, ((0, np.float32), (1, np.bool_))), ahead_of_time=True)
    from stemforge.symbolic.decoding.decode_kernels import decode
    from stemforge.symbolic.decoding.draw import draw_token

    return Kernels(decode, decode, draw_token, ahead_of_time=False)


class BuildError(RuntimeError):
    """The kernels could not be compiled ahead of time (no C compiler, an unwritable cache):
    not fatal, numba's JIT serves the same kernels."""


@contextlib.contextmanager
def _wrappers_release_the_gil() -> Iterator[None]:
    """pycc's exported functions keep the GIL while they run (it has no `nogil` option), where
    the JIT form releases it (`nogil=True`): a thread decoding through the built module stopped
    every other thread of the process, so takes could not decode side by side (two pieces in two
    threads took as long as one after the other; 0.56x once released: bench/symbolic.py). pycc
    builds its wrappers with numba's JIT wrapper code, which releases the GIL when its flags
    say so, and takes them from `numba.pycc.compiler.Flags`: those flags, with release_gil
    set, while pycc compiles."""
    import numba.pycc.compiler as pycc_compiler

    original = pycc_compiler.Flags

    class ReleasingTheGil(original):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True

    pycc_compiler.Flags = ReleasingTheGil
    try:
        yield
    finally:
        pycc_compiler.Flags = original


def build_ahead_of_time(directory: Path | None = None) -> Path | None:
    """Compile the kernels into an extension module for this machine (about 12 s); returns its
    path, or None where that is not possible here (no numba.pycc, CPU flags unreadable);
    BuildError where it fails. A module already there is kept if it loads, rebuilt if not.
    Built in a temporary folder and moved in, so a reader never loads half a file."""
    import shutil
    import tempfile
    import warnings

    directory = directory or kernels_dir()
    name = module_name()
    if name is None:
        return None
    existing = _module_path(directory, name)
    if existing is not None and _load_ahead_of_time(directory) is not None:
        return existing
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
            from numba.pycc import CC
    except ImportError:
        return None
    from stemforge.symbolic.decoding.decode_kernels import decode
    from stemforge.symbolic.decoding.draw import draw_token

    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as scratch:
            compiler = CC(name)
            compiler.output_dir = scratch
            compiler.target_cpu = "host"  # the module is named by this CPU, so it may use all of it
            compiler.verbose = False
            compiler.export("decode", SIGNATURES["decode"])(decode.py_func)
            compiler.export("decode_int8", SIGNATURES["decode_int8"])(decode.py_func)
            compiler.export("draw_token", SIGNATURES["draw_token"])(draw_token.py_func)
            with warnings.catch_warnings(), _wrappers_release_the_gil():
                warnings.simplefilter("ignore")
                compiler.compile()
            built = next(Path(scratch).glob(f"{name}*"))
            target = directory / built.name
            shutil.move(str(built), str(target))
    except Exception as error:  # pycc links with the system's C compiler, which may be missing
        raise BuildError(f"kernels: not compiled ahead of time into {directory} ({type(error).__name__}: "
                         f"{error}); runs use numba's JIT of the same kernels") from error
    return target
