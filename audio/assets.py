"""Sound assets on this machine: SoundFonts and drum kits, and their sha256 for run.json.

Looked for in, in order: folders listed in $STEMFORGE_SOUNDS (os.pathsep-separated),
~/.local/share/stemforge/{soundfonts,kits}, the system SoundFont folders that Debian's
packages fill (/usr/share/sounds/sf2, sf3, /usr/share/soundfonts), Hydrogen's kit folders
(/usr/share/hydrogen/data/drumkits, ~/.hydrogen/data/drumkits), and the TimGM6mb.sf2 that
pretty_midi ships (always there after pip install). A missing folder is skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from stemforge.audio.drumkit import AUDIO_SUFFIXES, ONE_SHOT_NAMES, _one_shot_key
from stemforge.symbolic.core.cache import default_cache_root
from stemforge.symbolic.core.hashing import file_sha256

SOUNDFONT_SUFFIXES = (".sf2", ".sf3")
SYSTEM_SOUNDFONT_DIRS = (
    "/usr/share/sounds/sf2",
    "/usr/share/sounds/sf3",
    "/usr/share/soundfonts",
    "/usr/local/share/soundfonts",
)
SYSTEM_KIT_DIRS = ("/usr/share/hydrogen/data/drumkits", "/usr/local/share/hydrogen/data/drumkits")
# Best first, by measurement with tinysoundfont: FluidR3 loads its presets in milliseconds;
# the MuseScore sf3 files need Vorbis decoding (~1 s for a piano melody) and their grand
# piano peaks ~25 dB below their other presets. Unknown SoundFonts rank by size, TimGM6mb last.
SOUNDFONT_PREFERENCE = ("FluidR3_GM", "MuseScore_General", "MuseScore_General_Lite", "FluidR3_GS")
FALLBACK_SOUNDFONT = "TimGM6mb"


@dataclass(frozen=True)
class SoundAsset:
    name: str
    kind: str  # "soundfont" | "kit"
    path: Path
    source: str  # where it was found: "pip (pretty_midi)", "system", "user", "$STEMFORGE_SOUNDS"


def _user_dirs() -> list[Path]:
    home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return [home / "stemforge"]


def _env_dirs() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get("STEMFORGE_SOUNDS", "").split(os.pathsep) if p]


def pip_soundfont() -> Path | None:
    """pretty_midi's TimGM6mb.sf2, located without importing pretty_midi (slow to import)."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "TimGM6mb.sf2"
    return path if path.exists() else None


def _is_one_shot_folder(folder: Path) -> bool:
    try:
        return any(
            p.suffix.lower() in AUDIO_SUFFIXES and _one_shot_key(p.stem)[0] in ONE_SHOT_NAMES
            for p in folder.iterdir()
        )
    except OSError:
        return False


def _scan(folder: Path, source: str, found: list[SoundAsset], depth: int = 1) -> None:
    """SoundFonts and kits in `folder` (and one level of subfolders)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_file() and entry.suffix.lower() in SOUNDFONT_SUFFIXES:
                found.append(SoundAsset(entry.stem, "soundfont", entry, source))
            elif entry.is_dir() and (entry / "drumkit.xml").exists():
                found.append(SoundAsset(entry.name, "kit", entry, source))
            elif entry.is_dir() and _is_one_shot_folder(entry):
                found.append(SoundAsset(entry.name, "kit", entry, source))
            elif entry.is_dir() and depth > 0:
                _scan(entry, source, found, depth - 1)
        except OSError:
            continue


def find_sounds() -> list[SoundAsset]:
    """Every SoundFont and drum kit found, without duplicates (symlinks resolved)."""
    found: list[SoundAsset] = []
    for folder in _env_dirs():
        _scan(folder, "$STEMFORGE_SOUNDS", found)
    for folder in _user_dirs():
        _scan(folder, "user", found)
    for folder in SYSTEM_SOUNDFONT_DIRS + SYSTEM_KIT_DIRS:
        _scan(Path(folder), "system", found)
    for folder in (Path.home() / ".hydrogen" / "data" / "drumkits",):
        _scan(folder, "user", found)
    pip_font = pip_soundfont()
    if pip_font is not None:
        found.append(SoundAsset(pip_font.stem, "soundfont", pip_font, "pip (pretty_midi)"))
    unique: dict[Path, SoundAsset] = {}
    for asset in found:
        try:
            real = asset.path.resolve()
        except OSError:
            continue
        if real not in unique:  # default-GM.sf2 -> FluidR3_GM.sf2 is listed by its real name
            name = real.stem if asset.kind == "soundfont" else asset.name
            unique[real] = SoundAsset(name, asset.kind, real, asset.source)
    return list(unique.values())


def soundfont_rank(asset: SoundAsset) -> tuple:
    if asset.name in SOUNDFONT_PREFERENCE:
        return (0, SOUNDFONT_PREFERENCE.index(asset.name))
    if asset.name == FALLBACK_SOUNDFONT:
        return (2, 0)
    try:
        size = asset.path.stat().st_size
    except OSError:
        size = 0
    return (1, -size)


def best_soundfont(assets: list[SoundAsset] | None = None) -> Path | None:
    fonts = [a for a in (assets if assets is not None else find_sounds()) if a.kind == "soundfont"]
    return min(fonts, key=soundfont_rank).path if fonts else None


def _cache_file() -> Path:
    return default_cache_root() / "sha256.json"


def _file_sha256(path: Path, cache: dict) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in cache:
        cache[key] = file_sha256(path)
    return cache[key]


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder (over its files' relative paths and digests).

    Digests are cached by path, size and mtime ($STEMFORGE_CACHE_DIR or ~/.cache/stemforge),
    so a 150 MB SoundFont is hashed once, not on every run.
    """
    cache_path = _cache_file()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    before = len(cache)
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\t{_file_sha256(file, cache)}\n".encode())
        result = digest.hexdigest()
    else:
        result = _file_sha256(path, cache)
    if len(cache) != before:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_path.with_name(f".{cache_path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(cache))
            os.replace(temporary, cache_path)
        except OSError:
            pass  # a read-only home only costs re-hashing next time
    return result
