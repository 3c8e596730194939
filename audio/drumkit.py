"""Sample drum kits: Hydrogen kit folders and plain folders of one-shots.

A kit maps GM drum notes to sounds; a sound has velocity layers (Hydrogen: `min`/`max`
velocity per layer; one-shot folders: `snare-soft.wav`, `snare-hard.wav`, ... in order),
a gain and a pan. Velocity picks the layer and scales the gain. Samples load lazily (only
the sounds a pattern plays) and are resampled to the render rate with soxr.
Open/closed/pedal hi-hats choke each other as a drummer's foot does.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemforge.audio.stems import RenderError

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
CHOKE_FADE_SECONDS = 0.008
HAT_NOTES = (42, 44, 46)
HAT_CHOKE_GROUP = 1_000  # above any Hydrogen mute group id

GM_DRUM_NAMES: dict[int, str] = {
    35: "Acoustic Bass Drum",
    36: "Bass Drum 1",
    37: "Side Stick",
    38: "Acoustic Snare",
    39: "Hand Clap",
    40: "Electric Snare",
    41: "Low Floor Tom",
    42: "Closed Hi-Hat",
    43: "High Floor Tom",
    44: "Pedal Hi-Hat",
    45: "Low Tom",
    46: "Open Hi-Hat",
    47: "Low-Mid Tom",
    48: "Hi-Mid Tom",
    49: "Crash Cymbal 1",
    50: "High Tom",
    51: "Ride Cymbal 1",
    52: "Chinese Cymbal",
    53: "Ride Bell",
    54: "Tambourine",
    55: "Splash Cymbal",
    56: "Cowbell",
    57: "Crash Cymbal 2",
    58: "Vibraslap",
    59: "Ride Cymbal 2",
    60: "Hi Bongo",
    61: "Low Bongo",
    62: "Mute Hi Conga",
    63: "Open Hi Conga",
    64: "Low Conga",
    65: "High Timbale",
    66: "Low Timbale",
    67: "High Agogo",
    68: "Low Agogo",
    69: "Cabasa",
    70: "Maracas",
    71: "Short Whistle",
    72: "Long Whistle",
    73: "Short Guiro",
    74: "Long Guiro",
    75: "Claves",
    76: "Hi Wood Block",
    77: "Low Wood Block",
    78: "Mute Cuica",
    79: "Open Cuica",
    80: "Mute Triangle",
    81: "Open Triangle",
}

# The closest sounds to play when a kit lacks a drum note, best first.
DRUM_SUBSTITUTES: dict[int, tuple[int, ...]] = {
    35: (36,),
    36: (35,),
    37: (40, 38, 75, 76),
    38: (40, 37, 39),
    39: (38, 40, 37),
    40: (38, 37, 39),
    41: (43, 45, 47, 48, 50),
    43: (41, 45, 47, 48),
    45: (47, 43, 48, 41),
    47: (45, 48, 43, 50),
    48: (50, 47, 45),
    50: (48, 47, 45),
    42: (44, 46, 70, 69, 51),
    44: (42, 46),
    46: (42, 44, 51, 49),
    49: (57, 55, 52, 51, 46),
    57: (49, 55, 52, 51),
    55: (49, 57, 52, 46),
    52: (49, 57, 55),
    51: (59, 53, 42, 46),
    59: (51, 53, 42),
    53: (51, 59, 56),
    54: (70, 69, 42),
    56: (75, 76, 53, 37),
    58: (54, 70),
    60: (61, 62, 63, 48),
    61: (60, 64, 63, 45),
    62: (63, 60, 64),
    63: (62, 64, 60),
    64: (63, 61, 45),
    65: (66, 50, 48),
    66: (65, 47, 45),
    67: (68, 56, 76),
    68: (67, 56, 77),
    69: (70, 54, 42),
    70: (69, 54, 42),
    71: (72, 81),
    72: (71, 81),
    73: (74, 69, 70),
    74: (73, 69, 70),
    75: (76, 37, 77),
    76: (77, 75, 37),
    77: (76, 75, 37),
    78: (79, 62),
    79: (78, 63),
    80: (81, 53),
    81: (80, 53),
}

# One-shot file names (letters only, any case) -> GM drum note.
ONE_SHOT_NAMES: dict[str, int] = {
    **dict.fromkeys(("kick", "bd", "bassdrum", "kickdrum"), 36),
    **dict.fromkeys(("acousticbassdrum", "bassdrumacoustic"), 35),
    **dict.fromkeys(("snare", "sd", "snaredrum"), 38),
    **dict.fromkeys(("electricsnare", "snarerimshot", "rimshot"), 40),
    **dict.fromkeys(("rim", "sidestick", "stick", "rs"), 37),
    **dict.fromkeys(("clap", "handclap", "cp"), 39),
    **dict.fromkeys(
        (
            "hat",
            "hihat",
            "hh",
            "chh",
            "ch",
            "closedhat",
            "hatclosed",
            "closedhihat",
            "hihatclosed",
            "closedhh",
        ),
        42,
    ),
    **dict.fromkeys(("pedalhat", "hatpedal", "pedalhihat", "hihatpedal", "phh"), 44),
    **dict.fromkeys(("openhat", "hatopen", "ohh", "oh", "openhihat", "hihatopen", "openhh"), 46),
    **dict.fromkeys(("floortom", "tomfloor", "lowtom", "tomlow", "lt"), 41),
    **dict.fromkeys(("tom", "midtom", "tommid", "mt"), 45),
    **dict.fromkeys(("hightom", "tomhigh", "hitom", "tomhi", "ht"), 50),
    **dict.fromkeys(("crash", "crashcymbal", "cymbal", "cy"), 49),
    **dict.fromkeys(("ride", "ridecymbal", "rd"), 51),
    **dict.fromkeys(("ridebell", "bell"), 53),
    **dict.fromkeys(("splash",), 55),
    **dict.fromkeys(("china",), 52),
    **dict.fromkeys(("tambourine", "tamb"), 54),
    **dict.fromkeys(("cowbell", "cb"), 56),
    **dict.fromkeys(("shaker", "maracas", "maraca"), 70),
    **dict.fromkeys(("cabasa",), 69),
    **dict.fromkeys(("conga",), 63),
    **dict.fromkeys(("bongo",), 60),
    **dict.fromkeys(("clave", "claves"), 75),
    **dict.fromkeys(("woodblock", "block"), 76),
    **dict.fromkeys(("triangle",), 81),
}
# Words in one-shot names that name a velocity layer -> order (softest first). Trailing
# numbers (snare_1.wav, snare_2.wav) order layers too.
LAYER_WORDS: dict[str, int] = {
    "softest": 1,
    "soft": 2,
    "quiet": 2,
    "med": 3,
    "medium": 3,
    "hard": 4,
    "loud": 4,
    "hardest": 5,
}


@dataclass
class DrumLayer:
    path: Path
    min_velocity: float  # 0-1, as Hydrogen writes it
    max_velocity: float
    gain: float = 1.0
    audio: np.ndarray | None = None  # (2, samples) at the render rate, once loaded


@dataclass
class DrumSound:
    name: str
    layers: list[DrumLayer]
    gain: float = 1.0
    pan: float = 0.0  # -1 left .. 1 right
    choke_group: int = -1  # sounds of one group cut each other off

    def layer_for(self, velocity: int) -> DrumLayer:
        level = velocity / 127.0
        for layer in self.layers:
            if layer.min_velocity <= level <= layer.max_velocity:
                return layer
        return min(self.layers, key=lambda x: min(abs(level - x.min_velocity), abs(level - x.max_velocity)))


@dataclass
class DrumKit:
    name: str
    path: Path
    kind: str  # "hydrogen" | "oneshots"
    sounds: dict[int, DrumSound]  # GM note -> sound
    warnings: list[str] = field(default_factory=list)
    _substitutes: dict[int, int] = field(default_factory=dict)

    def sound_for(self, note: int) -> tuple[int, DrumSound]:
        """The kit's sound for a GM drum note, or the nearest one (said once in `warnings`)."""
        if note in self.sounds:
            return note, self.sounds[note]
        if note not in self._substitutes:
            chosen = substitute_note(note, set(self.sounds))
            self._substitutes[note] = chosen
            self.warnings.append(
                f"kit {self.name}: no sound for drum note {note} ({GM_DRUM_NAMES.get(note, 'unknown')}); "
                f"played {self.sounds[chosen].name} ({chosen}) instead"
            )
        chosen = self._substitutes[note]
        return chosen, self.sounds[chosen]


def substitute_note(note: int, available: set[int]) -> int:
    """The nearest drum sound to `note` among `available` GM notes (same family first)."""
    for candidate in DRUM_SUBSTITUTES.get(note, ()):
        if candidate in available:
            return candidate
    return min(available, key=lambda n: (abs(n - note), n))


def load_kit(path: Path) -> DrumKit:
    """A Hydrogen kit folder (has drumkit.xml) or a folder of one-shots; RenderError otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise RenderError(
            f"{path}: kit folder not found; give a Hydrogen kit folder, a folder of "
            "one-shots (kick.wav, snare.wav, hat.wav, ...) or a SoundFont"
        )
    if (path / "drumkit.xml").exists():
        return load_hydrogen_kit(path)
    return load_one_shot_folder(path)


def _float(element: ElementTree.Element, tag: str, default: float) -> float:
    found = element.find(tag)
    try:
        return float(found.text) if found is not None and found.text else default
    except ValueError:
        return default


def load_hydrogen_kit(folder: Path) -> DrumKit:
    """Read drumkit.xml (Hydrogen 0.9 `layer`/`pan_L`/`pan_R` and 1.x `instrumentComponent`/`pan`)."""
    xml_path = folder / "drumkit.xml"
    try:
        root = ElementTree.parse(xml_path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise RenderError(f"{xml_path}: not a readable Hydrogen drumkit.xml ({error})") from error
    for element in root.iter():  # drop the namespace so tags read plainly
        element.tag = element.tag.rsplit("}", 1)[-1]
    name = (root.findtext("name") or folder.name).strip()
    sounds: dict[int, DrumSound] = {}
    instruments = root.findall("./instrumentList/instrument")
    for position, instrument in enumerate(instruments):
        number = int(_float(instrument, "id", position))
        note = int(_float(instrument, "midiOutNote", 36 + number))  # Hydrogen maps id i to note 36+i
        layers = [
            DrumLayer(
                folder / (layer.findtext("filename") or "").strip(),
                _float(layer, "min", 0.0),
                _float(layer, "max", 1.0),
                _float(layer, "gain", 1.0),
            )
            for layer in instrument.iter("layer")
            if (layer.findtext("filename") or "").strip()
        ]
        if not layers or instrument.findtext("isMuted") == "true" or note in sounds:
            continue
        if instrument.find("pan") is not None:
            pan = _float(instrument, "pan", 0.0)
        else:  # 0.9 kits: per-side gains, 1/1 is centre
            pan = _float(instrument, "pan_R", 1.0) - _float(instrument, "pan_L", 1.0)
        group = int(_float(instrument, "muteGroup", -1))
        sounds[note] = DrumSound(
            (instrument.findtext("name") or f"instrument {number}").strip(),
            layers,
            gain=_float(instrument, "volume", 1.0) * _float(instrument, "gain", 1.0),
            pan=float(np.clip(pan, -1.0, 1.0)),
            choke_group=group if group >= 0 else (HAT_CHOKE_GROUP if note in HAT_NOTES else -1),
        )
    if not sounds:
        raise RenderError(f"{xml_path}: the kit has no instrument with a sample")
    return DrumKit(name, folder, "hydrogen", sounds)


def _one_shot_key(stem: str) -> tuple[str, int]:
    """'Snare-Hard_02' -> ('snare', layer rank): the instrument name and a softest-first rank."""
    rank = 0
    kept: list[str] = []
    for word in re.split(r"[^a-z0-9]+", stem.lower()):
        split = re.fullmatch(r"([a-z]*?)(?:v?(\d+))?", word)  # "clap2" -> clap, 2; "snarev3" -> snare, 3
        letters, number = (split.group(1), split.group(2) or "") if split else (word, "")
        if letters in LAYER_WORDS:
            rank = 100 * LAYER_WORDS[letters]
        elif letters:
            kept.append(letters)
        if number and kept:  # "snare_2", "clap2", "snare_v2": a layer; a leading "808_" names nothing
            rank += int(number)
    return "".join(kept), rank


def load_one_shot_folder(folder: Path) -> DrumKit:
    grouped: dict[int, list[tuple[int, Path]]] = {}
    names: dict[int, str] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES or path.name.startswith("."):
            continue
        key, rank = _one_shot_key(path.stem)
        note = ONE_SHOT_NAMES.get(key)
        if note is None:
            continue
        grouped.setdefault(note, []).append((rank, path))
        names.setdefault(note, key)
    if not grouped:
        raise RenderError(
            f"{folder}: no drum one-shots found; name them by instrument (kick.wav, snare.wav, hat.wav, "
            "openhat.wav, clap.wav, ...) or give a Hydrogen kit folder / SoundFont"
        )
    sounds = {}
    for note, files in grouped.items():
        files.sort()
        step = 1.0 / len(files)
        layers = [DrumLayer(p, i * step, (i + 1) * step) for i, (_, p) in enumerate(files)]
        sounds[note] = DrumSound(
            names[note], layers, choke_group=HAT_CHOKE_GROUP if note in HAT_NOTES else -1
        )
    return DrumKit(folder.name, folder, "oneshots", sounds)


def _load_layer(layer: DrumLayer, sample_rate: int) -> np.ndarray:
    if layer.audio is not None:
        return layer.audio
    import soundfile

    try:
        audio, rate = soundfile.read(str(layer.path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        raise RenderError(f"{layer.path}: cannot read drum sample ({error}); replace or remove it") from error
    if audio.shape[0] == 0:
        raise RenderError(f"{layer.path}: drum sample is empty")
    if rate != sample_rate:
        import soxr  # librosa's resampler; imports in milliseconds (scipy.signal takes ~1 s)

        audio = soxr.resample(audio, rate, sample_rate, quality="HQ").astype(np.float32)
    audio = audio[:, :2] if audio.shape[1] >= 2 else np.repeat(audio, 2, axis=1)
    layer.audio = np.ascontiguousarray(audio.T)
    return layer.audio


def render_drums(kit: DrumKit, hits: list[tuple[int, int, int]], length: int, sample_rate: int) -> np.ndarray:
    """Float32 `(2, n >= length)`: each (sample offset, GM note, velocity) hit placed exactly.

    Hits ring out past `length` (the caller wraps or cuts that tail); a hit in a choke
    group is faded out when the next hit of its group starts.
    """
    voices = []
    for start, note, velocity in sorted(hits):
        _, sound = kit.sound_for(note)
        layer = sound.layer_for(velocity)
        audio = _load_layer(layer, sample_rate)
        gain = sound.gain * layer.gain * velocity / 127.0
        pan_gains = np.array([min(1.0, 1.0 - sound.pan), min(1.0, 1.0 + sound.pan)], dtype=np.float32)
        voices.append([start, audio, gain * pan_gains[:, None], sound.choke_group, audio.shape[1]])
    last_in_group: dict[int, list] = {}
    for voice in voices:
        group = voice[3]
        if group >= 0:
            previous = last_in_group.get(group)
            if previous is not None and previous[0] < voice[0]:
                previous[4] = min(previous[4], voice[0] - previous[0])
            last_in_group[group] = voice
    fade = int(CHOKE_FADE_SECONDS * sample_rate)
    total = max([length] + [v[0] + v[4] + fade for v in voices])
    out = np.zeros((2, total), dtype=np.float32)
    for start, audio, gains, _, played in voices:
        end = min(audio.shape[1], played + fade)
        piece = audio[:, :end] * gains
        if end < audio.shape[1]:  # choked: a short fade instead of a click
            piece[:, played:end] *= np.linspace(1.0, 0.0, end - played, dtype=np.float32)
        out[:, start : start + end] += piece
    return out
