"""One installed namespace: `pip install` adds the single top-level package `stemforge`
(the repository's role folders map beneath it), and its public API resolves lazily."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import stemforge

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_to_the_object_its_module_defines() -> None:
    for name in stemforge.__all__:
        assert getattr(stemforge, name) is not None, name
    assert stemforge.run.__module__ == "stemforge.pipeline.run"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        stemforge.nothing  # noqa: B018


@pytest.mark.parametrize("module", ["stemforge", "stemforge.pipeline.cli", "stemforge.pipeline.request"])
def test_importing_the_package_or_the_cli_loads_no_heavy_library(module: str) -> None:
    """`pipeline --help` or a rejected flag answers in ~0.2 s: torch, transformers and librosa
    load only when a command composes, renders or evaluates."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers', 'librosa') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package_with_its_data(tmp_path: Path) -> None:
    # built from a copy: an in-tree build leaves build/ and *.egg-info in the checkout
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("stemforge", "symbolic", "audio", "eval", "pipeline", "configs"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(source)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("stemforge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"stemforge", wheel.name.split("-")[0] + "-" +
                                                 wheel.name.split("-")[1] + ".dist-info"}
    for needed in ("stemforge/pipeline/cli.py", "stemforge/symbolic/default_model/model.safetensors",
                   "stemforge/symbolic/music/progressions.json", "stemforge/configs/service.yaml",
                   "stemforge/configs/render/lofi.yaml", "stemforge/pipeline/static/index.html"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "stemforge.pipeline.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
