"""Audio for FAD, both sides: the generated stems and mixes of run folders, and the
reference — the training MIDI rendered through the runs' own renderer and kit (so timbre
does not dominate the distance), or a folder of the producer's stems/mixes/MIDI.

Each file is a `ClipSource` (a key of everything its audio depends on, and a loader), so
the caller can take its frames from the cache (eval/cache.py) or read/render, embed and
drop its clips one file at a time; `conform` brings any clip to one sample rate, channel
count and float scale.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.cache import code_digest, library_versions
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.hashing import file_sha256
from stemforge.symbolic.core.ticks import TICKS_PER_BAR
from stemforge.symbolic.music.arrangement import Arrangement, ArrangementError, midi_length_ticks, read_tracks
from stemforge.symbolic.music.conditions import GENRES, ROLES, Conditions, match_genre
from stemforge.symbolic.runtime.run_manifest import FULL_MIDI, ManifestError, RunManifest

AUDIO_SUFFIXES = (".wav", ".flac", ".aiff", ".aif", ".ogg", ".mp3")
MIDI_SUFFIXES = (".mid", ".midi")
MIX = "mix"
CLIP_ROLES: tuple[str, ...] = (*ROLES, MIX)


class EvalError(UserError):
    """Bad eval input; the one-line message names the file or field and what to do."""


@dataclass
class Clip:
    name: str  # run folder or reference file, for the report
    role: str  # drums | bass | melody | mix
    audio: np.ndarray  # float32 (channels, samples)
    sample_rate: int
    genre: str | None = None


# ---------------------------------------------------------------- audio I/O

def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """float32 (channels, samples) in [-1, 1] whatever the file's bit depth, and its rate."""
    import soundfile

    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError/RuntimeError on bad bytes
        raise EvalError(f"{path}: not a readable audio file ({error})") from error
    if not len(data):
        raise EvalError(f"{path}: the audio file is empty")
    return np.ascontiguousarray(data.T), int(sample_rate)


def conform(audio: np.ndarray, sample_rate: int, target_rate: int, channels: int) -> np.ndarray:
    """Resample to `target_rate` (soxr via librosa) and mix down / duplicate to `channels`.

    Integer audio is scaled to [-1, 1) by its bit depth; non-finite samples become 0."""
    import librosa

    signal = np.asarray(audio)
    if np.issubdtype(signal.dtype, np.integer):
        signal = signal.astype(np.float32) / float(np.iinfo(signal.dtype).max + 1)
    signal = np.nan_to_num(signal.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    if signal.ndim == 1:
        signal = signal[None]
    if channels == 1 and signal.shape[0] != 1:
        signal = signal.mean(axis=0, keepdims=True)
    elif channels == 2 and signal.shape[0] == 1:
        signal = np.repeat(signal, 2, axis=0)
    elif channels == 2 and signal.shape[0] > 2:
        signal = signal[:2]
    if sample_rate != target_rate:
        signal = librosa.resample(signal, orig_sr=sample_rate, target_sr=target_rate, res_type="soxr_hq", axis=-1)
    return np.ascontiguousarray(signal, dtype=np.float32)


def role_from_name(name: str) -> str:
    """Role a producer's file name suggests ('kick_drums.wav' -> drums); anything else is a mix."""
    lowered = Path(name).stem.lower()
    for role in ROLES:
        if role in lowered or (role == "drums" and "drum" in lowered):
            return role
    return MIX


# ---------------------------------------------------------------- run folders

def read_run(run_dir: Path) -> RunManifest:
    """run.json of a run folder, checked for what eval needs (MIDI, stems, mix)."""
    try:
        run = RunManifest.read(run_dir, "RUN_DIRS")
    except ManifestError as error:
        raise EvalError(str(error)) from error
    if not run.stems:
        raise EvalError(f"{run_dir / 'run.json'}: the run has no stems; render it (`pipeline run ... --stems` or "
                        "`pipeline render`) before eval")
    for role, path in run.stem_paths(run_dir, with_mix=True).items():
        if not path.is_file():
            raise EvalError(f"{path}: {role} audio listed in run.json is missing")
    return run


def run_tracks(run_dir: Path, run: RunManifest) -> dict[str, list]:
    """role -> notes of a run, from the full MIDI or the per-role files."""
    full = run.midi_path(FULL_MIDI, run_dir)
    paths = [full] if full else [run.midi_path(role, run_dir) for role in run.parts()]
    tracks: dict[str, list] = {}
    for path in paths:
        if not path.is_file():
            raise EvalError(f"{path}: MIDI listed in run.json is missing")
        try:
            for role, track in read_tracks(path).items():
                tracks.setdefault(role, track.notes)
        except ArrangementError as error:
            raise EvalError(str(error)) from error
    return tracks


@dataclass
class ClipSource:
    """One file whose clips are embedded together, described before anything is read or
    rendered: an audio file (one clip) or a MIDI file (rendered: one clip per role + mix).

    `key` holds everything the clips' audio depends on (the file's sha256; for MIDI also its
    genre/bpm and the renderer settings), so their frames can be cached under it and a second
    eval neither reads nor renders the file; `load` reads or renders the clips."""

    name: str  # run folder or reference file, as the clips are labelled
    genre: str | None
    key: dict
    load: Callable[[], list[Clip]]
    skip_unreadable: bool = False  # a producer's folder may hold a broken file: skip it, say so


def _audio_clips(path: Path, name: str, role: str, genre: str | None) -> list[Clip]:
    audio, sample_rate = read_audio(path)
    return [Clip(name, role, audio, sample_rate, genre)]


def audio_key(path: Path, role: str) -> dict:
    """An audio file's clip: its bytes and the role it is counted under (two stems with the
    same bytes, e.g. two silent parts, are still two roles)."""
    return {"kind": "audio", "sha256": file_sha256(path), "role": role}


def run_sources(run_dir: Path, run: RunManifest) -> list[ClipSource]:
    """A run's stems and mix, one source each."""
    genre = run.conditions.genre
    sources = []
    for role, path in run.stem_paths(run_dir, with_mix=True).items():
        clip_role = role if role in CLIP_ROLES else MIX
        sources.append(ClipSource(run_dir.name, genre, audio_key(path, clip_role),
                                  functools.partial(_audio_clips, path, run_dir.name, clip_role, genre)))
    return sources


# ---------------------------------------------------------------- reference

def reference_metadata(directory: Path) -> dict[str, dict]:
    """file name -> row of reference.json (genre, bpm, source...) when prepare wrote one."""
    table = directory / "reference.json"
    if not table.is_file():
        return {}
    try:
        return {row["file"]: row for row in json.loads(table.read_text())}
    except (json.JSONDecodeError, KeyError, TypeError):
        return {}


def arrangement_from_midi(path: Path, genre: str | None = None, bpm: float | None = None) -> Arrangement:
    """A stemforge Arrangement of a MIDI file: tracks by role, tempo from the file (or
    `bpm`), genre from metadata / the file name or 'pop', bars rounded up."""
    import symusic

    try:
        tracks = read_tracks(path)
        score = symusic.Score(str(path))
    except (ArrangementError, RuntimeError) as error:
        raise EvalError(f"{path}: not a readable MIDI file ({error})") from error
    if not tracks:
        raise EvalError(f"{path}: no track named drums/bass/melody (nor a drum track); not a stemforge MIDI")
    if bpm is None:
        bpm = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    # the file's own length (stemforge ends every track exactly at the last bar line) wins
    # over the last note, so a window whose last bar is silent keeps its bars; minus one tick
    # because other writers put end-of-track one tick after the last event
    end = max([t.end_tick() for t in tracks.values()] + [midi_length_ticks(path) - 1])
    bars = max(1, math.ceil(end / TICKS_PER_BAR))
    genre = genre if genre in GENRES else (match_genre(path.stem.replace("_", " ")) or "pop")
    return Arrangement(Conditions(genre=genre, bpm=round(float(bpm), 3), bars=bars), tracks)


def _asset_path(value: object) -> str | None:
    """run.json records a sound asset as {"path", "sha256", "name"} (or a bare path)."""
    if isinstance(value, dict):
        value = value.get("path")
    return str(value) if value else None


def render_options_for(runs: list[RunManifest]) -> tuple[object, list[str]]:
    """RenderOptions that render reference MIDI like the runs were rendered: the same
    SoundFont, drum kit, dry/tail settings and sample rate (first run wins). FX presets
    and instruments are left to each reference piece's own genre and programs, as the
    runs' were to theirs. Only fields RenderOptions has are passed on."""
    from stemforge.audio.render import RenderOptions

    names = {f.name for f in dataclasses.fields(RenderOptions)}
    notes: list[str] = []
    first = runs[0].render_setup()

    def setup(run: RunManifest) -> str:
        return json.dumps({k: _asset_path(v) if k in ("soundfont", "kit") else v for k, v in run.render_setup().items()},
                          sort_keys=True, default=str)

    if any(setup(run) != setup(runs[0]) for run in runs):
        notes.append("runs were rendered with different renderer settings; the reference uses the first run's")
    if first["renderer"] not in (None, "sample"):
        # MusicGen runs ~0.03x real time on a CPU: rendering a hundred references would take hours.
        notes.append(f"runs were rendered with {first['renderer']}; the reference MIDI is rendered with the "
                     "sample renderer, so part of the distance is timbre")
    values: dict = {"soundfont": _asset_path(first["soundfont"]), "kit": _asset_path(first["kit"]),
                    "dry": first["dry"], "tail": first["tail"], "sample_rate": first["sample_rate"]}
    if values["soundfont"] is not None:
        values["soundfont"] = Path(values["soundfont"])
        if not values["soundfont"].is_file():
            notes.append(f"the runs' SoundFont {values['soundfont']} is gone; the reference uses the default one")
            values["soundfont"] = None
    values = {k: v for k, v in values.items() if k in names and v is not None}
    return RenderOptions(**values), notes


def reference_genre(path: Path, row: dict) -> str | None:
    """Genre of a reference MIDI file: reference.json's, else the one its name suggests;
    None when neither knows (the renderer then uses 'pop' FX, but no genre is claimed)."""
    if row.get("genre") in GENRES:
        return row["genre"]
    return match_genre(path.stem.replace("_", " "))


def render_midi(path: Path, options: object, row: dict | None = None) -> list[Clip]:
    """One reference MIDI file through the sample renderer: one clip per role + the mix."""
    from stemforge.audio.render import render_arrangement

    row = row or {}
    arrangement = arrangement_from_midi(path, genre=row.get("genre"), bpm=row.get("bpm"))
    stems, _info = render_arrangement(arrangement, options)
    genre = arrangement.conditions.genre if reference_genre(path, row) else None
    clips = [Clip(path.name, role, np.asarray(audio, dtype=np.float32), int(stems.sample_rate), genre)
             for role, audio in stems.stems.items()]
    clips.append(Clip(path.name, MIX, np.asarray(stems.mix(), dtype=np.float32), int(stems.sample_rate), genre))
    return clips


# What rendered reference audio depends on besides the MIDI and RenderOptions: the renderer's
# code and the libraries that synthesize and process it.
RENDER_MODULES = ("stemforge.audio.render", "stemforge.audio.soundfont", "stemforge.audio.drumkit", "stemforge.audio.effects", "stemforge.audio.stems",
                  "stemforge.symbolic.music.arrangement", "stemforge.eval.reference")
RENDER_LIBRARIES = ("numpy", "pedalboard", "tinysoundfont")


def _asset_identity(value: object) -> dict | None:
    """A SoundFont or kit (file, folder, or the name of a found kit) by its content."""
    if value is None:
        return None
    from stemforge.audio.assets import find_sounds, sha256_of

    path = Path(str(value)).expanduser()
    if not path.exists():
        wanted = str(value).strip().lower()
        path = next((a.path for a in find_sounds() if a.name.lower() == wanted), path)
    if not path.exists():
        return {"name": str(value)}  # the renderer will refuse it; nothing gets cached
    return {"path": str(path.resolve()), "sha256": sha256_of(path)}


def _presets_identity(preset: object) -> dict:
    """The FX preset(s) by content: a named or YAML preset, else all shipped genre presets
    (each reference piece takes its own genre's)."""
    from stemforge.configs import CONFIG_DIR, resolve_config

    if preset is not None:
        try:
            path = resolve_config(str(preset), "render")
        except FileNotFoundError:
            return {"name": str(preset)}
        return {"path": str(path), "sha256": file_sha256(path)}
    shipped = sorted((CONFIG_DIR / "render").glob("*.yaml"))
    return {"genre_presets": {p.name: file_sha256(p) for p in shipped}}


def render_identity(options: object) -> dict:
    """Everything rendered reference audio depends on besides the MIDI file: the render
    options, the SoundFont and kit actually used (by sha256; no SoundFont named means the
    best one found here), the FX presets, the renderer's code and library versions."""
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    soundfont = values.get("soundfont")
    if soundfont is None and "soundfont" in values:
        from stemforge.audio.assets import best_soundfont

        soundfont = best_soundfont()
    return {
        "options": json.loads(json.dumps(values, sort_keys=True, default=str)),
        "soundfont": _asset_identity(soundfont),
        "kit": _asset_identity(values.get("kit")),
        "presets": _presets_identity(values.get("preset")),
        "code": code_digest(RENDER_MODULES),
        "libraries": library_versions(RENDER_LIBRARIES),
    }


@dataclass
class ReferenceSource:
    """What the reference is, before any audio is read or rendered."""

    kind: str  # "rendered_midi" | "folder"
    path: Path
    audio_files: list[Path]
    midi_files: list[Path]
    metadata: dict[str, dict]

    def __len__(self) -> int:
        return len(self.audio_files) + len(self.midi_files)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "audio_files": len(self.audio_files),
                "midi_files": len(self.midi_files)}


def find_reference(path: Path, kind: str) -> ReferenceSource:
    """Files of a reference folder (audio and/or MIDI, searched recursively)."""
    if not path.is_dir():
        raise EvalError(f"reference: {path} is not a folder; pass a folder of stems/mixes (wav/flac/aiff) or MIDI")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
    midi = [p for p in files if p.suffix.lower() in MIDI_SUFFIXES]
    if not audio and not midi:
        raise EvalError(f"reference: {path} holds no audio (wav/flac/aiff) or MIDI files; point --reference at "
                        "a folder of your stems/mixes or MIDI")
    return ReferenceSource(kind, path, audio, midi, reference_metadata(path))


def reference_sources(source: ReferenceSource, runs: list[RunManifest], warnings: list[str]) -> list[ClipSource]:
    """The reference as clip sources: its audio files as they are, its MIDI files rendered
    like the runs were (`render_options_for`). Notes about the rendering go to `warnings`."""
    sources = []
    for path in source.audio_files:
        relative = str(path.relative_to(source.path))
        role, genre = role_from_name(path.name), match_genre(relative.replace("_", " ").replace("/", " "))
        sources.append(ClipSource(relative, genre, audio_key(path, role),
                                  functools.partial(_audio_clips, path, relative, role, genre), skip_unreadable=True))
    if source.midi_files:
        try:
            options, notes = render_options_for(runs)
        except ImportError as error:
            raise EvalError(f"reference: rendering MIDI needs the sample renderer (audio.render): {error}") from error
        warnings.extend(notes)
        renderer = render_identity(options)
        for path in source.midi_files:
            row = source.metadata.get(path.name, {})
            key = {"kind": "midi", "sha256": file_sha256(path), "file": path.name, "genre": row.get("genre"),
                   "bpm": row.get("bpm"), "render": renderer}
            sources.append(ClipSource(path.name, reference_genre(path, row), key,
                                      functools.partial(render_midi, path, options, row)))
    return sources
