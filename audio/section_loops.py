"""A form's sections as loops of their own: each section's stems and mix cut from the track's
stems at its bar lines (sample-exact: bar b starts at `loop_samples(b, ...)`, the sample the
track's own grid puts it on), so a producer can drop the chorus alone into a DAW at the
track's tempo. Files sort in form order: sections/<name>_01_intro_drums.wav, ..._02_verse_...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stemforge.audio.stems import StemSet, loop_samples
from stemforge.audio.wav import write_wav_24bit_acid

SECTIONS_FOLDER = "sections"


def cut_section(stems: StemSet, start_bar: int, bars: int) -> StemSet:
    """The stems of bars [start_bar, start_bar + bars): from the sample the track's grid puts
    the first bar on, exactly `bars` bars of samples as a loop of that length has (at 124 bpm
    the track's own bar lines round one sample apart from a loop's length; the last section is
    padded with that sample of silence where it runs past the track's end)."""
    start = loop_samples(start_bar, stems.bpm, stems.sample_rate, stems.beats_per_bar)
    length = loop_samples(bars, stems.bpm, stems.sample_rate, stems.beats_per_bar)

    def cut(audio: np.ndarray) -> np.ndarray:
        part = audio[:, start:start + length]
        if part.shape[1] < length:
            part = np.pad(part, ((0, 0), (0, length - part.shape[1])))
        return np.ascontiguousarray(part)

    return StemSet(stems.sample_rate, stems.bpm, bars, {role: cut(audio) for role, audio in stems.stems.items()},
                   stems.beats_per_bar, stems.ceiling_db)


def write_section_loops(folder: Path, stems: StemSet, sections: list[dict], name: str,
                        root_note: int | None) -> list[dict[str, str]]:
    """Each section's stems (the parts it plays) and mix under `folder`/sections/, 24-bit with
    ACID tempo and beats (no root note on drums, as the track's stems); per section, role ->
    path relative to `folder`."""
    out = folder / SECTIONS_FOLDER
    out.mkdir(exist_ok=True)
    written: list[dict[str, str]] = []
    width = max(2, len(str(len(sections))))
    for number, section in enumerate(sections, 1):
        part = cut_section(stems, section["start_bar"], section["bars"])
        part.check()
        files: dict[str, str] = {}
        # a part the section does not play (the intro's melody) gets no file of silence
        audio = {**{r: a for r, a in part.stems.items() if r in section["parts"]}, "mix": part.mix()}
        for role, samples in audio.items():
            file_name = f"{name}_{number:0{width}d}_{section['name']}_{role}.wav"
            write_wav_24bit_acid(out / file_name, samples, part.sample_rate, part.bpm, part.beats,
                                 root_note=None if role == "drums" else root_note)
            files[role] = f"{SECTIONS_FOLDER}/{file_name}"
        written.append(files)
    return written
