"""FX presets (configs/render/<name>.yaml): pedalboard chains and levels per role.

A preset file:

    description: what it sounds like
    tail_seconds: 2.5        # how long the chain may ring past the loop end (wrapped or cut later)
    drum_program: 0          # SoundFont drum kit (bank 128) when drums come from a SoundFont
    roles:
      drums:
        level_db: -18        # gated RMS the stem is balanced to, dBFS
        chain:               # applied in order; one {effect: {params}} per entry
          - lowpass: {cutoff_hz: 6500}
          - reverb: {room_size: 0.2, wet_level: 0.1}

Only `build_preset` reads config; the effect dataclasses' fields are the keys (unknown key,
unknown effect or bad value = RenderError naming the file and the key).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from stemforge.audio.stems import RenderError, db_to_gain
from stemforge.symbolic.music.conditions import ROLES

# The sync contract allows a note to start within 1 ms of its grid time.
MAX_WOW_DEPTH_MS = 1.0
LEVEL_BLOCK_SECONDS = 0.05
MAX_LEVEL_CHANGE_DB = 36.0
BLOCK_SAMPLES = 1 << 16  # a chain runs over 1.5 s (0.5 MB of stereo float32) at a time: `apply_chain`


@dataclass(frozen=True)
class Lowpass:
    cutoff_hz: float

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.LowpassFilter(cutoff_frequency_hz=self.cutoff_hz)


@dataclass(frozen=True)
class Highpass:
    cutoff_hz: float

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.HighpassFilter(cutoff_frequency_hz=self.cutoff_hz)


@dataclass(frozen=True)
class LowShelf:
    cutoff_hz: float
    gain_db: float
    q: float = 0.707

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.LowShelfFilter(cutoff_frequency_hz=self.cutoff_hz, gain_db=self.gain_db, q=self.q)


@dataclass(frozen=True)
class HighShelf:
    cutoff_hz: float
    gain_db: float
    q: float = 0.707

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.HighShelfFilter(cutoff_frequency_hz=self.cutoff_hz, gain_db=self.gain_db, q=self.q)


@dataclass(frozen=True)
class Bitcrush:
    bit_depth: float

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.Bitcrush(bit_depth=self.bit_depth)


@dataclass(frozen=True)
class Distortion:
    """tanh waveshaping after `drive_db` of gain: pedalboard's Distortion, the same function
    (within 2e-7), in numpy: its scalar tanh cost 80-93 ms a minute of stereo, numpy's
    vectorized one 13 (bench/render.py measures every effect)."""

    drive_db: float

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.Distortion(drive_db=self.drive_db)  # checks the setting (`_build_effect`)

    def process_block(self, block: np.ndarray) -> np.ndarray:
        return np.tanh(block * np.float32(db_to_gain(self.drive_db)))


@dataclass(frozen=True)
class Gain:
    gain_db: float

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.Gain(gain_db=self.gain_db)


@dataclass(frozen=True)
class Compressor:
    threshold_db: float = -18.0
    ratio: float = 3.0
    attack_ms: float = 5.0
    release_ms: float = 120.0

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.Compressor(
            threshold_db=self.threshold_db,
            ratio=self.ratio,
            attack_ms=self.attack_ms,
            release_ms=self.release_ms,
        )


@dataclass(frozen=True)
class Reverb:
    room_size: float = 0.3
    damping: float = 0.5
    wet_level: float = 0.15
    dry_level: float = 0.85
    width: float = 1.0

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.Reverb(
            room_size=self.room_size,
            damping=self.damping,
            wet_level=self.wet_level,
            dry_level=self.dry_level,
            width=self.width,
        )


@dataclass(frozen=True)
class Delay:
    """Tempo-synced echo: `delay_beats` of a quarter note at the arrangement's bpm."""

    delay_beats: float = 0.75
    feedback: float = 0.3
    mix: float = 0.2

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.Delay(
            delay_seconds=self.delay_beats * 60.0 / bpm, feedback=self.feedback, mix=self.mix
        )


@dataclass(frozen=True)
class Chorus:
    rate_hz: float = 1.0
    depth: float = 0.25
    centre_delay_ms: float = 7.0
    feedback: float = 0.0
    mix: float = 0.3  # keep < 1: the dry path keeps onsets on the grid

    def plugin(self, bpm: float):
        import pedalboard

        return pedalboard.Chorus(
            rate_hz=self.rate_hz,
            depth=self.depth,
            centre_delay_ms=self.centre_delay_ms,
            feedback=self.feedback,
            mix=self.mix,
        )


@dataclass(frozen=True)
class WowFlutter:
    """Tape pitch wobble as a zero-centred modulated delay.

    Written here because pedalboard's Chorus modulates around a fixed centre delay, which
    would move every onset late; this read head swings ±depth around time zero, so onsets
    stay within the 1 ms sync contract and bar 1 stays at sample 0. Rates snap to a whole
    number of cycles per loop so the wobble itself loops seamlessly.
    """

    wow_rate_hz: float = 0.8
    wow_depth_ms: float = 0.6
    flutter_rate_hz: float = 6.0
    flutter_depth_ms: float = 0.05

    def process(self, audio: np.ndarray, sample_rate: int, loop_seconds: float) -> np.ndarray:
        count = audio.shape[1]
        if count < 2:
            return audio.copy()
        # The LFOs (< 20 Hz) are computed every 64 samples and interpolated: 3x faster, same sound.
        step = 64
        coarse_seconds = np.arange(0, count + step, step, dtype=np.float64) / sample_rate
        coarse = np.zeros(len(coarse_seconds))
        for rate_hz, depth_ms in (
            (self.wow_rate_hz, self.wow_depth_ms),
            (self.flutter_rate_hz, self.flutter_depth_ms),
        ):
            cycles = max(1, round(rate_hz * loop_seconds))
            phase = np.mod(cycles / loop_seconds * coarse_seconds, 1.0)
            coarse += depth_ms * 1e-3 * sample_rate * np.sin(2 * np.pi * phase)
        coarse = coarse.astype(np.float32)
        knots = np.arange(len(coarse), dtype=np.float32)
        out = np.empty_like(audio)
        # block by block, so the read head's arrays stay in the CPU's cache (a whole 16-bar
        # stem's took 2.3x the 8-bar time); each sample is computed as it was in one piece
        for start in range(0, count, BLOCK_SAMPLES):
            positions = np.arange(start, min(count, start + BLOCK_SAMPLES), dtype=np.int64)
            shift = -np.interp(positions.astype(np.float32) / step, knots, coarse).astype(np.float32)
            whole = np.floor(shift)  # read head = position + shift, |shift| <= depth
            fraction = shift - whole
            left = positions + whole.astype(np.int64)
            np.clip(left, 0, count - 2, out=left)
            out[:, start:start + len(positions)] = audio[:, left] * (1.0 - fraction) + audio[:, left + 1] * fraction
        return out


EFFECTS: dict[str, type] = {
    "lowpass": Lowpass,
    "highpass": Highpass,
    "low_shelf": LowShelf,
    "high_shelf": HighShelf,
    "bitcrush": Bitcrush,
    "distortion": Distortion,
    "gain": Gain,
    "compressor": Compressor,
    "reverb": Reverb,
    "delay": Delay,
    "chorus": Chorus,
    "wow_flutter": WowFlutter,
}


# What each effect costs (ms of CPU for one minute of 44.1 kHz stereo, run block by block as
# `apply_chain` runs it; `python bench/render.py` prints it for this machine). Only the order
# matters: the renderer starts the costliest chain first, so the longest one does not start last
# while the other core waits (0.43 -> 0.34 s for the three lofi stems).
COST_MS_PER_MINUTE: dict[type, float] = {
    Lowpass: 17, Highpass: 18, LowShelf: 20, HighShelf: 21, Bitcrush: 6, Distortion: 13, Gain: 5,
    Compressor: 44, Reverb: 121, Delay: 46, Chorus: 58, WowFlutter: 141,
}


@dataclass(frozen=True)
class RoleFx:
    level_db: float = -20.0
    chain: tuple = ()

    @property
    def cost_ms_per_minute(self) -> float:
        return sum(COST_MS_PER_MINUTE.get(type(effect), 0.0) for effect in self.chain)


@dataclass(frozen=True)
class RenderPreset:
    name: str
    description: str = ""
    tail_seconds: float = 2.0
    drum_program: int = 0
    roles: dict[str, RoleFx] = field(default_factory=dict)

    def role(self, role: str) -> RoleFx:
        return self.roles.get(role, RoleFx())


def _build_dataclass(cls: type, values: Any, where: str, source: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RenderError(f"{source}: {where} must be a mapping of settings, got {values!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RenderError(
            f"{source}: unknown key {unknown[0]!r} in {where}; known keys: {', '.join(sorted(known))}"
        )
    missing = [
        f.name
        for f in fields(cls)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in values
    ]
    if missing:
        raise RenderError(f"{source}: {where} needs {missing[0]!r}")
    for f in fields(cls):
        if f.name in values and f.type in ("float", "int") and not isinstance(values[f.name], int | float):
            raise RenderError(f"{source}: {where}.{f.name} must be a number, got {values[f.name]!r}")
    return cls(**values)


def _build_effect(entry: Any, where: str, source: str) -> Any:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise RenderError(f"{source}: {where} must be one {{effect: {{settings}}}} mapping, got {entry!r}")
    ((name, values),) = entry.items()
    if name not in EFFECTS:
        raise RenderError(f"{source}: unknown effect {name!r} in {where}; choose from {', '.join(EFFECTS)}")
    effect = _build_dataclass(EFFECTS[name], values, f"{where}.{name}", source)
    if isinstance(effect, WowFlutter) and effect.wow_depth_ms + effect.flutter_depth_ms > MAX_WOW_DEPTH_MS:
        raise RenderError(
            f"{source}: {where}.wow_flutter depths add up to more than {MAX_WOW_DEPTH_MS:g} ms, "
            "which would move notes off the grid"
        )
    if not isinstance(effect, WowFlutter):
        try:
            effect.plugin(120.0)  # pedalboard checks its own ranges
        except (ValueError, TypeError) as error:
            raise RenderError(f"{source}: {where}.{name}: {error}") from error
    return effect


def build_preset(data: Any, name: str, source: str) -> RenderPreset:
    """The one place that reads a preset's config."""
    if not isinstance(data, dict):
        raise RenderError(f"{source}: a render preset must be a YAML mapping")
    raw_roles = data.get("roles") or {}
    top = {k: v for k, v in data.items() if k != "roles"}
    base = _build_dataclass(RenderPreset, {**top, "name": name}, "preset", source)
    if not isinstance(raw_roles, dict):
        raise RenderError(f"{source}: roles must map a role ({', '.join(ROLES)}) to its settings")
    roles = {}
    for role, settings in raw_roles.items():
        if role not in ROLES:
            raise RenderError(f"{source}: unknown role {role!r} in roles; use {', '.join(ROLES)}")
        settings = dict(settings or {})
        chain = settings.pop("chain", None) or []
        if not isinstance(chain, list):
            raise RenderError(f"{source}: roles.{role}.chain must be a list of effects")
        level = _build_dataclass(RoleFx, settings, f"roles.{role}", source)
        effects = tuple(_build_effect(e, f"roles.{role}.chain[{i}]", source) for i, e in enumerate(chain))
        roles[role] = RoleFx(level_db=float(level.level_db), chain=effects)
    if not 0.0 <= base.tail_seconds <= 30.0:
        raise RenderError(f"{source}: tail_seconds {base.tail_seconds:g} must be between 0 and 30")
    if not 0 <= int(base.drum_program) <= 127:
        raise RenderError(f"{source}: drum_program {base.drum_program} must be 0-127")
    return RenderPreset(name, str(base.description), float(base.tail_seconds), int(base.drum_program), roles)


def available_presets() -> list[str]:
    from stemforge.configs import CONFIG_DIR

    return sorted(p.stem for p in (CONFIG_DIR / "render").glob("*.yaml"))


def load_preset(name_or_path: str | Path) -> RenderPreset:
    """A shipped preset by name (`lofi`) or a YAML file path."""
    import yaml

    from stemforge.configs import resolve_config

    try:
        path = resolve_config(name_or_path, "render")
    except FileNotFoundError as error:
        raise RenderError(
            f"--preset {str(name_or_path)!r}: not a YAML file or a shipped preset; "
            f"choose from {', '.join(available_presets())}"
        ) from error
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RenderError(f"{path}: not a readable YAML preset ({str(error).splitlines()[0]})") from error
    return build_preset(data, path.stem, str(path))


def apply_chain(
    audio: np.ndarray, sample_rate: int, chain: tuple, bpm: float, loop_seconds: float
) -> np.ndarray:
    """Run `chain` over float32 `(2, n)` audio (pad it first: pedalboard cuts tails at the input end).

    The effects between two WowFlutters (which reads a little ahead of itself) run block by
    block (BLOCK_SAMPLES), each block through all of them while it is in the CPU's cache, the
    pedalboard plugins keeping their state from block to block (`reset=False`: the same output
    as one call, bit for bit). Run effect by effect over a whole 16-bar stem instead, each one
    streamed the stem through memory: the lofi melody's chain took 3.8x its 8-bar time."""
    if not chain:
        return audio
    out = np.ascontiguousarray(audio, dtype=np.float32)
    stage: list = []
    for effect in chain + (None,):
        if effect is not None and not isinstance(effect, WowFlutter):
            stage.append(effect)
            continue
        if stage:
            out = _run_blocks(out, sample_rate, stage, bpm)
            stage = []
        if effect is not None:
            out = effect.process(out, sample_rate, loop_seconds)
    return np.ascontiguousarray(out, dtype=np.float32)


def _run_blocks(audio: np.ndarray, sample_rate: int, effects: list, bpm: float) -> np.ndarray:
    """`effects` (pedalboard's, and numpy's that work sample by sample) over `audio`, block by block."""
    import pedalboard

    steps: list = []  # a Pedalboard of consecutive plugins, or a numpy effect's process_block
    plugins: list = []
    for effect in effects + [None]:
        if effect is not None and not hasattr(effect, "process_block"):
            plugins.append(effect.plugin(bpm))
            continue
        if plugins:
            board = pedalboard.Pedalboard(plugins)
            steps.append(lambda block, board=board: board(block, sample_rate, reset=False))
            plugins = []
        if effect is not None:
            steps.append(effect.process_block)
    out = np.empty_like(audio)
    for start in range(0, audio.shape[1], BLOCK_SAMPLES):
        block = audio[:, start:start + BLOCK_SAMPLES]
        for step in steps:
            block = step(block)
        out[:, start:start + block.shape[1]] = block
    return out


def gated_level_db(audio: np.ndarray, sample_rate: int) -> float | None:
    """Loudness of the playing parts: mean power of 50 ms blocks within 20 dB of the loudest block.

    None for silence. Gating keeps a sparse part (one chord a bar) from being pushed up as
    if its rests were part of its level.
    """
    block = max(1, int(LEVEL_BLOCK_SECONDS * sample_rate))
    usable = audio.shape[1] // block * block
    if usable == 0:
        return None
    blocks = audio[:, :usable].reshape(audio.shape[0], -1, block)
    # one pass, no stem-sized temporaries (squaring the stem first made 16 bars 5x the 8-bar time)
    power = np.einsum("cbs,cbs->b", blocks, blocks, dtype=np.float64) / (audio.shape[0] * block)
    loudest = power.max()
    if loudest < 1e-12:
        return None
    gated = power[power >= loudest * 0.01]
    return float(10 * np.log10(gated.mean()))


def balance(audio: np.ndarray, sample_rate: int, level_db: float) -> np.ndarray:
    """Scale to `level_db` gated RMS (dBFS), within ±MAX_LEVEL_CHANGE_DB, in place."""
    level = gated_level_db(audio, sample_rate)
    if level is None:
        return audio
    change = float(np.clip(level_db - level, -MAX_LEVEL_CHANGE_DB, MAX_LEVEL_CHANGE_DB))
    audio *= np.float32(db_to_gain(change))
    return audio
