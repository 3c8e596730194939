"""stemforge: compose drums, bass and melody as MIDI and render them as synced WAV stems.

The public API, for scripts and notebooks (the `pipeline` command calls the same functions):

    from stemforge import RunRequest, run
    result = run(RunRequest(prompt="lofi 80bpm", stems=True))
    print(result.run_dir, result.manifest.midi)

Everything else lives in the role packages: `stemforge.symbolic` (conditions, tokens, the
composer, training), `stemforge.audio` (rendering, MusicGen), `stemforge.eval` (FAD,
novelty, reports), `stemforge.pipeline` (the CLI, the service). In the repository they are
the top-level folders symbolic/, audio/, eval/, pipeline/ and configs/; pyproject.toml maps
them under this one name, so installing stemforge adds a single top-level package.

Names are imported on first use: `import stemforge` stays cheap (no torch) until a name is
touched.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC: dict[str, str] = {
    "run": "stemforge.pipeline.run",
    "RunRequest": "stemforge.pipeline.request",
    "RunResult": "stemforge.pipeline.run",
    "RunManifest": "stemforge.symbolic.runtime.run_manifest",
    "render_run": "stemforge.pipeline.run",
    "compose": "stemforge.symbolic.runtime.compose",
    "Feel": "stemforge.symbolic.runtime.compose",
    "load_composer": "stemforge.symbolic.decoding.model",
    "Conditions": "stemforge.symbolic.music.conditions",
    "build_conditions": "stemforge.symbolic.music.conditions",
    "SamplingSettings": "stemforge.symbolic.runtime.sampling_settings",
    "Arrangement": "stemforge.symbolic.music.arrangement",
    "render_arrangement": "stemforge.audio.render",
    "write_stems": "stemforge.audio.render",
    "RenderOptions": "stemforge.audio.render",
    "prepare_dataset": "stemforge.symbolic.training.prepare",
    "PrepareConfig": "stemforge.symbolic.training.prepare",
    "train": "stemforge.symbolic.training.train",
    "TrainConfig": "stemforge.symbolic.training.train",
    "run_eval": "stemforge.eval.report",
    "EvalRequest": "stemforge.eval.report",
    "UserError": "stemforge.symbolic.core.errors",
}

__all__ = [
    "Arrangement",
    "Conditions",
    "EvalRequest",
    "Feel",
    "PrepareConfig",
    "RenderOptions",
    "RunManifest",
    "RunRequest",
    "RunResult",
    "SamplingSettings",
    "TrainConfig",
    "UserError",
    "build_conditions",
    "compose",
    "load_composer",
    "prepare_dataset",
    "render_arrangement",
    "render_run",
    "run",
    "run_eval",
    "train",
    "write_stems",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'stemforge' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports lazily
    from stemforge.audio.render import RenderOptions, render_arrangement, write_stems
    from stemforge.eval.report import EvalRequest, run_eval
    from stemforge.pipeline.request import RunRequest
    from stemforge.pipeline.run import RunResult, render_run, run
    from stemforge.symbolic.core.errors import UserError
    from stemforge.symbolic.decoding.model import load_composer
    from stemforge.symbolic.music.arrangement import Arrangement
    from stemforge.symbolic.music.conditions import Conditions, build_conditions
    from stemforge.symbolic.runtime.compose import Feel, compose
    from stemforge.symbolic.runtime.run_manifest import RunManifest
    from stemforge.symbolic.runtime.sampling_settings import SamplingSettings
    from stemforge.symbolic.training.prepare import PrepareConfig, prepare_dataset
    from stemforge.symbolic.training.train import TrainConfig, train
