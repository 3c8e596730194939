"""The sample renderer: Arrangement -> StemSet (SoundFont melodic parts, drum kit, FX presets).

Every note is placed at `round(tick / ticks_per_beat * 60 / bpm * sample_rate)`, so a note
at MIDI time t starts at sample t * sample_rate (not within the ~20 ms drift of
tinysoundfont's own sequencer). Each stem is rendered past the loop end until its release
and FX tails die, then the tail is wrapped onto the loop start (`tail="wrap"`, loops
seamlessly) or cut with a short fade (`tail="cut"`). Stems are balanced to the preset's
levels and scaled together so their sum peaks at or below MIX_CEILING_DB.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemforge.audio.assets import SoundAsset, best_soundfont, find_sounds, sha256_of
from stemforge.audio.drumkit import GM_DRUM_NAMES, DrumKit, load_kit, render_drums, substitute_note
from stemforge.audio.effects import BLOCK_SAMPLES, RenderPreset, apply_chain, balance, load_preset
from stemforge.audio.soundfont import DRUM_BANK, NoteEvent, Preset, PresetSynth, SoundFontFile, read_soundfont
from stemforge.audio.stems import MIX_CEILING_DB, RenderError, StemSet, db_to_gain, loop_samples
from stemforge.audio.wav import write_wav_24bit_acid
from stemforge.symbolic.core.cores import usable_cores
from stemforge.symbolic.core.ticks import BEATS_PER_BAR
from stemforge.symbolic.music.arrangement import Arrangement, Track
from stemforge.symbolic.music.conditions import ROLES
from stemforge.symbolic.music.genres import genre_entry

__all__ = ["RenderError", "RenderOptions", "parse_instrument_flags", "render_arrangement", "write_stems"]

SUPPORTED_SAMPLE_RATES = (22050, 32000, 44100, 48000, 88200, 96000)
TAIL_MODES = ("wrap", "cut")
CUT_FADE_SECONDS = 0.010
TAIL_END_FADE_SECONDS = 0.050


@dataclass(frozen=True)
class RenderOptions:
    sample_rate: int = 44100
    soundfont: Path | None = None  # sf2/sf3; None = best found on this machine
    kit: str | None = None  # SoundFont drum bank, Hydrogen kit folder, one-shot folder, or a found kit's name
    instruments: dict[str, str] = field(default_factory=dict)  # role -> GM program (0-127) or preset name
    preset: str | None = None  # FX preset name or YAML path; None = the arrangement's genre
    dry: bool = False  # no FX
    tail: str = "wrap"  # "wrap" | "cut"


def parse_instrument_flags(values: list[str]) -> dict[str, str]:
    """["bass=33", "melody=Electric Piano 1"] -> {"bass": "33", "melody": "Electric Piano 1"}."""
    chosen: dict[str, str] = {}
    for value in values:
        role, sep, instrument = value.partition("=")
        role, instrument = role.strip().lower(), instrument.strip()
        if not sep or not instrument:
            raise RenderError(f"--instrument {value!r}: use ROLE=PROGRAM or ROLE=NAME, e.g. bass=33", field="instruments")
        if role not in ROLES:
            raise RenderError(f"--instrument {value!r}: unknown role {role!r}; use one of {', '.join(ROLES)}", field="instruments")
        if instrument.isdigit() and not 0 <= int(instrument) <= 127:
            raise RenderError(f"--instrument {value!r}: GM program must be 0-127", field="instruments")
        if not instrument.isdigit() and (len(instrument) > 60 or any(c in instrument for c in "/\\")):
            raise RenderError(f"--instrument {value[:80]!r}: give a GM program (0-127) or a preset name of the "
                              "SoundFont (`pipeline sounds` lists them), not a path; pick a SoundFont with --soundfont", field="instruments")
        chosen[role] = instrument
    return chosen


@dataclass
class _Drums:
    """Where drum sounds come from: a SoundFont drum bank or a sample kit."""

    kind: str  # "soundfont" | "hydrogen" | "oneshots"
    path: Path
    kit: DrumKit | None = None
    name: str = ""


def check_settings(options: RenderOptions) -> None:
    """The render settings that need no file: sample rate, tail, instruments (the service
    checks these too; it resolves presets and kits only by the names it lists)."""
    if options.sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise RenderError(
            f"--sample-rate {options.sample_rate}: unsupported; use one of "
            f"{', '.join(map(str, SUPPORTED_SAMPLE_RATES))}", field="sample_rate"
        )
    if options.tail not in TAIL_MODES:
        raise RenderError(f"--tail {options.tail!r}: use 'wrap' (loop-ready) or 'cut'", field="tail")
    parse_instrument_flags([f"{role}={name}" for role, name in options.instruments.items()])


def check_render_options(options: RenderOptions) -> None:
    """Every render flag checked before anything slow (composing comes first in a run): the
    sample rate, tail and roles, the FX preset, the SoundFont file and the kit. RenderError
    names the flag."""
    check_settings(options)
    if options.preset is not None:
        load_preset(options.preset)
    assets = find_sounds() if options.soundfont is None or options.kit is not None else []
    soundfont = _soundfont_path(options, assets)
    if options.kit is not None:
        _drums_source(options, soundfont, assets)


def _soundfont_path(options: RenderOptions, assets: list[SoundAsset]) -> Path:
    if options.soundfont is not None:
        path = Path(options.soundfont).expanduser()
        if not path.is_file():
            raise RenderError(
                f"--soundfont {path}: file not found; give an .sf2/.sf3 file "
                "(`pipeline sounds` lists the ones found)"
            )
        return path
    found = best_soundfont(assets)
    if found is None:
        raise RenderError(
            "soundfont: none found (pretty_midi's TimGM6mb.sf2 is missing); "
            "pass --soundfont FILE or reinstall pretty_midi"
        )
    return found


def _drums_source(options: RenderOptions, soundfont: Path, assets: list[SoundAsset]) -> _Drums:
    if options.kit is None:
        return _Drums("soundfont", soundfont)
    path = Path(options.kit).expanduser()
    if path.is_file():
        if path.suffix.lower() not in (".sf2", ".sf3"):
            raise RenderError(f"--kit {path}: a file kit must be a SoundFont (.sf2/.sf3)")
        return _Drums("soundfont", path)
    if path.is_dir():
        kit = load_kit(path)
        return _Drums(kit.kind, path, kit, kit.name)
    wanted = options.kit.strip().lower()
    for asset in assets:
        if asset.name.lower() == wanted:
            if asset.kind == "soundfont":
                return _Drums("soundfont", asset.path)
            kit = load_kit(asset.path)
            return _Drums(kit.kind, asset.path, kit, kit.name)
    names = sorted({a.name for a in assets})
    raise RenderError(f"--kit {options.kit!r}: no such file, folder or found kit; found: {', '.join(names)}")


def _choose_preset(
    font: SoundFontFile,
    role: str,
    track: Track,
    options: RenderOptions,
    render_preset: RenderPreset,
    warnings: list[str],
) -> Preset:
    drums = track.is_drum
    bank = DRUM_BANK if drums else 0
    asked = options.instruments.get(role)
    if asked is not None and not asked.isdigit():
        return font.find_by_name(asked, drums=drums)
    program = int(asked) if asked is not None else (render_preset.drum_program if drums else track.program)
    found = font.find(bank, program)
    if found is None:
        found = font.find(bank, 0) or next(
            (p for p in font.presets() if (p.bank == DRUM_BANK) == drums), None
        )
        if found is None:
            raise RenderError(f"{font.path}: has no {'drum kit' if drums else 'melodic preset'} for {role}")
        warnings.append(
            f"{font.path.name}: no {'drum kit' if drums else 'GM program'} {program} for {role}; "
            f"used {found.name} ({found.program})"
        )
    return found


def _note_events(
    track: Track, arrangement: Arrangement, sample_rate: int, length: int, warnings: list[str]
) -> list[NoteEvent]:
    samples_per_tick = 60.0 * sample_rate / (arrangement.ticks_per_beat * arrangement.conditions.bpm)
    events = []
    dropped = 0
    for note in track.notes:
        start = round(note.start * samples_per_tick)
        if start >= length or start < 0:
            dropped += 1
            continue
        end = min(length, max(start + 1, round((note.start + note.duration) * samples_per_tick)))
        events.append(NoteEvent(start, end, int(note.pitch), int(min(127, max(1, note.velocity)))))
    if dropped:
        warnings.append(
            f"{track.role}: {dropped} note(s) outside the {arrangement.conditions.bars} bars skipped"
        )
    return events


def fold_tail(audio: np.ndarray, length: int, tail: str, sample_rate: int) -> np.ndarray:
    """Exactly `length` samples: what rings past the end is added back at the start (wrap),
    or the end gets a short fade (cut)."""
    out = np.zeros((2, length), dtype=np.float32)
    head = audio[:, :length]
    out[:, : head.shape[1]] = head
    if tail == "wrap":
        for start in range(length, audio.shape[1], length):
            piece = audio[:, start : start + length]
            out[:, : piece.shape[1]] += piece
    else:
        fade = min(length, int(CUT_FADE_SECONDS * sample_rate))
        out[:, length - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def _trim_silence(audio: np.ndarray, length: int) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio[:, length:]).max(axis=0) > 1e-6)
    return audio[:, : length + (int(loud[-1]) + 1 if len(loud) else 0)]


def render_arrangement(
    arrangement: Arrangement,
    options: RenderOptions,
    progress: Callable[[str, float], None] | None = None,
) -> tuple[StemSet, dict]:
    """Render every track of `arrangement` to a stem; return the stems and what run.json records."""
    check_settings(options)
    if not arrangement.tracks:
        raise RenderError("arrangement: no tracks to render")
    report = progress or (lambda stage, fraction: None)
    conditions = arrangement.conditions
    sample_rate = options.sample_rate
    length = loop_samples(conditions.bars, conditions.bpm, sample_rate, BEATS_PER_BAR)
    loop_seconds = length / sample_rate
    warnings: list[str] = []
    render_preset = _render_preset(options, conditions.genre, warnings)
    assets = find_sounds() if options.soundfont is None or options.kit is not None else []

    drum_roles = [r for r, t in arrangement.tracks.items() if t.is_drum]
    melodic_roles = [r for r, t in arrangement.tracks.items() if not t.is_drum]
    soundfont_path = None
    if melodic_roles or (drum_roles and options.kit is None):
        soundfont_path = _soundfont_path(options, assets)
    drums = _drums_source(options, soundfont_path, assets) if drum_roles else None
    if drums is not None and drums.kit is not None and "drums" in options.instruments:
        warnings.append(
            f"--instrument drums={options.instruments['drums']} ignored: "
            f"drums come from the kit {drums.kit.name}"
        )

    report("load sounds", 0.0)
    events = {
        role: _note_events(t, arrangement, sample_rate, length, warnings)
        for role, t in arrangement.tracks.items()
    }
    fonts: dict[Path, SoundFontFile] = {}
    chosen: dict[str, tuple[SoundFontFile, Preset]] = {}
    for role, track in arrangement.tracks.items():
        if track.is_drum and drums.kit is not None:
            continue
        path = drums.path if track.is_drum else soundfont_path
        if path not in fonts:
            fonts[path] = read_soundfont(path)
        preset = _choose_preset(fonts[path], role, track, options, render_preset, warnings)
        chosen[role] = (fonts[path], preset)
        if track.is_drum:
            drums.name = f"{fonts[path].name}: {preset.name}"
            events[role] = _substitute_drum_keys(fonts[path], preset, events[role], warnings)
    synths: dict[Path, PresetSynth] = {}
    for path, font in fonts.items():
        played: dict[Preset, set[tuple[int, int]]] = {}
        for role, (role_font, preset) in chosen.items():
            if role_font is font:
                played.setdefault(preset, set()).update((e.key, e.velocity) for e in events[role])
        synths[path] = PresetSynth(font, list(played), sample_rate, played)

    def finish(role: str, raw: np.ndarray) -> np.ndarray:
        role_fx = render_preset.role(role)
        if not options.dry and role_fx.chain:
            padded = np.concatenate(
                [raw, np.zeros((2, int(render_preset.tail_seconds * sample_rate)), dtype=np.float32)], axis=1
            )
            raw = apply_chain(padded, sample_rate, role_fx.chain, conditions.bpm, loop_seconds)
            fade = int(
                TAIL_END_FADE_SECONDS * sample_rate
            )  # what still rings at the pad's end fades, not clicks
            raw[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        stem = fold_tail(_trim_silence(raw, length), length, options.tail, sample_rate)
        return balance(stem, sample_rate, role_fx.level_db)

    # FX run in threads while the next stem is synthesized: pedalboard and numpy release the GIL.
    # The costliest chain starts first, so it does not start last and leave a core idle.
    roles = list(arrangement.tracks)
    if not options.dry:
        roles.sort(key=lambda role: -render_preset.role(role).cost_ms_per_minute)
    with ThreadPoolExecutor(max_workers=max(1, min(len(roles), usable_cores()))) as pool:
        pending = {}
        for number, role in enumerate(roles):
            report(f"render {role}", number / (len(roles) + 1))
            if role in chosen:
                font, preset = chosen[role]
                raw = synths[font.path].render(preset, events[role], length)
            else:
                hits = [(e.start, e.key, e.velocity) for e in events[role]]
                raw = render_drums(drums.kit, hits, length, sample_rate)
            pending[role] = pool.submit(finish, role, raw)
        report("effects", len(roles) / (len(roles) + 1))
        stems = {role: pending[role].result() for role in arrangement.tracks}
    if drums is not None and drums.kit is not None:
        warnings.extend(drums.kit.warnings)
    _leave_headroom(stems)
    report("done", 1.0)
    stem_set = StemSet(sample_rate, conditions.bpm, conditions.bars, stems, BEATS_PER_BAR)
    return stem_set, _run_info(
        options, render_preset, soundfont_path if melodic_roles else None, drums, chosen, warnings
    )


def _render_preset(options: RenderOptions, genre: str, warnings: list[str]) -> RenderPreset:
    """The preset asked for, else the genre's own (its `render_preset` in configs/genres.yaml;
    one the genre names but configs/render lacks is an error naming both). Material without a
    genre label has none: rendered without FX, with a note."""
    if options.preset is not None:
        return load_preset(options.preset)
    name = genre_entry(genre).render_preset
    if name is None:
        warnings.append(f"preset: no FX preset for genre {genre!r}; rendered without FX")
        return RenderPreset(name=genre)
    try:
        return load_preset(name)
    except RenderError as error:
        raise RenderError(f"genre {genre!r}, render_preset: {error}") from error


def _substitute_drum_keys(
    font: SoundFontFile, preset: Preset, events: list[NoteEvent], warnings: list[str]
) -> list[NoteEvent]:
    """Notes the SoundFont drum kit lacks play its nearest drum sound instead (and say so)."""
    available = font.preset_keys(preset)
    missing = sorted({e.key for e in events} - available)
    if not missing or not available:
        return events
    mapping = {key: substitute_note(key, available) for key in missing}
    for key, used in mapping.items():
        warnings.append(
            f"{font.name} drum kit {preset.name}: no sound for drum note {key} "
            f"({GM_DRUM_NAMES.get(key, 'unknown')}); played note {used} "
            f"({GM_DRUM_NAMES.get(used, 'unknown')}) instead"
        )
    return [NoteEvent(e.start, e.end, mapping.get(e.key, e.key), e.velocity) for e in events]


def _leave_headroom(stems: dict[str, np.ndarray]) -> None:
    """Scale all stems by one gain so neither any stem nor their sum peaks above the ceiling.
    Measured block by block (BLOCK_SAMPLES), so the sum never exists as a whole stem: summed whole,
    16 bars took 2.2x the 8-bar time."""
    if not stems:
        return
    audio = list(stems.values())
    peak = 0.0
    for start in range(0, audio[0].shape[1], BLOCK_SAMPLES):
        blocks = [a[:, start:start + BLOCK_SAMPLES] for a in audio]
        total = blocks[0].copy()
        for block in blocks[1:]:
            total += block
        peak = max([peak, float(total.max()), float(-total.min())]
                   + [max(float(block.max()), float(-block.min())) for block in blocks])
    ceiling = db_to_gain(MIX_CEILING_DB)
    if peak > ceiling:
        scale = np.float32(ceiling / peak)
        for role in stems:
            stems[role] *= scale


def _asset_info(path: Path, name: str) -> dict:
    return {"path": str(path), "sha256": sha256_of(path), "name": name}


def _run_info(
    options: RenderOptions,
    render_preset: RenderPreset,
    soundfont_path: Path | None,
    drums: _Drums | None,
    chosen: dict[str, tuple[SoundFontFile, Preset]],
    warnings: list[str],
) -> dict:
    instruments: dict[str, dict] = {}
    for role, (font, preset) in chosen.items():
        instruments[role] = {
            "bank": preset.bank,
            "program": preset.program,
            "name": preset.name,
            "soundfont": font.name,
        }
    kit_info = None
    if drums is not None:
        kit_info = {**_asset_info(drums.path, drums.name), "kind": drums.kind}
        if drums.kit is not None:
            instruments["drums"] = {"kit": drums.kit.name}
    soundfont_info = None
    if soundfont_path is not None:
        font = next((f for f, _ in chosen.values() if f.path == soundfont_path), None)
        soundfont_info = _asset_info(soundfont_path, font.name if font else soundfont_path.stem)
    return {
        "renderer": "sample",
        "soundfont": soundfont_info,
        "kit": kit_info,
        "preset": None if options.dry else render_preset.name,
        "dry": options.dry,
        "tail": options.tail,
        "instruments": instruments,
        "warnings": warnings,
    }


def write_stems(stems: StemSet, out_dir: Path, name: str, root_note: int | None = None) -> dict:
    """Write stems/<name>_<role>.wav and <name>_mix.wav (24-bit, ACID tempo and beats; the key's
    `root_note` on the pitched stems and the mix, none on drums, which a DAW must not
    transpose). `name` is the run's file name base (`run_manifest.file_name_base`).

    Everything is written to a staging folder first and moved into place only when all
    files were written, so a failure leaves no half-written stems.
    """
    stems.check()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".stems-", dir=out_dir))
    names = {role: f"{name}_{role}.wav" for role in stems.stems}
    mix_name = f"{name}_mix.wav"
    files = [(staging / file_name, stems.stems[role], None if role == "drums" else root_note)
             for role, file_name in names.items()]
    files.append((staging / mix_name, stems.mix(), root_note))
    try:
        # side by side: the encoding (numpy) and the writes release the GIL
        with ThreadPoolExecutor(max_workers=max(1, min(len(files), usable_cores()))) as pool:
            for written in [pool.submit(write_wav_24bit_acid, path, audio, stems.sample_rate, stems.bpm, stems.beats,
                                        root_note=root) for path, audio, root in files]:
                written.result()
        (out_dir / "stems").mkdir(exist_ok=True)
        for file_name in names.values():
            os.replace(staging / file_name, out_dir / "stems" / file_name)
        os.replace(staging / mix_name, out_dir / mix_name)
    except OSError as error:
        raise RenderError(f"{out_dir}: cannot write stems ({error.strerror or error})") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "stems": {role: f"stems/{file_name}" for role, file_name in names.items()},
        "mix": mix_name,
        "sample_rate": stems.sample_rate,
    }
