"""`Arrangement`: the composed piece, one track per role, every track exactly `bars` bars.

Times are integer ticks at `TICKS_PER_BEAT`; the tempo is `conditions.bpm`, so a tick
maps to `tick / TICKS_PER_BEAT * 60 / bpm` seconds exactly. MIDI files are written with
symusic so the bytes are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import symusic

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import write_atomic
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.conditions import ROLES, Conditions
from stemforge.symbolic.music.genres import genre_table
from stemforge.symbolic.music.keys import Key, parse_key

DRUM_CHANNEL = 9  # GM channel 10, zero-based

# GM programs written to MIDI per genre and role (drums are channel 10, program 0): each genre's
# `instruments` in the genre table (configs/genres.yaml); the label-free material's as the default.
DEFAULT_PROGRAMS: dict[str, int] = genre_table().unlabelled.instruments
GENRE_PROGRAMS: dict[str, dict[str, int]] = {g.name: g.instruments for g in genre_table().genres.values()}


class ArrangementError(UserError):
    """A MIDI file or track that cannot become part of an arrangement."""


@dataclass(frozen=True, order=True)
class Note:
    start: int  # ticks from bar 1 beat 1
    duration: int  # ticks, > 0
    pitch: int
    velocity: int


@dataclass
class Track:
    role: str
    program: int
    is_drum: bool
    notes: list[Note] = field(default_factory=list)

    def end_tick(self) -> int:
        return max((n.start + n.duration for n in self.notes), default=0)


def without_overlaps(notes: list[Note]) -> list[Note]:
    """The notes with no two of one pitch sounding at once: of two onsets of a pitch at
    one tick the loudest stays, and a note is cut where the next one of its pitch starts.
    A synth or sampler retriggers on an overlap (a click, a doubled attack) and a DAW shows
    a stacked note; nobody means either."""
    by_pitch: dict[int, list[Note]] = {}
    for note in sorted(notes, key=lambda n: (n.pitch, n.start, -n.velocity)):
        line = by_pitch.setdefault(note.pitch, [])
        if line and line[-1].start == note.start:
            continue
        if line and line[-1].start + line[-1].duration > note.start:
            line[-1] = Note(line[-1].start, note.start - line[-1].start, line[-1].pitch, line[-1].velocity)
        line.append(note)
    return sorted(n for line in by_pitch.values() for n in line)


@dataclass
class Arrangement:
    conditions: Conditions
    tracks: dict[str, Track]  # role -> track, in output order
    token_ids: list[int] = field(default_factory=list)
    ticks_per_beat: int = TICKS_PER_BEAT
    chords: list = field(default_factory=list)  # symbolic.music.harmony.ChordSpan, ticks at ticks_per_beat
    # the composed parts on the token grid, before swing and micro-timing (what the structure
    # and novelty measures compare with training data); empty when not composed here
    grid_tracks: dict[str, Track] = field(default_factory=dict)

    @property
    def total_ticks(self) -> int:
        return self.conditions.bars * BEATS_PER_BAR * self.ticks_per_beat

    def seconds(self, tick: int) -> float:
        return tick / self.ticks_per_beat * 60.0 / self.conditions.bpm

    def to_score(self, roles: tuple[str, ...] | None = None) -> symusic.Score:
        return tracks_to_score(
            [self.tracks[r] for r in (roles or tuple(self.tracks))],
            bpm=self.conditions.bpm,
            ticks_per_beat=self.ticks_per_beat,
            total_ticks=self.total_ticks,
            key=parse_key(self.conditions.key),
        )

    def midi_bytes(self, roles: tuple[str, ...] | None = None) -> bytes:
        """The MIDI file of `roles` (default: every track), each track ending at exactly `bars`."""
        return ended_at(self.to_score(roles).dumps_midi(), self.total_ticks)

    def write_midi(self, path: Path, roles: tuple[str, ...] | None = None) -> None:
        # encoded in memory and written through write_atomic: symusic's own dump_midi says
        # nothing when the disk is full (it left an empty file that failed later as EOFError)
        write_atomic(path, self.midi_bytes(roles))


# Key signatures as MIDI writes them: sharps (+) or flats (-) of the major key on each
# tonic, spelled with the fewest accidentals; a minor key uses its relative major's.
_MAJOR_FIFTHS: tuple[int, ...] = (0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5)


def key_signature_fifths(key: Key) -> int:
    major_tonic = key.tonic if key.mode == "major" else (key.tonic + 3) % 12
    fifths = _MAJOR_FIFTHS[major_tonic]
    return -6 if key.mode == "minor" and fifths == 6 else fifths  # Eb minor: 6 flats, as named


def tracks_to_score(
    tracks: list[Track], *, bpm: float, ticks_per_beat: int, total_ticks: int, key: Key | None = None
) -> symusic.Score:
    """A 4/4 score at `bpm` (with the key signature of `key`) whose tracks are named by
    role; drums on channel 10."""
    score = symusic.Score(ticks_per_beat)
    score.tempos.append(symusic.Tempo(0, float(bpm)))
    score.time_signatures.append(symusic.TimeSignature(0, BEATS_PER_BAR, 4))
    if key is not None:
        score.key_signatures.append(symusic.KeySignature(0, key_signature_fifths(key), int(key.mode == "minor")))
    for track in tracks:
        out = symusic.Track(name=track.role, program=0 if track.is_drum else track.program,
                            is_drum=track.is_drum)
        for note in sorted(track.notes):
            out.notes.append(symusic.Note(note.start, note.duration, note.pitch, note.velocity))
        score.tracks.append(out)
    return score


def end_tracks_at(path: Path, total_ticks: int) -> None:
    """Move every track's end-of-track event to exactly `total_ticks`, so a DAW sees a clip
    of exactly N bars even when the last bar is silent. Written with mido because symusic
    puts end-of-track one tick after the last event (bar N + 1 tick when a note ends on the
    bar line)."""
    write_atomic(path, ended_at(Path(path).read_bytes(), total_ticks))


def ended_at(data: bytes, total_ticks: int) -> bytes:
    """`end_tracks_at` on a MIDI file's bytes."""
    import io

    import mido

    midi = mido.MidiFile(file=io.BytesIO(data))
    for track in midi.tracks:
        if track and track[-1].type == "end_of_track":
            elapsed = sum(message.time for message in track[:-1])
            track[-1] = track[-1].copy(time=max(0, total_ticks - elapsed))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def midi_length_ticks(path: Path, ticks_per_beat: int = TICKS_PER_BEAT) -> int:
    """Length of a MIDI file (its longest track, end-of-track included) in `ticks_per_beat`:
    what a DAW shows as the clip length."""
    import mido

    midi = mido.MidiFile(path)
    longest = max((sum(message.time for message in track) for track in midi.tracks), default=0)
    return round(longest * ticks_per_beat / midi.ticks_per_beat)


def role_of_track_name(name: str) -> str | None:
    lowered = name.strip().lower()
    return lowered if lowered in ROLES else None


def read_tracks(path: Path, ticks_per_beat: int = TICKS_PER_BEAT) -> dict[str, Track]:
    """Tracks of a MIDI file written by stemforge (or any file whose tracks are named
    by role / a single drum track), rescaled to `ticks_per_beat`."""
    try:
        score = symusic.Score(str(path))
    except Exception as error:  # symusic raises plain RuntimeError on bad bytes
        raise ArrangementError(f"{path}: not a readable MIDI file ({error})") from error
    if score.ticks_per_quarter <= 0:  # resampling from 0 ticks per quarter overflowed
        raise ArrangementError(f"{path}: not a readable MIDI file (its header says {score.ticks_per_quarter} "
                               "ticks per quarter note)")
    score = score.resample(ticks_per_beat, min_dur=1)
    tracks: dict[str, Track] = {}
    for source in score.tracks:
        role = role_of_track_name(source.name) or ("drums" if source.is_drum else None)
        if role is None or role in tracks:
            continue
        notes = [Note(n.time, n.duration, n.pitch, n.velocity) for n in source.notes]
        tracks[role] = Track(role, source.program, source.is_drum, sorted(notes))
    return tracks
