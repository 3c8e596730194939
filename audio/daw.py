"""What the DAW exports (the Ableton Live Set, the DAWproject) take as plain inputs: the stems
as files, the takes, the markers and the mixer. Nothing here knows three roles: a role is any
name an arrangement or a stem set uses (drums, bass, chords, melody...).

    take = SetTake("take 1 · take3f2a", arrangement, {"drums": StemFile.of(folder, "stems/x_drums.wav")})
    markers = [Marker("intro", 1), Marker("verse", 5)]
    mixer = {"drums": ChannelMix(volume_db=-3.0, pan=0.0)}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stemforge.symbolic.music.arrangement import Arrangement

# Live's checksum of a sample file (FileRef/OriginalCrc; SearchHint/Crc before Live 11, beside
# MaxCrcSize 16384): CRC-16/UMTS (polynomial 0x8005, initial 0, unreflected, no final xor) of the
# file's first 16384 bytes. No reader we found knows it (abletoolz 2.1.0 lists it as an open
# question); it reproduces all 50 checksums Live 8.2, 10.0, 10.1 and 11.0 stored for the samples
# of nine real sets whose files are public beside them (docs/daw.md).
LIVE_CRC_BYTES = 16384
_CRC16_UMTS_POLY = 0x8005
MIN_VOLUME_DB = -60.0  # the page's fader bottom: at or below it a stem is silent (-inf dB, as on a desk)
MAX_VOLUME_DB = 6.0  # Live's and the page's fader top


@dataclass(frozen=True)
class StemFile:
    """A stem WAV as a set refers to it.

    `relative_path` is posix and relative to the folder of the set (what a DAW tries first, so
    a moved run folder still opens); `absolute_path` is where the file lies when the set is
    opened where it was written (the run folder's final location at write time: Live's fallback
    when the relative path breaks, e.g. a set copied without its folder). `size_bytes` and
    `modified_unix` are the file's, as Live records them to recognise it when it searches for a
    missing sample. `frames` per channel at `sample_rate` Hz.
    """

    relative_path: str
    sample_rate: int
    frames: int
    absolute_path: str = ""
    size_bytes: int = 0
    modified_unix: int = 0
    channels: int = 2
    crc: int = 0  # live_crc of the file; 0 where not computed, as Live writes it then

    @classmethod
    def of(cls, folder: Path, relative_path: str, final_folder: Path | None = None) -> StemFile:
        """The stem at `folder/relative_path` as it is on disk now; `final_folder` is where
        `folder` will be once the run is moved into place (default: `folder` itself)."""
        import soundfile

        path = Path(folder) / relative_path
        info = soundfile.info(str(path))
        stat = path.stat()
        final = Path(final_folder if final_folder is not None else folder).resolve() / relative_path
        return cls(PurePosixPath(relative_path).as_posix(), info.samplerate, info.frames,
                   absolute_path=final.as_posix(), size_bytes=stat.st_size, modified_unix=int(stat.st_mtime),
                   channels=info.channels, crc=live_crc(path))


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC16_UMTS_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16_TABLE = _crc16_table()


def crc16_umts(data: bytes) -> int:
    """CRC-16/UMTS (also called BUYPASS; check value of b"123456789": 0xFEE8). Written here
    because neither the standard library (binascii.crc_hqx is another polynomial) nor a
    dependency we have computes it, and it is a table and a loop."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_TABLE[(crc >> 8) ^ byte]
    return crc


def live_crc(path: Path) -> int:
    """The checksum Live stores for a sample file (see LIVE_CRC_BYTES)."""
    with open(path, "rb") as file:
        return crc16_umts(file.read(LIVE_CRC_BYTES))


@dataclass(frozen=True)
class SetTake:
    """One take of a run in a set: its scene name (carrying the take's tag), its parts and the
    stems rendered from them (role -> file; empty for a MIDI-only run)."""

    name: str
    arrangement: Arrangement
    stems: dict[str, StemFile]


@dataclass(frozen=True)
class Marker:
    """A named position: a section's start (`bar` counts from 1, as a DAW shows it)."""

    name: str
    bar: int

    def beats(self, beats_per_bar: int) -> float:
        return float((self.bar - 1) * beats_per_bar)


@dataclass(frozen=True)
class ChannelMix:
    """A stem's fader and pan as the page's mixer sets them: `volume_db` (MIN_VOLUME_DB or
    below is silence) and `pan` from -1 (left) to 1 (right)."""

    volume_db: float = 0.0
    pan: float = 0.0

    def check(self, role: str) -> ChannelMix:
        if not math.isfinite(self.volume_db) or self.volume_db > MAX_VOLUME_DB:
            raise ValueError(f"mixer.{role}.volume_db: {self.volume_db} is not a fader level; use at most "
                             f"{MAX_VOLUME_DB:g} dB")
        if not math.isfinite(self.pan) or not -1.0 <= self.pan <= 1.0:
            raise ValueError(f"mixer.{role}.pan: {self.pan} is not a pan; use -1 (left) to 1 (right)")
        return self

    @property
    def gain(self) -> float:
        """The linear gain of the fader (0 at or below the floor)."""
        return 0.0 if self.volume_db <= MIN_VOLUME_DB else 10.0 ** (self.volume_db / 20.0)

    @property
    def neutral(self) -> bool:
        return self.volume_db == 0.0 and self.pan == 0.0
