"""A DAWproject of a run (`<name>.dawproject`): the open exchange format Bitwig Studio, Studio
One and others read (github.com/bitwig/dawproject, MIT): a zip with project.xml, metadata.xml
and the audio it plays.

What it holds: the tempo and 4/4; one audio track per stem (its clip at bar 1 over the whole
piece, warped so that the file's seconds span the piece's beats) and one note track per part
(its notes in beats); the markers; the mixer's volume and pan on the audio tracks; a master
track every track plays into. The first take is the Arrangement; every take is a scene
whose clip slots hold its stems and parts. Stems are stored in the zip (`audio/...`), so the
file opens anywhere on its own. Roles are whatever the takes hold.

Elements, attributes and their order follow Project.xsd and MetaData.xsd of DAWproject 1.0;
tests/test_dawproject.py validates against both and reads the file back with another parser.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

from stemforge.audio.daw import MAX_VOLUME_DB, ChannelMix, Marker, SetTake, StemFile
from stemforge.symbolic.core.paths import write_atomic
from stemforge.symbolic.core.ticks import BEATS_PER_BAR
from stemforge.symbolic.music.arrangement import Track

DAWPROJECT_VERSION = "1.0"
APPLICATION = "stemforge"
_DRUM_CHANNEL = 9  # General MIDI's channel 10, counted from 0 as DAWproject counts
_ROLE_COLOURS = {"drums": "#e53935", "bass": "#1e88e5", "chords": "#fb8c00", "melody": "#43a047"}
_OTHER_COLOUR = "#8e24aa"
_NEUTRAL = ChannelMix()


class _Ids:
    """xs:ID values: unique in the document and starting with a letter."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"id{self.count}"


def _number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def build_project_xml(takes: Sequence[SetTake], markers: Sequence[Marker] = (),
                      mixer: Mapping[str, ChannelMix] | None = None, version: str = "0") -> bytes:
    """project.xml for `takes` (the first is the Arrangement; each one a scene); audio files are
    referred to as `audio/<file name>` inside the zip."""
    if not takes:
        raise ValueError("a DAWproject needs at least one take")
    conditions = takes[0].arrangement.conditions
    beats = float(conditions.bars * BEATS_PER_BAR)
    mixer = {role: mix.check(role) for role, mix in (mixer or {}).items()}
    ids = _Ids()
    project = ET.Element("Project", version=DAWPROJECT_VERSION)
    ET.SubElement(project, "Application", name=APPLICATION, version=version)
    transport = ET.SubElement(project, "Transport")
    ET.SubElement(transport, "Tempo", id=ids(), name="Tempo", max="999", min="20", unit="bpm",
                  value=_number(conditions.bpm))
    ET.SubElement(transport, "TimeSignature", id=ids(), denominator="4", numerator=str(BEATS_PER_BAR))

    structure = ET.SubElement(project, "Structure")
    master = ET.Element("Track", id=ids(), name="Master", contentType="audio notes", loaded="true")
    master_channel = _channel(master, ids, "master", None, _NEUTRAL)
    part_roles = list(dict.fromkeys(role for take in takes for role in take.arrangement.tracks))
    stem_roles = list(dict.fromkeys(role for take in takes for role in take.stems))
    audio_tracks = {role: _track(structure, ids, role, "audio", master_channel, mixer.get(role, _NEUTRAL))
                    for role in [r for r in part_roles if r in stem_roles] + [r for r in stem_roles
                                                                             if r not in part_roles]}
    note_tracks = {role: _track(structure, ids, f"{role} MIDI", "notes", master_channel, _NEUTRAL, colour_of=role)
                   for role in part_roles}
    structure.append(master)

    arrangement = ET.SubElement(project, "Arrangement", id=ids())
    lanes = ET.SubElement(arrangement, "Lanes", id=ids(), timeUnit="beats")
    chosen = takes[0]
    for role, track_id in audio_tracks.items():
        if role in chosen.stems:
            clips = ET.SubElement(ET.SubElement(lanes, "Lanes", id=ids(), track=track_id), "Clips", id=ids())
            clips.append(_audio_clip(role, chosen.stems[role], conditions.bpm, beats, ids))
    for role, track_id in note_tracks.items():
        if role in chosen.arrangement.tracks:
            clips = ET.SubElement(ET.SubElement(lanes, "Lanes", id=ids(), track=track_id), "Clips", id=ids())
            clips.append(_note_clip(role, chosen.arrangement.tracks[role], chosen.arrangement.ticks_per_beat,
                                    beats, ids))
    if markers:
        marker_lane = ET.SubElement(arrangement, "Markers", id=ids())
        for marker in sorted(markers, key=lambda m: m.bar):
            time = marker.beats(BEATS_PER_BAR)
            if marker.bar < 1 or time >= beats:
                raise ValueError(f"marker {marker.name!r}: bar {marker.bar} is outside the piece's "
                                 f"{conditions.bars} bars")
            ET.SubElement(marker_lane, "Marker", name=marker.name, time=_number(time))

    scenes = ET.SubElement(project, "Scenes")
    for take in takes:
        scene_lanes = ET.SubElement(ET.SubElement(scenes, "Scene", id=ids(), name=take.name), "Lanes", id=ids(),
                                    timeUnit="beats")
        for role, track_id in audio_tracks.items():
            if role in take.stems:
                slot = ET.SubElement(scene_lanes, "ClipSlot", id=ids(), track=track_id, hasStop="true")
                slot.append(_audio_clip(role, take.stems[role], conditions.bpm, beats, ids))
        for role, track_id in note_tracks.items():
            if role in take.arrangement.tracks:
                slot = ET.SubElement(scene_lanes, "ClipSlot", id=ids(), track=track_id, hasStop="true")
                slot.append(_note_clip(role, take.arrangement.tracks[role], take.arrangement.ticks_per_beat,
                                       beats, ids))
    ET.indent(project, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(project, encoding="utf-8")


def build_metadata_xml(title: str, genre: str, comment: str) -> bytes:
    metadata = ET.Element("MetaData")
    for tag, text in (("Title", title), ("Genre", genre), ("Comment", comment)):  # MetaData.xsd's order
        ET.SubElement(metadata, tag).text = text
    ET.indent(metadata, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(metadata, encoding="utf-8")


def write_dawproject(path: Path, folder: Path, takes: Sequence[SetTake], markers: Sequence[Marker] = (),
                     mixer: Mapping[str, ChannelMix] | None = None, title: str = "", comment: str = "",
                     version: str = "0") -> None:
    """Write `path` (a .dawproject zip) with the stems of `takes` read from `folder` (their
    relative paths are relative to it), through a temporary file: a reader never sees half."""
    conditions = takes[0].arrangement.conditions
    names = [Path(stem.relative_path).name for take in takes for stem in take.stems.values()]
    if len(names) != len(set(names)):  # run file names carry the take's tag, so this is a caller's bug
        raise ValueError("two stems share a file name; the DAWproject stores them by name")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("project.xml", build_project_xml(takes, markers, mixer, version), zipfile.ZIP_DEFLATED)
        archive.writestr("metadata.xml", build_metadata_xml(title, conditions.genre, comment), zipfile.ZIP_DEFLATED)
        for take in takes:
            for stem in take.stems.values():  # WAV barely deflates: stored
                archive.write(Path(folder) / stem.relative_path, _zip_name(stem), zipfile.ZIP_STORED)
    write_atomic(path, buffer.getvalue())


def _zip_name(stem: StemFile) -> str:
    return f"audio/{Path(stem.relative_path).name}"


def _track(structure: ET.Element, ids: _Ids, name: str, content: str, destination: str, mix: ChannelMix,
           colour_of: str | None = None) -> str:
    role = colour_of or name
    track = ET.SubElement(structure, "Track", id=ids(), name=name, color=_ROLE_COLOURS.get(role, _OTHER_COLOUR),
                          contentType=content, loaded="true")
    _channel(track, ids, "regular", destination, mix)
    return track.get("id", "")


def _channel(track: ET.Element, ids: _Ids, role: str, destination: str | None, mix: ChannelMix) -> str:
    channel = ET.SubElement(track, "Channel", id=ids(), audioChannels="2", role=role, solo="false")
    if destination is not None:
        channel.set("destination", destination)
    ET.SubElement(channel, "Mute", id=ids(), name="Mute", value="false")
    # Pan normalized as DAWproject's examples write it: 0 left, 0.5 centre, 1 right
    ET.SubElement(channel, "Pan", id=ids(), name="Pan", max="1", min="0", unit="normalized",
                  value=_number((mix.pan + 1.0) / 2.0))
    ET.SubElement(channel, "Volume", id=ids(), name="Volume", max=_number(10 ** (MAX_VOLUME_DB / 20)), min="0",
                  unit="linear", value=_number(mix.gain))
    return channel.get("id", "")


def _audio_clip(role: str, stem: StemFile, bpm: float, beats: float, ids: _Ids) -> ET.Element:
    """The stem over the whole piece: two warp points pin its first and last sample to the
    piece's first and last beat (at the set's tempo the file plays at its own speed)."""
    seconds = stem.frames / stem.sample_rate
    stem_beats = seconds * bpm / 60.0
    if abs(stem_beats - beats) * 60.0 / bpm * stem.sample_rate > 1.0:  # more than a frame off: it would drift
        raise ValueError(f"stem {role}: {stem.frames} frames at {stem.sample_rate} Hz last {stem_beats:.6f} beats "
                         f"at {bpm:g} bpm, not the piece's {beats:g}")
    clip = ET.Element("Clip", name=role, time="0", duration=_number(beats), playStart="0", loopStart="0",
                      loopEnd=_number(beats))
    warps = ET.SubElement(clip, "Warps", id=ids(), timeUnit="beats", contentTimeUnit="seconds")
    audio = ET.SubElement(warps, "Audio", id=ids(), duration=_number(seconds), algorithm="stretch",
                          channels=str(stem.channels), sampleRate=str(stem.sample_rate))
    ET.SubElement(audio, "File", path=_zip_name(stem))
    ET.SubElement(warps, "Warp", time="0", contentTime="0")
    ET.SubElement(warps, "Warp", time=_number(stem_beats), contentTime=_number(seconds))
    return clip


def _note_clip(role: str, part: Track, ticks_per_beat: int, beats: float, ids: _Ids) -> ET.Element:
    clip = ET.Element("Clip", name=role, time="0", duration=_number(beats), contentTimeUnit="beats", playStart="0",
                      loopStart="0", loopEnd=_number(beats))
    notes = ET.SubElement(clip, "Notes", id=ids())
    channel = str(_DRUM_CHANNEL if part.is_drum else 0)
    for note in sorted(part.notes):
        ET.SubElement(notes, "Note", time=_number(note.start / ticks_per_beat),
                      duration=_number(note.duration / ticks_per_beat), channel=channel, key=str(note.pitch),
                      vel=_number(note.velocity / 127.0), rel=_number(64 / 127.0))
    return clip
