"""run.json, typed: what a run folder holds and where. `pipeline run` writes it; `render`,
`eval`, `--from`, the service and the page read it through `RunManifest.read`, which checks
the format version, so a folder from a newer stemforge is refused with one line instead of
being half-understood.

    manifest = RunManifest.read(Path("runs/lofi"))
    manifest.conditions.bpm, manifest.midi_path("bass"), manifest.stem_paths()

The JSON keys are the field names (render fields sit at the top level, as the page reads
them); version 1 is every run.json stemforge has written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import write_atomic
from stemforge.symbolic.music.conditions import Conditions
from stemforge.symbolic.music.keys import parse_key

MANIFEST_VERSION = 1
MAX_NAME_LENGTH = 160
MANIFEST_NAME = "run.json"
FULL_MIDI = "full"  # the key of the all-parts MIDI file in `midi`


# the fields a render writes (the section "written when stems are rendered" below)
RENDER_FIELDS = ("stems", "mix", "sample_rate", "renderer", "soundfont", "kit", "preset", "dry", "tail",
                 "instruments", "warnings", "musicgen", "loudness")


def key_tag(key: str) -> str:
    """'F minor' -> 'Fmin', 'Eb major' -> 'Ebmaj': the key as sample packs write it in names."""
    parsed = parse_key(key)
    return f"{parsed.tonic_name}{'min' if parsed.mode == 'minor' else 'maj'}"


def take_tag(conditions: Conditions, model_sha256: str | None, output: dict | None = None) -> str:
    """'take3f2a': 4 hex digits of what made the files: the conditions with their seed, the
    model and `output`, what the files hold (the sha256 of every MIDI file, so every sampling
    setting, feel, seed clip or kept part that changes a note counts) and the render settings
    that turn them into audio (`pipeline.run.render_identity`). Anything that changes a file
    changes its name; the same request gets the same name."""
    identity = json.dumps([conditions.to_dict(), model_sha256, output or {}], sort_keys=True)
    return "take" + hashlib.sha256(identity.encode()).hexdigest()[:4]


def file_name_base(conditions: Conditions, model_sha256: str | None, output: dict | None = None) -> str:
    """What every file of a run is named after: 'lofi_80bpm_Fmin_take3f2a' (then '_bass.wav',
    '_mix.wav', '_full.mid'...): genre, tempo and key where a DAW's browser shows them, and
    unique per take and render, so two files that differ never share a name in one sample
    folder (see `take_tag`)."""
    return (f"{conditions.genre}_{conditions.bpm_label}bpm_{key_tag(conditions.key)}_"
            f"{take_tag(conditions, model_sha256, output)}")


def unsafe_relative_path(value: Any) -> bool:
    """Whether a path run.json gives (relative to its folder) could lead outside the folder:
    not a string, empty, absolute, with '..', a backslash or a NUL."""
    if not isinstance(value, str) or not value or "\\" in value or "\x00" in value:
        return True
    path = PurePosixPath(value)
    return path.is_absolute() or ".." in path.parts


def acid_root_note(key: str) -> int:
    """The MIDI note a WAV's ACID chunk names as the loop's root (the tonic, C4..B4)."""
    return 60 + parse_key(key).tonic


class ManifestError(UserError):
    """A run folder whose run.json is missing, unreadable or from another stemforge."""


class Section:
    """A table of run.json as a dataclass: written with the keys and in the order run.json has
    always held them (`to_dict`), read from any run.json stemforge wrote (`from_dict`: a key an
    older writer did not write is None; a key this one does not know is kept and written back).
    A section no run recorded (all None: a manifest made by hand) is written as `{}`, as before,
    and a key the table was read without stays out while it has no value (byte for byte).
    It reads like the table it is written as too (`section["key"]`, `.get`, `== {...}`), so a
    reader of the JSON and a reader of the manifest ask the same question the same way."""

    def __post_init__(self) -> None:
        self._unknown: dict[str, Any] = {}
        self._absent: set[str] = set()

    @classmethod
    def keys_of(cls) -> dict[str, str]:
        """JSON key -> field name (a field's metadata names a key Python cannot: "from")."""
        return {f.metadata.get("key", f.name): f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Any, where: str = "run.json"):
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: a {cls.__name__} table is expected, got {type(data).__name__}")
        keys = cls.keys_of()
        section = cls(**{keys[key]: value for key, value in data.items() if key in keys})
        section._unknown = {key: value for key, value in data.items() if key not in keys}
        section._absent = set(keys) - set(data)
        return section

    def to_dict(self) -> dict[str, Any]:
        values = {key: getattr(self, name) for key, name in self.keys_of().items()}
        if all(value is None for value in values.values()):
            return dict(self._unknown)
        # a key the table was read without (an older writer's, a quantized feel's groove) stays out
        return {**{k: v for k, v in values.items() if v is not None or k not in self._absent}, **self._unknown}

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Section, dict)):
            return self.to_dict() == (other.to_dict() if isinstance(other, Section) else other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment] - mutable, like the table it stands for


@dataclass(eq=False)
class SamplingRecord(Section):
    """run.json's `sampling`: the settings and the decoder that sampled the tokens."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    key_bias: float | None = None
    decoder: str | None = None


@dataclass(eq=False)
class ModelRecord(Section):
    """run.json's `model`: the composer's folder, the sha256 of its weights and of its data."""

    path: str | None = None
    sha256: str | None = None
    data_sha256: str | None = None


@dataclass(eq=False)
class ContextRecord(Section):
    """run.json's `context`: what the piece was composed around (a seed clip, the earlier run
    and its kept parts, a reference loop)."""

    seed_midi: str | None = None
    from_run: str | None = field(default=None, metadata={"key": "from"})
    keep: list[str] | None = None
    like: str | None = None


@dataclass(eq=False)
class TakeRecord(Section):
    """run.json's `take`: which of several takes composed together this one is."""

    number: int | None = None
    of: int | None = None
    decoder: str | None = None


@dataclass(eq=False)
class FeelRecord(Section):
    """run.json's `feel`: what timing was applied when the MIDI was written (compose.apply_groove)."""

    quantized: bool | None = None
    groove: str | None = None  # not written when quantized
    swing_percent: float | None = None


@dataclass(eq=False)
class SoundFontRecord(Section):
    """run.json's `soundfont`: the SoundFont the melodic parts were rendered with."""

    path: str | None = None
    sha256: str | None = None
    name: str | None = None


@dataclass(eq=False)
class KitRecord(SoundFontRecord):
    """run.json's `kit`: the drum sounds, a SoundFont drum bank, a Hydrogen kit or one-shots (`kind`)."""

    kind: str | None = None


@dataclass(eq=False)
class LoudnessRecord(Section):
    """run.json's `loudness`: the mix's integrated loudness and true peak, the target and
    ceiling they were leveled to and the gain that did it (audio.loudness)."""

    integrated_lufs: float | None = None
    true_peak_dbtp: float | None = None
    target_lufs: float | None = None
    true_peak_ceiling_dbtp: float | None = None
    gain_db: float | None = None
    limiting_db: float | None = None
    short_of_target_db: float | None = None


# the tables of run.json that are Sections, and their types
SECTIONS: dict[str, type[Section]] = {"sampling": SamplingRecord, "model": ModelRecord, "context": ContextRecord,
                                      "feel": FeelRecord, "take": TakeRecord, "soundfont": SoundFontRecord,
                                      "kit": KitRecord, "loudness": LoudnessRecord}


@dataclass
class RunManifest:
    conditions: Conditions
    seed: int
    midi: dict[str, str]  # role (and "full") -> MIDI file, relative to the run folder
    name: str = ""  # the base of every file name (`file_name_base`); "" in runs written before names
    prompt: str = ""
    model_genre: str = ""  # the genre label the model composed with (nearest known)
    sampling: SamplingRecord = field(default_factory=SamplingRecord)  # settings and the decoder that sampled
    model: ModelRecord = field(default_factory=ModelRecord)  # path, sha256, data_sha256
    context: ContextRecord = field(default_factory=ContextRecord)  # seed_midi, from, keep, like
    tokens: int = 0
    token_ids: list[int] = field(default_factory=list)  # the piece on the token grid, before the feel
    structure: dict[str, Any] = field(default_factory=dict)  # loop plan and chords
    feel: FeelRecord = field(default_factory=FeelRecord)
    tokens_sampled: int = 0
    tokens_forced: int = 0
    take: TakeRecord | None = None  # number, of, decoder: when composed as one of several takes
    # -- written when stems are rendered (what `audio.render` / `audio.musicgen` report)
    stems: dict[str, str] = field(default_factory=dict)  # role -> WAV, relative to the run folder
    mix: str | None = None
    sample_rate: int | None = None
    renderer: str | None = None
    soundfont: SoundFontRecord | None = None
    kit: KitRecord | None = None
    preset: str | None = None
    dry: bool | None = None
    tail: str | None = None
    instruments: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    musicgen: dict[str, Any] | None = None
    live_set: str | None = None  # the run's Ableton Live Set (every take: "../x.als" from a take's folder)
    dawproject: str | None = None  # the run's DAWproject (--dawproject), relative like live_set
    mixer: dict[str, dict[str, float]] | None = None  # an export's fader and pan per stem (volume_db, pan)
    # integrated loudness (LUFS) and true peak (dBTP) of the mix, the target and ceiling, the gain
    loudness: LoudnessRecord | None = None
    # -- bookkeeping
    files: dict[str, str] = field(default_factory=dict)  # every other file -> sha256
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    stemforge: int = MANIFEST_VERSION  # the format version

    def __post_init__(self) -> None:
        # tables given as dicts (as run.json holds them, or a caller writes them) become their Sections
        for name, section in SECTIONS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, section):
                setattr(self, name, section.from_dict(value, f"run.json: {name}"))

    # ---------------------------------------------------------------- reading and writing
    @classmethod
    def read(cls, run_dir: Path, what: str = "RUN_DIR") -> RunManifest:
        """run.json of `run_dir`; `what` names the flag or field the folder came from."""
        path = Path(run_dir) / MANIFEST_NAME
        if not Path(run_dir).is_dir():
            raise ManifestError(f"{what}: {run_dir} is not a folder; point it at a folder written by `pipeline run`")
        if not path.is_file():
            raise ManifestError(f"{what}: {run_dir} has no run.json; point it at a folder written by `pipeline run`")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ManifestError(f"{what}: {path} is not readable JSON ({error})") from error
        except RecursionError as error:  # '[[[[...' a hundred thousand deep
            raise ManifestError(f"{what}: {path} is nested too deeply to be a run.json; point it at a folder "
                                "written by `pipeline run`") from error
        return cls.from_dict(data, f"{what}: {path}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "run.json") -> RunManifest:
        if not isinstance(data, dict) or not isinstance(data.get("stemforge"), int):
            raise ManifestError(f"{where}: not a stemforge run manifest (no format version); point it at a folder "
                                "written by `pipeline run`")
        version = data["stemforge"]
        if version > MANIFEST_VERSION:
            raise ManifestError(f"{where}: written by a newer stemforge (run format {version}; this one reads up "
                                f"to {MANIFEST_VERSION}); upgrade stemforge to use it")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ManifestError(f"{where}: unknown field(s) {sorted(unknown)} for run format {version}")
        for name in ("conditions", "midi"):
            if not isinstance(data.get(name), dict):
                raise ManifestError(f"{where}: field '{name}' is missing; was it written by `pipeline run`?")
        defaults = {f.name: f.default_factory for f in dataclasses.fields(cls)
                    if f.default_factory is not dataclasses.MISSING}
        # a null where run.json holds a table or a list (hand-edited, or an older writer) is an empty one
        values = {name: defaults[name]() if value is None and name in defaults else value
                  for name, value in data.items()}
        try:
            manifest = cls(**{**values, "conditions": Conditions.from_dict(data["conditions"])})
        except (TypeError, ValueError) as error:
            raise ManifestError(f"{where}: {str(error).splitlines()[0]}") from error
        manifest._check_paths(where)
        return manifest

    def _check_paths(self, where: str) -> None:
        """Every file a run.json names stays inside its folder, and `name` is a bare file name
        base: `pipeline render` writes files named after it (a name of '../../x' wrote outside)."""
        if not isinstance(self.name, str) or self.name != PurePosixPath(self.name).name or self.name.startswith(".") \
                or "\\" in self.name or "\x00" in self.name or len(self.name) > MAX_NAME_LENGTH:
            raise ManifestError(f"{where}: name {str(self.name)[:60]!r} is not a file name (no folders, no leading "
                                "dot); was run.json edited by hand? Run `pipeline run` again")
        for field_name in ("midi", "stems", "files"):
            table = getattr(self, field_name)
            if not isinstance(table, dict):
                raise ManifestError(f"{where}: field '{field_name}' is not a table")
            paths = table.keys() if field_name == "files" else table.values()
            for relative in paths:
                if unsafe_relative_path(relative):
                    raise ManifestError(f"{where}: {field_name} names {str(relative)[:60]!r}, which is not a "
                                        "path inside the run folder; was run.json edited by hand?")
        for field_name in ("mix", "live_set", "dawproject"):
            relative = getattr(self, field_name)
            if field_name != "mix" and self.take is not None and isinstance(relative, str) \
                    and relative.startswith("../"):
                relative = relative[3:]  # a take names the run's one Live set beside its folder: one level up only
            if relative is not None and unsafe_relative_path(relative):
                raise ManifestError(f"{where}: {field_name} {str(relative)[:60]!r} is not a path inside the run "
                                    "folder; was run.json edited by hand?")

    def to_dict(self) -> dict:
        """The JSON document; fields without a value (a run without stems has no mix or sample
        rate, a single run no take) are left out, as run.json always did."""
        data = {name: value for name, value in dataclasses.asdict(self).items() if value is not None}
        data["conditions"] = self.conditions.to_dict()
        for name in SECTIONS:  # in their places, with run.json's own keys
            value = getattr(self, name)
            if name in data and isinstance(value, Section):
                data[name] = value.to_dict()
        return data

    def write(self, run_dir: Path) -> Path:
        """Write run.json (to a temporary name, then moved into place)."""
        return write_atomic(Path(run_dir) / MANIFEST_NAME, json.dumps(self.to_dict(), indent=1).encode())

    def add_render(self, info: dict) -> None:
        """Take the fields a renderer reports (stems, mix, sample rate, sounds, warnings...);
        a render replaces the previous one's fields entirely (`pipeline render --out`)."""
        unknown = set(info) - set(RENDER_FIELDS)
        if unknown:  # a renderer reporting a field run.json has no place for: a bug, not input
            raise TypeError(f"RunManifest.add_render: unknown field(s) {sorted(unknown)}")
        blank = RunManifest(conditions=self.conditions, seed=self.seed, midi={})
        for name in RENDER_FIELDS:
            setattr(self, name, info.get(name, getattr(blank, name)))
        self.__post_init__()  # the render's tables as their Sections

    # ---------------------------------------------------------------- the folder's layout
    def parts(self) -> list[str]:
        """The roles with their own MIDI file."""
        return [role for role in self.midi if role != FULL_MIDI]

    def midi_path(self, role: str, run_dir: Path) -> Path | None:
        relative = self.midi.get(role)
        return Path(run_dir) / relative if relative else None

    def stem_paths(self, run_dir: Path, with_mix: bool = False) -> dict[str, Path]:
        """role -> WAV path (and "mix" -> the mix when asked and rendered)."""
        paths = {role: Path(run_dir) / relative for role, relative in self.stems.items()}
        if with_mix and self.mix:
            paths["mix"] = Path(run_dir) / self.mix
        return paths

    def render_setup(self) -> dict[str, Any]:
        """What the stems were rendered with (renderer, sounds, sample rate, dry/tail)."""
        return {"renderer": self.renderer, "soundfont": self.soundfont.to_dict() if self.soundfont else None,
                "kit": self.kit.to_dict() if self.kit else None, "dry": self.dry, "tail": self.tail,
                "sample_rate": self.sample_rate}
