"""The one typed request of a run: every `pipeline run` flag and every field of `POST /jobs` is a
field of `RunRequest`, described once here (its help, its CLI flag, its bounds in the API).

    request = RunRequest(prompt="lofi 80bpm", stems=True).check()

The CLI builds its flags from `request_fields()` (pipeline/cli.py), the service builds its
request model from them (pipeline/service.py), jobs travel to the workers as `to_json()`, and
`check()` is the one set of rules for a request that needs no file and no model: a CLI user
and an API client get the same message, naming the same field.

This module imports no torch (the CLI builds its flags from it before anything slow).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from stemforge.pipeline.errors import RunError
from stemforge.pipeline.renderers import RENDERERS, renderer_named
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.music.conditions import (
    DENSITIES,
    GENRES,
    LOOP_CHOICES,
    MAX_SEED,
    MAX_SWING_PERCENT,
    ROLES,
    parse_loop,
)
from stemforge.symbolic.music.genres import genre_entry
from stemforge.symbolic.runtime.sampling_settings import DECODERS, SamplingSettings

MAX_PROMPT_CHARS = 500
# the --swing help's examples, read from the genre table so they cannot drift from it
_EXAMPLE_SWINGS = ", ".join(f"{g} {genre_entry(g).groove.swing:g}" for g in ("jazz", "lofi", "house"))
MAX_TAKES = 16  # a take's KV cache is ~25 MB at the shipped model's 2048 tokens
TAILS = ("wrap", "cut")


# The sections of `pipeline run --help`, in order ("" = the top level).
GROUPS = {
    "steer": "what to compose (flags override the prompt)",
    "feel": "feel (applied when MIDI and stems are written)",
    "sampling": "sampling",
    "iterate": "iterate",
    "": "",
    "stems": "stems",
}


@dataclass(frozen=True)
class FieldSpec:
    """How one request field meets a user: its help, its CLI flag and its API bounds."""

    help: str
    group: str
    flag: str | None = ""  # "" = --name-with-dashes; None = not a CLI flag
    api: bool = True  # a field of POST /jobs (paths on the server's disk are not)
    api_default: Any = None  # where the API's default differs from the CLI's (see `has_api_default`)
    has_api_default: bool = False
    max_length: int | None = None  # strings, lists and dicts in the API
    item_max_length: int | None = None  # each item of a list or value of a dict in the API
    ge: float | None = None
    le: float | None = None
    choices: tuple | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # CLI text -> value, where it is not the field's type
    # How the page (and the API schema) present the field: a short label (the schema's title),
    # what leaving it empty means (the page's placeholder), and the values check() accepts where
    # they are not `choices` (argparse's own error would pre-empt check()'s message): the schema's enum.
    label: str | None = None
    unset: str | None = None
    menu: tuple | None = None


def _spec(default: Any, help: str, group: str, **how: Any) -> Any:
    spec = FieldSpec(help, group, has_api_default="api_default" in how, **how)
    if isinstance(default, dict | list | tuple) and default != ():
        return field(default_factory=lambda: type(default)(default), metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _roles(text: str) -> tuple[str, ...]:
    return tuple(role.strip() for role in text.split(",") if role.strip())


@dataclass
class RunRequest:
    # -- what to compose
    prompt: str = _spec("", 'free text, e.g. "lofi 80bpm in F minor, 16 bars, chill"', "steer", max_length=MAX_PROMPT_CHARS,
                        label="Prompt")
    genre: str | None = _spec(None, f"genre or a synonym ({', '.join(GENRES)})", "steer", max_length=40,
                              label="Genre", unset="from prompt")
    bpm: float | None = _spec(None, "exact tempo written to MIDI and WAV (1-300, fractions allowed); default: "
                              "from the prompt or the genre's usual tempo", "steer",
                              label="BPM", unset="prompt")
    key: str | None = _spec(None, "key like 'F minor', 'Am', 'C#m', 'Bb major'; default: from the prompt or "
                            "chosen by the seed", "steer", max_length=40, label="Key", unset="prompt")
    bars: int | None = _spec(None, "length in 4/4 bars (default: prompt or 8)", "steer", ge=1, le=1024,
                             label="Bars", unset="8")
    density: str | None = _spec(None, "note density (default: prompt words or normal)", "steer",
                                choices=DENSITIES, max_length=20, label="Density", unset="from prompt")
    loop: int | None = _spec(None, "structure: 8 (default) = phrases that develop (call and response, a varied "
                             "repeat, a contrasting B in 16 bars, drum fills every 8 bars); 1, 2 or 4 = an exact "
                             "loop of that many bars (bass and melody repeat, drums every 1-2 bars, a turn in the "
                             "last bar of each 4-bar phrase); off = through-composed lines over a steady groove "
                             "(default: prompt words like '2-bar loop', else 8)", "steer",
                             metavar="1|2|4|8|off", parse=parse_loop,
                             label="Loop", unset="prompt or 8", menu=LOOP_CHOICES)
    chords: str | None = _spec(None, "chord progression, one chord a bar ('Am F C G', 'Am7 | Dm7 G7') or roman "
                               "numerals in the key ('vi IV I V', 'ii-V-I'); '|' separates bars (default: prompt "
                               "words, else a progression drawn from real POP909 songs for the genre)", "steer",
                               max_length=200, label="Chords", unset="genre's")
    form: str | None = _spec(None, "sections and their bars, e.g. 'intro:4 verse:8 chorus:8 verse:8 chorus:8 "
                             "outro:4' (up to 64 bars; sections: intro, verse, pre-chorus, chorus, hook, bridge, solo, "
                             "interlude, head, build, drop, break, outro); a section named again plays its material "
                             "again (default: prompt words like 'verse and chorus', 'with a drop', 'full track', "
                             "else a form of the genre when more than 16 bars are asked)", "steer", max_length=400,
                             label="Form", unset="a loop (16 bars or fewer)")
    seed: int | None = _spec(None, "random seed; the same seed and inputs give identical files (default: a fresh "
                             "seed, recorded in run.json)", "steer", ge=0, le=MAX_SEED,
                             label="Seed", unset="random")
    like: Path | None = _spec(None, "a reference loop (WAV, FLAC, OGG, MP3): its tempo and key, estimated from the audio, "
                              "become the conditions unless --bpm/--key or the prompt name them; says what it found",
                              "steer", api=False)
    takes: int = _spec(1, f"compose N variations of one idea at once: the same key, tempo and chords, each take its "
                       f"own seed (--seed, --seed+1, ...) and its own folder take1..takeN in the run folder, and one "
                       f"Live set with a scene per take; batched, so N takes cost far less than N runs (1-{MAX_TAKES})", "steer", metavar="N",
                       ge=1, le=MAX_TAKES, label="Takes")
    # -- feel
    swing: float | None = _spec(None, f"swing of the off-beat 8ths/16ths in percent, 50 (straight) to "
                                f"{MAX_SWING_PERCENT:g}; 66.7 is triplet (default: the genre's groove, e.g. "
                                f"{_EXAMPLE_SWINGS})", "feel", metavar="PERCENT", ge=50, le=MAX_SWING_PERCENT,
                                label="Swing %", unset="genre's")
    quantize: bool = _spec(False, "every note exactly on the grid: no swing, micro-timing or groove velocities",
                           "feel", label="quantize")
    # -- sampling
    temperature: float = _spec(1.0, "sampling temperature (> 0)", "sampling", label="Temperature")
    top_k: int = _spec(0, "keep the k likeliest tokens (0 = off)", "sampling", ge=0, le=100_000,
                       label="Top-k")
    top_p: float = _spec(0.95, "nucleus sampling mass (1.0 = off)", "sampling", label="Top-p")
    key_bias: float = _spec(1.5, "how strongly bass and melody keep to the key: nats added to in-key pitches "
                            "(0 = only the key token steers)", "sampling", label="Key bias")
    decoder: str = _spec("int8", "what runs the model: int8 (one machine-code function per step, numba, over the "
                         "weights and KV cache rounded to int8: the fastest), compiled (the same over float32) or "
                         "torch (the float32 weights through torch). A seed gives the same notes again within one "
                         "decoder; run.json names the decoder",
                         "sampling", metavar="|".join(DECODERS), max_length=20,
                         label="Decoder", menu=DECODERS)
    # -- iterate on an earlier run
    seed_midi: Path | None = _spec(None, "a MIDI clip whose bars are kept verbatim; the rest of each of its parts "
                                   "is generated after them", "iterate", api=False)
    from_run: Path | None = _spec(None, "an earlier run folder to take conditions and kept parts from", "iterate",
                                  flag="--from", api=False)
    keep: tuple[str, ...] = _spec((), f"comma-separated roles of --from to keep ({','.join(ROLES)}); the other "
                                  "parts are regenerated around them", "iterate", parse=_roles, max_length=3,
                                  item_max_length=20, label="Keep")
    # -- where
    model: Path | None = _spec(None, "model directory (default: the composer shipped with stemforge)", "",
                               api=False)
    out: Path | None = _spec(None, "run folder to create (default: runs/<time>_<genre>_<bpm>bpm); never "
                             "overwritten", "", api=False)
    runs_root: Path = _spec(Path("runs"), "where default run folders go", "", flag=None, api=False)
    # -- stems
    stems: bool = _spec(False, "also render WAV stems and a mix", "stems", api_default=True, label="stems")
    renderer: str = _spec("sample", "sample: SoundFonts + drum kits + FX; musicgen: MusicGen-Melody conditioned on "
                          "the rendered melody (slow on CPU)", "stems", choices=tuple(RENDERERS), max_length=20,
                          label="Renderer")
    musicgen: str | None = _spec(None, "MusicGen-Melody weights for --renderer musicgen: a local folder (e.g. from "
                                 "finetune-musicgen) or a hub id such as facebook/musicgen-melody (downloaded only "
                                 "because you named it)", "stems", api=False)
    sample_rate: int = _spec(44100, "sample rate of every WAV in Hz: 22050, 32000, 44100, 48000, 88200 or 96000",
                             "stems", label="Sample rate")
    soundfont: Path | None = _spec(None, "SoundFont (.sf2/.sf3) for bass and melody (default: the best one found, "
                                   "see `pipeline sounds`)", "stems", api=False)
    kit: str | None = _spec(None, "drum kit: a SoundFont, a Hydrogen kit folder, a folder of one-shots (kick.wav, "
                            "snare.wav, hat.wav...) or a kit name from `pipeline sounds` (the API takes names only)",
                            "stems", max_length=200, label="Kit", unset="default")
    instruments: dict[str, str] = _spec({}, "GM program number or preset name per role, e.g. bass=33 or "
                                        "'melody=Electric Piano 1'; repeatable", "stems", flag="--instrument",
                                        metavar="ROLE=PRESET", max_length=3, item_max_length=60,
                                        label="Instruments", unset="role=preset, ...")
    preset: str | None = _spec(None, "effects preset (default: the genre's, see configs/render/)", "stems",
                               max_length=100, label="FX preset", unset="genre's")
    dry: bool = _spec(False, "no effects", "stems", label="dry (no FX)")
    tail: str = _spec("wrap", "wrap: reverb/release tails wrap to the loop start (seamless loops); cut: fade out",
                      "stems", choices=TAILS, max_length=20, label="Tails")
    dawproject: bool = _spec(False, "also write <name>.dawproject (Bitwig Studio, Studio One and other DAWs that "
                             "read DAWproject): tempo, a track per stem and per part, markers, every take as a "
                             "scene (see docs/daw.md)", "stems", label="DAWproject")
    section_loops: bool = _spec(False, "with a form (--form, or more than 16 bars): also each section's stems and "
                                "mix as loops of exactly its bars, sections/<name>_01_intro_drums.wav ... in form "
                                "order", "stems", label="Section loops")
    loudness_lufs: float | None = _spec(None, "integrated loudness of the mix in LUFS, e.g. -14 (streaming) or -9 "
                                        "(club); the stems are scaled together by one gain, so they still sum to the "
                                        "mix, never past the true-peak ceiling (default: the rendered level)",
                                        "stems", flag="--loudness", metavar="LUFS", ge=-40, le=-5,
                                        label="Loudness LUFS", unset="as rendered")
    true_peak_dbtp: float = _spec(-1.0, "true-peak ceiling of the mix and every stem in dBTP (4x oversampled, "
                                  "BS.1770), applied to every render", "stems", flag="--true-peak", metavar="DBTP",
                                  ge=-12, le=0, label="True peak dBTP")

    # ---------------------------------------------------------------- rules
    def check(self) -> RunRequest:
        """Every rule that needs no file and no model, naming the field at fault; returns self.
        Files, folders, the earlier run and the conditions are checked by `run.check_inputs`."""
        if len(self.prompt) > MAX_PROMPT_CHARS:  # the API bounds it too; a 20 MB prompt was parsed for minutes
            raise RunError(f"--prompt: {len(self.prompt)} characters; a prompt holds at most {MAX_PROMPT_CHARS}",
                           field="prompt")
        try:
            self.sampling_settings().validate()
        except UserError as error:
            raise RunError(f"--{str(error)}", field=error.field) from error
        if self.bpm is not None and not math.isfinite(self.bpm):
            raise RunError(f"--bpm: {self.bpm} is not a number; give a tempo in 1-300", field="bpm")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise RunError(f"--seed: {self.seed} is out of range; use 0-{MAX_SEED} (63 bits)", field="seed")
        if not 1 <= self.takes <= MAX_TAKES:
            raise RunError(f"--takes: {self.takes} takes; ask for 1-{MAX_TAKES}", field="takes")
        if self.swing is not None and not (math.isfinite(self.swing) and 50.0 <= self.swing <= MAX_SWING_PERCENT):
            raise RunError(f"--swing: {self.swing:g} is not a swing; use 50 (straight) to {MAX_SWING_PERCENT:g} "
                           "(66.7 is triplet)", field="swing")
        if self.loop is not None and self.loop not in LOOP_CHOICES:
            raise RunError(f"--loop: {self.loop} is not a loop length; use 1, 2, 4, 8 or off", field="loop")
        if self.density is not None and self.density not in DENSITIES:
            raise RunError(f"--density: {self.density!r} is not a density; use {', '.join(DENSITIES)}",
                           field="density")
        for role in self.keep:
            if role not in ROLES:
                raise RunError(f"--keep: unknown role {role!r}; roles are {', '.join(ROLES)}", field="keep")
        if self.keep and self.from_run is None:
            raise RunError("--keep: needs the run whose parts to keep (--from RUN_DIR; from_job in the API)",
                           field="keep")
        if set(self.keep) >= set(ROLES):
            raise RunError("--keep: keeping every role leaves nothing to regenerate; keep fewer roles", field="keep")
        if self.section_loops and not self.stems:
            raise RunError("--section-loops: needs --stems (the loops are cut from the stems)", field="section_loops")
        if self.stems:
            self.check_render_settings()
        return self

    def check_render_settings(self) -> None:
        """The render fields that need no file: renderer, sample rate, tail, instruments, loudness."""
        from stemforge.audio.render import check_settings

        renderer_named(self.renderer)  # an unknown renderer is refused naming the ones there are
        check_settings(self.render_options())
        self.loudness_settings().check()

    # ---------------------------------------------------------------- views
    def sampling_settings(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_k, self.top_p, self.key_bias, self.decoder)

    def loudness_settings(self):
        from stemforge.audio.loudness import LoudnessSettings

        return LoudnessSettings(self.loudness_lufs, self.true_peak_dbtp)

    def render_options(self):
        from stemforge.audio.render import RenderOptions

        return RenderOptions(sample_rate=self.sample_rate, soundfont=self.soundfont, kit=self.kit,
                             instruments=dict(self.instruments), preset=self.preset, dry=self.dry, tail=self.tail)

    def to_json(self) -> dict:
        """Plain JSON values (paths as strings): how a job travels to a worker and is stored."""
        values = dataclasses.asdict(self)
        for name, value in values.items():
            if isinstance(value, Path):
                values[name] = str(value)
            elif isinstance(value, tuple):
                values[name] = list(value)
        return values

    @classmethod
    def from_json(cls, values: dict) -> RunRequest:
        """The inverse of `to_json`; missing fields take their defaults (older stored jobs)."""
        hints = request_types()
        unknown = set(values) - set(hints)
        if unknown:  # a job stored by a newer stemforge: it fails with this line, never half-runs
            raise RunError(f"request: unknown field(s) {sorted(unknown)}; this stemforge does not know them")
        typed: dict[str, Any] = {}
        for name, value in values.items():
            hint = hints[name]
            if value is not None and Path in _members(hint):
                value = Path(value)
            elif get_origin(hint) is tuple:
                value = tuple(value or ())
            elif get_origin(hint) is dict:
                value = dict(value or {})
            typed[name] = value
        return cls(**typed)


def _members(hint: Any) -> tuple:
    return getattr(hint, "__args__", (hint,))


def request_types() -> dict[str, Any]:
    """Field name -> its type (resolved from the annotations)."""
    return get_type_hints(RunRequest)


def request_fields() -> Iterator[tuple[dataclasses.Field, FieldSpec]]:
    """Every field of RunRequest with its spec, in declaration order (the order of --help)."""
    for item in dataclasses.fields(RunRequest):
        yield item, item.metadata["spec"]


def cli_flag(item: dataclasses.Field, spec: FieldSpec) -> str | None:
    if spec.flag is None:
        return None
    return spec.flag or "--" + item.name.replace("_", "-")
