"""24-bit PCM WAV with an ACID chunk (tempo + number of beats) for DAWs.

Written here, not through soundfile: libsndfile has no API (in soundfile) to write an ACID
chunk, and refuses to write after a header placed by us (an "embedded" file). Writing
through its Python I/O callbacks and splicing the chunk in afterwards copied each file four
times and held the GIL, about 70 ms for one 8-bar stem; the file here is the header, then
the samples encoded in numpy (which releases the GIL, so stems are written side by side),
byte for byte what libsndfile writes for the same float samples (tests compare). The ACID
chunk sits before `data`, where loop-aware readers look for it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from stemforge.audio.stems import RenderError
from stemforge.symbolic.core.paths import write_atomic

ACID_FLAG_ONE_SHOT = 0x01
ACID_FLAG_ROOT_NOTE = 0x02
ACID_FLAG_STRETCH = 0x04
# A loop (not a one-shot) that a DAW may time-stretch to its tempo.
ACID_FLAGS_LOOP = ACID_FLAG_STRETCH
ACID_ROOT_NOTE = 60
WAVE_FORMAT_PCM = 1


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


def _pcm24(audio: np.ndarray) -> np.ndarray:
    """Interleaved 24-bit little-endian samples of float `(channels, samples)` audio, as
    libsndfile encodes floats: clipped to [-1, 1), scaled by 2^31 and rounded to int32 (exact
    in float32: the scale is a power of two), of which the top three bytes are kept."""
    interleaved = np.clip(audio, -1.0, 1.0 - 2.0**-23, dtype=np.float32).T
    scaled = np.empty(interleaved.shape, np.int32)
    np.rint(interleaved * np.float32(2.0**31), out=scaled, casting="unsafe")
    encoded = np.empty((scaled.size, 3), np.uint8)
    encoded[...] = scaled.reshape(-1).view(np.uint8).reshape(-1, 4)[:, 1:4]
    return encoded


def write_wav_24bit_acid(path: Path, audio: np.ndarray, sample_rate: int, bpm: float, beats: int,
                         root_note: int | None = None) -> None:
    """Write float `(channels, samples)` audio (mono or stereo) as 24-bit PCM WAV with an ACID
    chunk.

    Samples are clipped to [-1, 1) (libsndfile would wrap, not clip); the file appears
    atomically (temporary name, then rename).
    """
    path = Path(path)
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise RenderError(f"{path}: audio must be (channels, samples) with 1 or 2 channels, got shape {audio.shape}")
    channels = audio.shape[0]
    data = _pcm24(audio)
    block = 3 * channels
    fmt = struct.pack("<HHIIHH", WAVE_FORMAT_PCM, channels, int(sample_rate), int(sample_rate) * block, block, 24)
    acid = acid_chunk(bpm, beats, root_note=root_note)
    header = b"fmt " + struct.pack("<I", len(fmt)) + fmt + acid + b"data" + struct.pack("<I", data.nbytes)
    pad = b"\0" if data.nbytes & 1 else b""
    riff = b"RIFF" + struct.pack("<I", 4 + len(header) + data.nbytes + len(pad)) + b"WAVE"
    write_atomic(path, riff + header, data.data, pad)


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
