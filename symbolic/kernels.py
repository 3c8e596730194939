"""The compiled decoder's two kernels (`decode_kernels.decode`, `draw.draw_token`), loaded in
the form that starts fastest: compiled ahead of time when setup built them, else numba's JIT.

Why ahead of time: numba's JIT costs a cold process about 1.2 s of CPU before its first token,
even with its machine code cached on disk (importing numba 0.45 s, then 0.7 s loading its
target's registries: bench/cold_start.py), more than composing the piece. The same functions
compiled by numba.pycc into an extension module load in milliseconds without importing numba,
and give bit-identical logits and draws (tests/test_symbolic.py checks both forms against each
other). The module is built once per machine by `build_ahead_of_time` (scripts/setup.sh, via
`compiled_decoder.precompile`) into the user cache (eval.cache.default_cache_root()), named by
a digest of the kernels' source, the numba version and the CPU: edited kernels, another numba or
a copied cache folder on another CPU find no module and fall back to the JIT, never to stale or
foreign code. numba.pycc is pending deprecation upstream; where it is gone the build is skipped
and the JIT serves.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KERNEL_MODULES = ("stemforge.symbolic.decode_kernels", "stemforge.symbolic.draw")
F32_1, F32_2, F32_3, F32_5 = "float32[::1]", "float32[:, ::1]", "float32[:, :, ::1]", "float32[:, :, :, :, ::1]"
I64_1 = "int64[::1]"
# argument types as CompiledDecoder and the sampler pass them (C-contiguous arrays)
SIGNATURES = {
    "decode": (f"void({I64_1}, {I64_1}, {I64_1}, {I64_1}, {F32_2}, {F32_2}, "  # ids rows positions outputs wte wpe
               f"{F32_2}, {F32_2}, {F32_3}, {F32_2}, {F32_3}, {F32_2}, "  # ln1 w/b, attn w/b, proj w/b
               f"{F32_2}, {F32_2}, {F32_3}, {F32_2}, {F32_3}, {F32_2}, "  # ln2 w/b, fc w/b, mlp w/b
               f"{F32_1}, {F32_1}, {F32_5}, {F32_5}, float64, float64, {F32_2})"),  # ln_f, keys, values, eps, scale, out
    "draw_token": "int64(float32[::1], boolean[::1], float64, int64, float64, float64)",
}


@dataclass(frozen=True)
class Kernels:
    decode: Callable
    draw_token: Callable
    ahead_of_time: bool  # False: numba's JIT


def _cpu_fingerprint() -> str:
    """The CPU the module is built for (its flags decide which instructions it may use)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def module_name() -> str:
    """The ahead-of-time module's name for these kernels, this numba and this CPU."""
    from stemforge.eval.cache import code_digest

    try:
        numba_version = importlib.metadata.version("numba")
    except importlib.metadata.PackageNotFoundError:
        numba_version = "none"
    key = repr((sorted(code_digest(KERNEL_MODULES).items()), numba_version, _cpu_fingerprint(), sys.version))
    return "stemforge_kernels_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def kernels_dir() -> Path:
    from stemforge.eval.cache import default_cache_root

    return default_cache_root() / "kernels"


def _load_ahead_of_time(directory: Path):
    name = module_name()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = directory / f"{name}{suffix}"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return None


@functools.cache
def kernels(directory: Path | None = None) -> Kernels:
    """The kernels: ahead of time where built for this exact source, else numba's JIT."""
    try:
        module = _load_ahead_of_time(directory or kernels_dir())
    except (ImportError, OSError):  # a broken or half-copied file: the JIT gives the same results
        module = None
    if module is not None:
        return Kernels(module.decode, module.draw_token, ahead_of_time=True)
    from stemforge.symbolic.decode_kernels import decode
    from stemforge.symbolic.draw import draw_token

    return Kernels(decode, draw_token, ahead_of_time=False)


class BuildError(RuntimeError):
    """The kernels could not be compiled ahead of time (no C compiler, an unwritable cache):
    not fatal, numba's JIT serves the same kernels."""


def build_ahead_of_time(directory: Path | None = None) -> Path | None:
    """Compile the kernels into an extension module for this machine (about 12 s); returns its
    path, or None where numba.pycc is not available (BuildError where it fails). Built in a
    temporary folder and moved in, so a reader never loads half a file."""
    import shutil
    import tempfile
    import warnings

    directory = directory or kernels_dir()
    name = module_name()
    existing = [directory / f"{name}{s}" for s in importlib.machinery.EXTENSION_SUFFIXES
                if (directory / f"{name}{s}").is_file()]
    if existing:
        return existing[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
            from numba.pycc import CC
    except ImportError:
        return None
    from stemforge.symbolic.decode_kernels import decode
    from stemforge.symbolic.draw import draw_token

    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as scratch:
            compiler = CC(name)
            compiler.output_dir = scratch
            compiler.target_cpu = "host"  # the module is named by this CPU, so it may use all of it
            compiler.verbose = False
            compiler.export("decode", SIGNATURES["decode"])(decode.py_func)
            compiler.export("draw_token", SIGNATURES["draw_token"])(draw_token.py_func)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiler.compile()
            built = next(Path(scratch).glob(f"{name}*"))
            target = directory / built.name
            shutil.move(str(built), str(target))
    except Exception as error:  # pycc links with the system's C compiler, which may be missing
        raise BuildError(f"kernels: not compiled ahead of time into {directory} ({type(error).__name__}: "
                         f"{error}); runs use numba's JIT of the same kernels") from error
    return target
