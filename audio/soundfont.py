"""SoundFont (sf2/sf3) presets rendered note by note at exact sample offsets.

Two things tinysoundfont does not do well enough on its own, done here:
- Timing: its sequencer drifts (~20 ms over 30 s), so notes are scheduled here: the synth
  renders in blocks that end exactly at each note-on/off sample offset.
- Load time: it decodes the whole file at load (FluidR3_GM 1.3 s, an sf3 with Vorbis
  samples 4-5 s on this machine). `subset_bytes` reads only the preset/instrument/sample
  headers and the samples of the presets a render uses, and hands tinysoundfont a small
  in-memory sf2 (Vorbis samples decoded with soundfile), which loads in milliseconds.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemforge.audio.stems import RenderError

PHDR = np.dtype(
    [
        ("name", "S20"),
        ("program", "<u2"),
        ("bank", "<u2"),
        ("bag", "<u2"),
        ("library", "<u4"),
        ("genre", "<u4"),
        ("morphology", "<u4"),
    ]
)
BAG = np.dtype([("gen", "<u2"), ("mod", "<u2")])
MOD = np.dtype([("raw", "V10")])
GEN = np.dtype([("oper", "<u2"), ("amount", "<u2")])
INST = np.dtype([("name", "S20"), ("bag", "<u2")])
SHDR = np.dtype(
    [
        ("name", "S20"),
        ("start", "<u4"),
        ("end", "<u4"),
        ("loop_start", "<u4"),
        ("loop_end", "<u4"),
        ("sample_rate", "<u4"),
        ("pitch", "u1"),
        ("correction", "i1"),
        ("link", "<u2"),
        ("type", "<u2"),
    ]
)
PDTA_CHUNKS: dict[bytes, np.dtype] = {
    b"phdr": PHDR,
    b"pbag": BAG,
    b"pmod": MOD,
    b"pgen": GEN,
    b"inst": INST,
    b"ibag": BAG,
    b"imod": MOD,
    b"igen": GEN,
    b"shdr": SHDR,
}
GEN_INSTRUMENT = 41
GEN_KEY_RANGE = 43
GEN_VELOCITY_RANGE = 44
GEN_SAMPLE_ID = 53
SAMPLE_TYPE_VORBIS = 0x10
SAMPLE_TYPE_MONO = 1
SAMPLE_TYPE_ROM = 0x8000
SAMPLE_PADDING = 46  # zero points the SF2 spec asks for after each sample
DRUM_BANK = 128
RELEASE_BLOCK = 2048
SILENCE_PEAK = 1e-5  # -100 dBFS: a release tail below this has ended


@dataclass(frozen=True)
class Preset:
    bank: int
    program: int
    name: str
    index: int  # record number in the file's phdr chunk


@dataclass(frozen=True)
class NoteEvent:
    start: int  # sample offset of note-on
    end: int  # sample offset of note-off (> start)
    key: int
    velocity: int  # 1-127


@dataclass
class SoundFontFile:
    """The headers of a SoundFont; sample data stays on disk until a subset is built."""

    path: Path
    name: str
    version: tuple[int, int]
    smpl_offset: int
    smpl_size: int
    tables: dict[bytes, np.ndarray]

    @property
    def compressed(self) -> bool:
        return bool((self.tables[b"shdr"]["type"][:-1] & SAMPLE_TYPE_VORBIS).any())

    def presets(self) -> list[Preset]:
        phdr = self.tables[b"phdr"]
        return [
            Preset(int(r["bank"]), int(r["program"]), _text(r["name"]), i) for i, r in enumerate(phdr[:-1])
        ]

    def find(self, bank: int, program: int) -> Preset | None:
        return next((p for p in self.presets() if p.bank == bank and p.program == program), None)

    def find_by_name(self, name: str, drums: bool = False) -> Preset:
        """A preset by name: exact (any case), else the only one containing `name`."""
        candidates = [p for p in self.presets() if (p.bank == DRUM_BANK) == drums]
        wanted = name.strip().lower()
        exact = [p for p in candidates if p.name.lower() == wanted]
        partial = [p for p in candidates if wanted in p.name.lower()]
        for found in (exact, partial):
            if found:
                return min(found, key=lambda p: (p.bank, p.program))
        import difflib  # only on the error path

        close = difflib.get_close_matches(name, [p.name for p in candidates], n=4, cutoff=0.4)
        hint = f"; close: {', '.join(close)}" if close else ""
        raise RenderError(f"{self.path.name}: no {'drum kit' if drums else 'preset'} named {name!r}{hint}")

    def _zone_generators(self, bag_table: bytes, gen_table: bytes, first_bag: int, end_bag: int):
        bags, gens = self.tables[bag_table], self.tables[gen_table]
        for bag in range(first_bag, end_bag):
            yield gens[bags["gen"][bag] : bags["gen"][bag + 1]]

    def preset_keys(self, preset: Preset) -> set[int]:
        """MIDI keys that sound in a preset (for drum kits: which drum notes it has)."""
        phdr, inst = self.tables[b"phdr"], self.tables[b"inst"]
        keys: set[int] = set()
        for pgens in self._zone_generators(
            b"pbag", b"pgen", phdr["bag"][preset.index], phdr["bag"][preset.index + 1]
        ):
            instruments = pgens["amount"][pgens["oper"] == GEN_INSTRUMENT]
            if not len(instruments):
                continue
            preset_range = _key_range(pgens)
            number = int(instruments[0])
            for igens in self._zone_generators(
                b"ibag", b"igen", inst["bag"][number], inst["bag"][number + 1]
            ):
                if (igens["oper"] == GEN_SAMPLE_ID).any():
                    low, high = _key_range(igens)
                    keys.update(range(max(low, preset_range[0]), min(high, preset_range[1]) + 1))
        return keys


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _key_range(gens: np.ndarray, oper: int = GEN_KEY_RANGE) -> tuple[int, int]:
    ranges = gens["amount"][gens["oper"] == oper]
    if not len(ranges):
        return 0, 127
    value = int(ranges[0])
    return value & 0xFF, value >> 8


def _zone_reaches(gens: np.ndarray, notes: set[tuple[int, int]]) -> bool:
    key_low, key_high = _key_range(gens)
    velocity_low, velocity_high = _key_range(gens, GEN_VELOCITY_RANGE)
    return any(key_low <= k <= key_high and velocity_low <= v <= velocity_high for k, v in notes)


def read_soundfont(path: Path) -> SoundFontFile:
    """Parse a SoundFont's headers (INFO, pdta) and locate its sample data; RenderError if corrupt."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return _read_soundfont(path, handle)
    except OSError as error:
        raise RenderError(
            f"{path}: cannot read SoundFont ({error.strerror or error}); check the --soundfont path"
        ) from error
    except (struct.error, ValueError, IndexError, KeyError) as error:
        if isinstance(error, RenderError):
            raise
        raise RenderError(f"{path}: corrupt SoundFont ({error})") from error


def _read_soundfont(path: Path, handle) -> SoundFontFile:
    header = handle.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise RenderError(f"{path}: not a SoundFont (sf2/sf3) file")
    (riff_size,) = struct.unpack("<I", header[4:8])
    file_end = min(8 + riff_size, path.stat().st_size)
    name, version = path.stem, (2, 1)
    smpl_offset, smpl_size = -1, 0
    tables: dict[bytes, np.ndarray] = {}
    position = 12
    while position + 12 <= file_end:
        handle.seek(position)
        chunk_id, size, list_type = struct.unpack("<4sI4s", handle.read(12))
        if chunk_id != b"LIST":
            position = _next_top_chunk(handle, position + 8 + size, size, file_end)
            continue
        inner, inner_end = position + 12, min(position + 8 + size, file_end)
        if list_type in (b"INFO", b"pdta"):
            body = handle.read(inner_end - inner)
            for sub_id, start, sub_size in _subchunks(body):
                payload = body[start : start + sub_size]
                if sub_id == b"INAM":
                    name = _text(payload) or name
                elif sub_id == b"ifil" and sub_size >= 4:
                    version = struct.unpack("<HH", payload[:4])
                elif sub_id in PDTA_CHUNKS:
                    dtype = PDTA_CHUNKS[sub_id]
                    if sub_size % dtype.itemsize:
                        raise RenderError(f"{path}: corrupt SoundFont ({sub_id.decode()} size {sub_size})")
                    tables[sub_id] = np.frombuffer(payload, dtype=dtype)
        elif list_type == b"sdta":
            handle.seek(inner)
            for sub_id, start, sub_size in _subchunks(handle.read(min(inner_end - inner, 8)), probe=True):
                if sub_id == b"smpl":
                    smpl_offset, smpl_size = inner + start, min(sub_size, inner_end - inner - start)
        position = _next_top_chunk(handle, position + 8 + size, size, file_end)
    missing = [k.decode() for k in PDTA_CHUNKS if k not in tables or len(tables[k]) < 1]
    if missing or smpl_offset < 0:
        raise RenderError(f"{path}: corrupt SoundFont (missing {', '.join(missing) or 'sample data'})")
    soundfont = SoundFontFile(path, name, (int(version[0]), int(version[1])), smpl_offset, smpl_size, tables)
    _validate(soundfont)
    return soundfont


def _next_top_chunk(handle, unpadded: int, size: int, file_end: int) -> int:
    # RIFF pads odd-sized chunks to even sizes, but some SoundFonts (MuseScore_General_Lite.sf3)
    # omit the pad byte; take whichever position holds the next LIST.
    if size & 1 and unpadded + 1 + 8 <= file_end:
        handle.seek(unpadded + 1)
        if handle.read(4) == b"LIST":
            return unpadded + 1
        return unpadded
    return unpadded + (size & 1)


def _subchunks(body: bytes, probe: bool = False):
    position = 0
    while position + 8 <= len(body):
        sub_id, size = struct.unpack("<4sI", body[position : position + 8])
        yield sub_id, position + 8, size
        if probe:
            return
        position += 8 + size
        if size & 1 and body[position + 1 : position + 5].isalnum():  # pad byte, when present
            position += 1


def _validate(soundfont: SoundFontFile) -> None:
    t = soundfont.tables

    def check(ok: bool, what: str) -> None:
        if not ok:
            raise RenderError(f"{soundfont.path}: corrupt SoundFont ({what})")

    check(len(t[b"phdr"]) >= 2, "no presets")
    for header, bags, gens, mods in (
        (b"phdr", b"pbag", b"pgen", b"pmod"),
        (b"inst", b"ibag", b"igen", b"imod"),
    ):
        bag_index = t[header]["bag"].astype(np.int64)
        check(
            bool((np.diff(bag_index) >= 0).all()) and bag_index[-1] < len(t[bags]), f"{header.decode()} bags"
        )
        check(
            bool((np.diff(t[bags]["gen"].astype(np.int64)) >= 0).all())
            and int(t[bags]["gen"][-1]) <= len(t[gens]),
            f"{bags.decode()} generators",
        )
        check(int(t[bags]["mod"][-1]) <= len(t[mods]), f"{bags.decode()} modulators")
    instruments = t[b"pgen"]["amount"][t[b"pgen"]["oper"] == GEN_INSTRUMENT]
    check(bool((instruments < len(t[b"inst"]) - 1).all()), "instrument index")
    samples = t[b"igen"]["amount"][t[b"igen"]["oper"] == GEN_SAMPLE_ID]
    check(bool((samples < len(t[b"shdr"]) - 1).all()), "sample index")
    shdr = t[b"shdr"][:-1]
    scale = np.where(shdr["type"] & SAMPLE_TYPE_VORBIS, 1, 2)  # sf3: byte offsets; sf2: 16-bit points
    ends = shdr["end"].astype(np.int64) * scale
    rom = (shdr["type"] & SAMPLE_TYPE_ROM) != 0
    check(
        bool(((shdr["start"] <= shdr["end"]) & (ends <= soundfont.smpl_size) | rom).all()),
        "sample data out of range",
    )


def subset_bytes(
    soundfont: SoundFontFile, presets: list[Preset], played: dict[Preset, set[tuple[int, int]]] | None = None
) -> bytes:
    """A standalone sf2 holding only `presets`, their instruments and samples.

    With `played` ((key, velocity) pairs per preset), zones no played note can reach are
    left out too: a sampled grand piano is 100 MB decoded, the dozen samples a melody
    touches are a few MB.
    """
    t = soundfont.tables
    tables: dict[bytes, list] = {k: [] for k in PDTA_CHUNKS}
    instrument_map: dict[int, int] = {}
    sample_map: dict[int, int] = {}
    instrument_notes: dict[int, set[tuple[int, int]] | None] = {}

    def copy_zones(
        header: np.ndarray,
        end_bag: int,
        bags: bytes,
        gens: bytes,
        mods: bytes,
        link: int,
        index_map: dict[int, int],
        notes: set[tuple[int, int]] | None,
    ) -> tuple:
        record = list(header.tolist())
        bag_field = header.dtype.names.index("bag")
        first = int(record[bag_field])
        record[bag_field] = len(tables[bags])
        for bag in range(first, int(end_bag)):
            zone_gens = t[gens][t[bags]["gen"][bag] : t[bags]["gen"][bag + 1]].copy()
            targets = np.flatnonzero(zone_gens["oper"] == link)
            if len(targets) and notes is not None and not _zone_reaches(zone_gens, notes):
                continue
            tables[bags].append((len(tables[gens]), len(tables[mods])))
            for g in targets:
                old = int(zone_gens["amount"][g])
                zone_gens["amount"][g] = index_map.setdefault(old, len(index_map))
                if link == GEN_INSTRUMENT:
                    known = instrument_notes.get(old, set())
                    instrument_notes[old] = None if notes is None or known is None else known | notes
            tables[gens].extend(zone_gens.tolist())
            tables[mods].extend(t[mods][t[bags]["mod"][bag] : t[bags]["mod"][bag + 1]].tolist())
        return tuple(record)

    phdr, inst = t[b"phdr"], t[b"inst"]
    for preset in sorted(set(presets), key=lambda p: p.index):
        notes = None if played is None else played.get(preset, set())
        tables[b"phdr"].append(
            copy_zones(
                phdr[preset.index],
                phdr["bag"][preset.index + 1],
                b"pbag",
                b"pgen",
                b"pmod",
                GEN_INSTRUMENT,
                instrument_map,
                notes,
            )
        )
    for old in list(instrument_map):
        tables[b"inst"].append(
            copy_zones(
                inst[old],
                inst["bag"][old + 1],
                b"ibag",
                b"igen",
                b"imod",
                GEN_SAMPLE_ID,
                sample_map,
                instrument_notes[old],
            )
        )
    sample_data, shdr = _copy_samples(soundfont, sample_map)
    tables[b"phdr"].append((b"EOP", 0, 0, len(tables[b"pbag"]), 0, 0, 0))
    tables[b"inst"].append((b"EOI", len(tables[b"ibag"])))
    for bags, gens, mods in ((b"pbag", b"pgen", b"pmod"), (b"ibag", b"igen", b"imod")):
        tables[bags].append((len(tables[gens]), len(tables[mods])))
        tables[gens].append((0, 0))
        tables[mods].append((b"\0" * 10,))
    pdta = b"".join(
        _chunk(key, np.array(tables[key], dtype=dtype).tobytes()) if key != b"shdr" else _chunk(key, shdr)
        for key, dtype in PDTA_CHUNKS.items()
    )
    info = (
        _chunk(b"ifil", struct.pack("<HH", 2, 1))
        + _chunk(b"isng", b"EMU8000\0")
        + _chunk(b"INAM", soundfont.name.encode("latin-1", "replace")[:255] + b"\0")
    )
    body = (
        b"sfbk" + _list(b"INFO", info) + _list(b"sdta", _chunk(b"smpl", sample_data)) + _list(b"pdta", pdta)
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _copy_samples(soundfont: SoundFontFile, sample_map: dict[int, int]) -> tuple[bytes, bytes]:
    shdr = soundfont.tables[b"shdr"]
    order = list(sample_map)
    position = 0
    while position < len(order):  # stereo pairs: keep the linked sample too
        record = shdr[order[position]]
        link = int(record["link"])
        if record["type"] & 0x0E and link < len(shdr) - 1 and link not in sample_map:
            sample_map[link] = len(sample_map)
            order.append(link)
        position += 1
    pieces: list[bytes] = []
    records = np.zeros(len(order) + 1, dtype=SHDR)
    offset = 0
    with soundfont.path.open("rb") as handle:
        for new, old in enumerate(order):
            source = shdr[old]
            points = _sample_points(soundfont, handle, source)
            record = source.copy()
            compressed = bool(source["type"] & SAMPLE_TYPE_VORBIS)
            # sf3 loop points count from the sample start; sf2 ones from the smpl chunk start.
            base = 0 if compressed else int(source["start"])
            loop_start = int(source["loop_start"]) - base
            loop_end = int(source["loop_end"]) - base
            length = len(points)
            record["start"], record["end"] = offset, offset + length
            record["loop_start"] = offset + min(max(loop_start, 0), length)
            record["loop_end"] = offset + min(max(loop_end, 0), length)
            record["type"] = int(source["type"]) & ~SAMPLE_TYPE_VORBIS
            link = int(source["link"])
            if link in sample_map:
                record["link"] = sample_map[link]
            else:
                record["link"], record["type"] = 0, SAMPLE_TYPE_MONO
            records[new] = record
            pieces.append(points.astype("<i2").tobytes() + b"\0" * (2 * SAMPLE_PADDING))
            offset += length + SAMPLE_PADDING
    records[-1]["name"] = b"EOS"
    return b"".join(pieces), records.tobytes()


def _sample_points(soundfont: SoundFontFile, handle, record: np.ndarray) -> np.ndarray:
    start, end = int(record["start"]), int(record["end"])
    if record["type"] & SAMPLE_TYPE_ROM:
        return np.zeros(0, dtype=np.int16)
    if record["type"] & SAMPLE_TYPE_VORBIS:
        import soundfile

        handle.seek(soundfont.smpl_offset + start)
        try:
            decoded, _ = soundfile.read(io.BytesIO(handle.read(end - start)), dtype="int16", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise RenderError(
                f"{soundfont.path}: corrupt compressed sample {_text(record['name'])!r}"
            ) from error
        return decoded[:, 0]
    handle.seek(soundfont.smpl_offset + 2 * start)
    return np.frombuffer(handle.read(2 * (end - start)), dtype="<i2")


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _list(list_type: bytes, payload: bytes) -> bytes:
    return _chunk(b"LIST", list_type + payload)


class PresetSynth:
    """tinysoundfont loaded with the presets a render needs."""

    def __init__(
        self,
        soundfont: SoundFontFile,
        presets: list[Preset],
        sample_rate: int,
        played: dict[Preset, set[tuple[int, int]]] | None = None,
    ) -> None:
        try:
            import tinysoundfont._tinysoundfont as tsf  # the wrapper's Synth adds nothing needed here
        except ImportError as error:  # installed apart from the project's dependencies (see pyproject.toml)
            raise RenderError("renderer: tinysoundfont is not installed; run `make setup` or "
                              "`pip install --no-deps tinysoundfont==0.3.7`") from error

        self.sample_rate = sample_rate
        self.soundfont = soundfont
        self.synth = None
        if played is not None and not any(played.values()):
            return  # nothing will play (tinysoundfont cannot load a font without samples)
        try:
            self.synth = tsf.SoundFont(subset_bytes(soundfont, presets, played))
        except (RuntimeError, ValueError) as error:
            raise RenderError(f"{soundfont.path}: tinysoundfont cannot load it ({error})") from error
        self._tsf = tsf

    def render(
        self, preset: Preset, notes: list[NoteEvent], length: int, max_release_seconds: float = 8.0
    ) -> np.ndarray:
        """Float32 `(2, length + release tail)`: each note starts exactly at its sample offset."""
        if not notes:
            return np.zeros((2, length), dtype=np.float32)
        # A fresh voice state per render (a clone shares the samples): tinysoundfont's reset()
        # only fast-releases voices, which would leak into the next stem's first samples.
        synth = self._tsf.SoundFont(self.synth)
        synth.set_output(self._tsf.OutputMode.StereoInterleaved, int(self.sample_rate), 0.0)
        synth.set_max_voices(256)
        index = synth.get_preset_index(preset.bank, preset.program)
        if index < 0:
            raise RenderError(
                f"{self.soundfont.path.name}: preset {preset.bank}:{preset.program} did not load"
            )
        events = sorted(
            [(n.end, 0, n.key, 0) for n in notes] + [(n.start, 1, n.key, n.velocity) for n in notes]
        )
        limit = max([length] + [e[0] for e in events]) + int(max_release_seconds * self.sample_rate)
        buffer = np.zeros((limit + RELEASE_BLOCK, 2), dtype=np.float32)
        position = 0
        for at, is_on, key, velocity in events:
            if at > position:
                synth.render(memoryview(buffer[position:at]).cast("B"))
                position = at
            if is_on:
                synth.note_on(index, key, velocity / 127.0)
            else:
                synth.note_off(index, key)
        if length > position:
            synth.render(memoryview(buffer[position:length]).cast("B"))
            position = length
        while position < limit:  # release tails: until silent, so the caller can wrap them
            block = buffer[position : position + RELEASE_BLOCK]
            synth.render(memoryview(block).cast("B"))
            position += RELEASE_BLOCK
            if np.abs(block).max() < SILENCE_PEAK:
                break
        return np.ascontiguousarray(buffer[:position].T)
