"""YAML configs shipped with the package: model/training sizes, render presets, corpus recipe."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")

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


def load_config(cls: type[T], path: Path, error: type[Exception], what: str = "config") -> T:
    """A dataclass from a YAML mapping whose keys are its fields; an unknown key, an
    unreadable file or a non-mapping raise `error` with a one-line message naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as problem:
        raise error(f"{path}: cannot read the {what} ({str(problem).splitlines()[0]})") from problem
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} is a mapping of keys to values")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"{path}: unknown {what} key(s) {unknown}; known: {', '.join(known)}")
    return cls(**data)
