"""YAML configs shipped with the package: model/training sizes, render presets, corpus recipe."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def resolve_config(name_or_path: str | Path, subdir: str) -> Path:
    """A shipped config by short name (`tiny` -> configs/<subdir>/tiny.yaml) or a path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    shipped = CONFIG_DIR / subdir / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    available = sorted(p.stem for p in (CONFIG_DIR / subdir).glob("*.yaml"))
    raise FileNotFoundError(
        f"config: {name_or_path!r} is neither a YAML file nor a shipped {subdir} config "
        f"({', '.join(available) or 'none shipped'})"
    )
