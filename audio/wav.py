"""24-bit PCM WAV with an ACID chunk (tempo + number of beats) for DAWs.

libsndfile (via soundfile) writes the PCM data but has no API to write an ACID chunk, so
the chunk is spliced into the RIFF stream here, before `data`, where loop-aware readers
look for it. The audio stays exactly what soundfile reads back.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile

from stemforge.audio.stems import RenderError
from stemforge.symbolic.paths import write_atomic

ACID_FLAG_ONE_SHOT = 0x01
ACID_FLAG_ROOT_NOTE = 0x02
ACID_FLAG_STRETCH = 0x04
# A loop (not a one-shot) that a DAW may time-stretch to its tempo.
ACID_FLAGS_LOOP = ACID_FLAG_STRETCH
ACID_ROOT_NOTE = 60


def acid_chunk(bpm: float, beats: int, meter_numerator: int = 4, meter_denominator: int = 4,
               root_note: int | None = None) -> bytes:
    """`root_note`: the MIDI note of the loop's key (a DAW transposes the loop from it to the
    project's key); None marks the loop as having no root (drums)."""
    # Layout as libsndfile reads it: flags, root note, 2 reserved fields, beats, meter, tempo.
    payload = struct.pack(
        "<IHHfIHHf",
        ACID_FLAGS_LOOP | (ACID_FLAG_ROOT_NOTE if root_note is not None else 0),
        ACID_ROOT_NOTE if root_note is None else root_note,
        0x8000,
        0.0,
        int(beats),
        meter_denominator,
        meter_numerator,
        float(bpm),
    )
    return b"acid" + struct.pack("<I", len(payload)) + payload


def _chunks(riff: bytes, source: str) -> list[tuple[bytes, bytes]]:
    """(id, payload) of each top-level chunk of a RIFF/WAVE byte string."""
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise RenderError(f"{source}: not a RIFF/WAVE file")
    chunks = []
    position = 12
    while position + 8 <= len(riff):
        chunk_id = riff[position : position + 4]
        (size,) = struct.unpack("<I", riff[position + 4 : position + 8])
        payload = riff[position + 8 : position + 8 + size]
        if len(payload) < size:
            raise RenderError(f"{source}: WAV chunk {chunk_id!r} is truncated")
        chunks.append((chunk_id, payload))
        position += 8 + size + (size & 1)  # chunks are padded to even sizes
    return chunks


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        chunk_id + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
        for chunk_id, payload in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body


def write_wav_24bit_acid(path: Path, audio: np.ndarray, sample_rate: int, bpm: float, beats: int,
                         root_note: int | None = None) -> None:
    """Write float `(channels, samples)` audio as 24-bit PCM WAV with an ACID chunk.

    Samples are clipped to [-1, 1) (libsndfile would wrap, not clip); the file appears
    atomically (temporary name, then rename).
    """
    path = Path(path)
    if audio.ndim != 2:
        raise RenderError(f"{path}: audio must be (channels, samples), got shape {audio.shape}")
    clipped = np.clip(audio, -1.0, 1.0 - 2.0**-23).T
    buffer = io.BytesIO()
    soundfile.write(buffer, clipped, int(sample_rate), subtype="PCM_24", format="WAV")
    chunks = [c for c in _chunks(buffer.getvalue(), str(path)) if c[0] != b"acid"]
    data_at = next(i for i, (chunk_id, _) in enumerate(chunks) if chunk_id == b"data")
    acid = acid_chunk(bpm, beats, root_note=root_note)
    chunks.insert(data_at, (acid[:4], acid[8:]))
    write_atomic(path, _riff(chunks))


def read_acid_chunk(path: Path) -> dict:
    """{"bpm", "beats", "meter", "root_note", "one_shot"} from a WAV's ACID chunk."""
    path = Path(path)
    try:
        riff = path.read_bytes()
    except OSError as error:
        raise RenderError(f"{path}: cannot read ({error.strerror})") from error
    for chunk_id, payload in _chunks(riff, str(path)):
        if chunk_id == b"acid" and len(payload) >= 24:
            flags, root, _, _, beats, denominator, numerator, bpm = struct.unpack("<IHHfIHHf", payload[:24])
            return {
                "bpm": round(float(bpm), 4),  # stored as float32
                "beats": int(beats),
                "meter": [int(numerator), int(denominator)],
                "root_note": int(root) if flags & ACID_FLAG_ROOT_NOTE else None,
                "one_shot": bool(flags & ACID_FLAG_ONE_SHOT),
            }
    raise RenderError(f"{path}: no ACID chunk (tempo) in this WAV file")
