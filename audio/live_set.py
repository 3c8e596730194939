"""An Ableton Live Set (.als) for a run: the stems on audio tracks and the parts as MIDI clips.

A Live Set is gzipped XML with no published schema, and Live refuses documents it does not
understand, so nothing here is guessed: every element is one that Live 12.0 itself wrote in
the reference set `buildable` ships (tests/test_live_set/live-12-default.als, MIT), in the
same place, order and with the same attributes; clip contents follow sets saved by Live
12.1 to 12.3 (as catalogued by `daw-schemas`) and a Live 11.3 MIDI clip. tests/test_live_set.py
holds the set against both. docs/daw.md says what that does and does not prove.

The set: the tempo (as the tempo and as its arrangement automation, which Live plays), 4/4,
the key as Live's scale, one warped audio track per stem and one MIDI track per part, named and
coloured per role, with the page's fader and pan on the audio tracks' mixers. The Arrangement
holds the chosen take (the first), each clip at bar 1 looping over the whole piece, and any
markers as locators; Session view holds every take, a scene per take (named with its tag) whose
clip slots hold that take's stems and parts. The mix WAV is left out, as are return tracks,
devices and instruments (a MIDI track plays nothing until one is added).

Roles are whatever the takes hold (drums, bass, chords, melody...): nothing here counts three.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

from stemforge.audio.daw import MIN_VOLUME_DB, ChannelMix, Marker, SetTake, StemFile
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import write_atomic
from stemforge.symbolic.core.ticks import BEATS_PER_BAR
from stemforge.symbolic.music.arrangement import Track
from stemforge.symbolic.music.keys import parse_key

# The root element of the reference set: Live 12.0's document format. Live opens sets of its
# own or an older format and upgrades them, so this is the oldest Live the set opens in.
LIVE_MAJOR_VERSION = "5"
LIVE_MINOR_VERSION = "12.0_12049"
LIVE_SCHEMA_CHANGE_COUNT = "3"
LIVE_CREATOR = "Ableton Live 12.0.5"  # readers take the version from here; the Annotation names us

# Indices into Live's 70-colour clip/track palette (5 rows of 14): red, blue, orange, green,
# then a few more for any other role.
ROLE_COLOURS: dict[str, int] = {"drums": 14, "bass": 9, "chords": 1, "melody": 5}
_SPARE_COLOURS = (12, 7, 3, 24, 20)

# Live stores a time signature as 99 * log2(denominator) + numerator - 1.
TIME_SIGNATURE_4_4 = 99 * 2 + 4 - 1

# Live's time of the value an automation envelope starts from (before the song starts).
_ENVELOPE_START_BEATS = -63072000
_SCENES = 8  # the reference set's scene count; every track has one clip slot per scene
_MIDI_CONTROLLERS = 131  # MainSequencer/MidiControllers of a MIDI track: ControllerTargets.0 .. .130
_LOCKED_CONTROLLERS = frozenset({1, 11, 66})  # those whose envelopes Live locks in the reference
_FIRST_TRACK_ID = 10  # track Ids are small integers of their own; the reference's run 2..14
# Live's warp modes (WarpMode; the numbers DawVert's Live reader maps: 0 Beats, 1 Tones,
# 2 Texture, 3 Re-Pitch, 4 Complex, 6 Complex Pro). At the stem's own tempo every mode plays it
# 1:1; at another tempo Beats keeps transients (drums) and cuts sustained notes into grains,
# Tones suits a monophonic line, Complex anything polyphonic or mixed.
WARP_BEATS, WARP_TONES, WARP_COMPLEX = 0, 1, 4
WARP_MODES: dict[str, int] = {"drums": WARP_BEATS, "bass": WARP_TONES, "melody": WARP_COMPLEX, "chords": WARP_COMPLEX}
_WARP_MODE_OTHER = WARP_COMPLEX  # a role not named above: safe on anything
_FILE_REF_RELATIVE_TO_SET = 1  # RelativePathType: RelativePath is relative to the set's folder
_FILE_REF_TYPE_SAMPLE = 1
_OFF_VELOCITY = 64
# Live's lowest fader position (Volume's MidiControllerRange Min, shown as -inf dB): silence
_LIVE_VOLUME_FLOOR = 0.0003162277571
_SAMPLES_TO_AUTO_WARP_OFF = 0  # the clips carry their own warp markers: Live must not re-warp them
_NEUTRAL = ChannelMix()  # 0 dB, centre


def build_live_set(takes: Sequence[SetTake], markers: Sequence[Marker] = (),
                   mixer: Mapping[str, ChannelMix] | None = None) -> bytes:
    """The gzipped XML of a Live Set of `takes`: the first in the Arrangement, every one as a
    scene in Session view; `markers` as locators; `mixer` (role -> fader and pan) on the
    audio tracks. Takes share tempo, key and length (they are variations of one idea).

    Stems are referred to first by their paths relative to the set's folder (a moved run
    folder keeps working), then by their absolute paths (see StemFile).
    """
    if not takes:
        raise ValueError("a Live set needs at least one take")
    chosen = takes[0]
    conditions = chosen.arrangement.conditions
    for take in takes[1:]:
        other = take.arrangement.conditions
        if (other.bpm, other.bars) != (conditions.bpm, conditions.bars):
            raise ValueError(f"take {take.name!r}: {other.bars} bars at {other.bpm:g} bpm, not the first take's "
                             f"{conditions.bars} at {conditions.bpm:g}")
    mixer = {role: mix.check(role) for role, mix in (mixer or {}).items()}
    beats = float(conditions.bars * BEATS_PER_BAR)
    ids = _PointeeIds()
    midi_roles = list(dict.fromkeys(role for take in takes for role in take.arrangement.tracks))
    stem_roles = list(dict.fromkeys(role for take in takes for role in take.stems))
    audio_roles = [role for role in midi_roles if role in stem_roles] + [r for r in stem_roles if r not in midi_roles]
    colours = _role_colours([*midi_roles, *audio_roles])
    scale = _Scale.of(conditions.key)
    scenes = max(_SCENES, len(takes))
    ticks_per_beat = chosen.arrangement.ticks_per_beat

    root = ET.Element("Ableton", MajorVersion=LIVE_MAJOR_VERSION, MinorVersion=LIVE_MINOR_VERSION,
                      SchemaChangeCount=LIVE_SCHEMA_CHANGE_COUNT, Creator=LIVE_CREATOR, Revision="")
    live_set = ET.SubElement(root, "LiveSet")
    next_pointee_id = _value(live_set, "NextPointeeId", 0)  # set once every Id is handed out
    _values(live_set, OverwriteProtectionNumber=3072, LomId=0, LomIdView=0)

    tracks = ET.SubElement(live_set, "Tracks")
    track_id = _FIRST_TRACK_ID
    for role in audio_roles:
        def audio_clip(take: SetTake, name: str, role: str = role) -> ET.Element | None:
            stem = take.stems.get(role)
            return _audio_clip(name, role, colours[role], scale, stem, conditions.bpm, beats) if stem else None

        session = [audio_clip(take, f"{role} {take.name}") for take in takes]
        tracks.append(_audio_track(track_id, role, colours[role], audio_clip(chosen, role), session, scenes, ids,
                                   mixer.get(role, _NEUTRAL)))
        track_id += 1
    for role in midi_roles:
        def midi_clip(take: SetTake, name: str, role: str = role) -> ET.Element | None:
            part = take.arrangement.tracks.get(role)
            return _midi_clip(name, colours[role], scale, part, ticks_per_beat, beats) if part else None

        session = [midi_clip(take, f"{role} {take.name}") for take in takes]
        tracks.append(_midi_track(track_id, f"{role} MIDI", colours[role], midi_clip(chosen, role), session, scenes,
                                  ids))
        track_id += 1

    live_set.append(_main_track(conditions.bpm, ids))
    live_set.append(_pre_hear_track(ids))
    ET.SubElement(live_set, "SendsPre")  # one flag per return track, and there are none
    _scenes(live_set, [take.name for take in takes], scenes)
    transport = ET.SubElement(live_set, "Transport")
    # The loop brace around the whole piece and on: stemforge writes loops.
    _values(transport, PhaseNudgeTempo=10, LoopOn=True, LoopStart=0, LoopLength=beats, LoopIsSongStart=False,
            CurrentTime=0, PunchIn=False, PunchOut=False, MetronomeTickDuration=0, DrawMode=False)
    ET.SubElement(live_set, "SessionScrollPos", X="0", Y="0")
    ET.SubElement(live_set, "SignalModulations")
    _values(live_set, GlobalQuantisation=4, AutoQuantisation=0)
    _grid(live_set, "Grid", denominator=16, fixed=False)
    scale.write(live_set)
    _values(live_set, InKey=scale.known, SmpteFormat=0)
    _values(ET.SubElement(live_set, "TimeSelection"), AnchorTime=0, OtherTime=0)
    for snippet in _LIVE_SET_VIEW_STATE:
        live_set.append(ET.fromstring(snippet))
        if snippet.startswith("<Locators>"):
            _locators(live_set[-1][0], markers, beats)
    _values(live_set, ChooserBar=_CHOOSER_BAR_ARRANGEMENT, Annotation="Written by stemforge.")
    for snippet in _LIVE_SET_PREFERENCES:
        live_set.append(ET.fromstring(snippet))

    next_pointee_id.set("Value", str(ids.next_id))
    ET.indent(root, space="\t")
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
    return gzip.compress(xml, mtime=0)  # no timestamp: the same run gives the same bytes


def write_live_set(path: Path, takes: Sequence[SetTake], markers: Sequence[Marker] = (),
                   mixer: Mapping[str, ChannelMix] | None = None) -> None:
    """Write the set to `path` (stem paths are relative to its folder) through a temporary
    file in the same folder, so a reader never sees half a set."""
    write_atomic(path, build_live_set(takes, markers, mixer))


# ---- values and ids ----------------------------------------------------------------------

def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        shortest = repr(value)  # round-trips exactly: 87.5 stays 87.5, a third of a beat stays exact
        return shortest[:-2] if shortest.endswith(".0") else shortest
    return str(value)


def _value(parent: ET.Element, tag: str, value: object) -> ET.Element:
    return ET.SubElement(parent, tag, Value=_text(value))


def _values(parent: ET.Element, **values: object) -> None:
    for tag, value in values.items():
        _value(parent, tag, value)


class _PointeeIds:
    """Ids of everything automation or a mapping can point at (AutomationTarget,
    ModulationTarget, Pointee, ControllerTargets.N): unique in the document and below
    LiveSet/NextPointeeId, which is what Live checks."""

    def __init__(self) -> None:
        self.next_id = 1

    def target(self, parent: ET.Element, tag: str, locked: bool = False) -> int:
        element = ET.SubElement(parent, tag, Id=str(self.next_id))
        _value(element, "LockEnvelope", int(locked))
        self.next_id += 1
        return self.next_id - 1

    def pointee(self, parent: ET.Element) -> None:
        ET.SubElement(parent, "Pointee", Id=str(self.next_id))
        self.next_id += 1


def _role_colours(roles: list[str]) -> dict[str, int]:
    spare = iter(_SPARE_COLOURS * len(roles))
    return {role: ROLE_COLOURS[role] if role in ROLE_COLOURS else next(spare) for role in dict.fromkeys(roles)}


# ---- parameters, devices, tracks ----------------------------------------------------------

def _switch(parent: ET.Element, tag: str, ids: _PointeeIds) -> None:
    element = ET.SubElement(parent, tag)
    _values(element, LomId=0, Manual=True)
    ids.target(element, "AutomationTarget")
    _values(ET.SubElement(element, "MidiCCOnOffThresholds"), Min=64, Max=127)


def _dial(parent: ET.Element, tag: str, ids: _PointeeIds, manual: float, low: float, high: float) -> int:
    """A continuous parameter; returns the id automation of it points at."""
    element = ET.SubElement(parent, tag)
    _values(element, LomId=0, Manual=manual)
    _values(ET.SubElement(element, "MidiControllerRange"), Min=low, Max=high)
    target = ids.target(element, "AutomationTarget")
    ids.target(element, "ModulationTarget")
    return target


def _device_header(device: ET.Element, ids: _PointeeIds) -> None:
    """What Live writes first in every device, the track's Mixer and sequencers included."""
    _values(device, LomId=0, LomIdView=0, IsExpanded=True)
    _switch(device, "On", ids)
    _value(device, "ModulationSourceCount", 0)
    ET.SubElement(device, "ParametersListWrapper", LomId="0")
    ids.pointee(device)
    _values(device, LastSelectedTimeableIndex=0, LastSelectedClipEnvelopeIndex=0)
    ET.SubElement(ET.SubElement(device, "LastPresetRef"), "Value")
    ET.SubElement(device, "LockedScripts")
    _values(device, IsFolded=False, ShouldShowPresetName=False, UserName="", Annotation="")
    ET.SubElement(ET.SubElement(device, "SourceContext"), "Value")


def _arranger(parent: ET.Element, tag: str) -> ET.Element:
    """`tag`/ArrangerAutomation; returns its Events, where arrangement clips go."""
    automation = ET.SubElement(ET.SubElement(parent, tag), "ArrangerAutomation")
    events = ET.SubElement(automation, "Events")
    view = ET.SubElement(automation, "AutomationTransformViewState")
    _value(view, "IsTransformPending", False)
    ET.SubElement(view, "TimeAndValueTransforms")
    return events


def _audio_sequencer(sequencer: ET.Element, ids: _PointeeIds, clip_slots: int, monitoring: int,
                     session: Sequence[ET.Element | None] = ()) -> ET.Element:
    """An audio track's clip player (also every track's freeze player), `session` in its first
    clip slots; returns its arrangement Events."""
    _device_header(sequencer, ids)
    _clip_slots(sequencer, clip_slots, session)
    _values(sequencer, MonitoringEnum=monitoring, KeepRecordMonitoringLatency=True)
    events = _arranger(sequencer, "Sample")
    for tag in ("Volume", "Transposition", "TransientEnvelope", "GrainSize", "Flux", "SampleOffset",
                "ComplexProFormants", "ComplexProEnvelope"):
        ids.target(sequencer, f"{tag}ModulationTarget")
    _values(sequencer, PitchViewScrollPosition=-1073741824, SampleOffsetModulationScrollPosition=-1073741824)
    _values(ET.SubElement(sequencer, "Recorder"), IsArmed=False, TakeCounter=1)
    return events


def _midi_sequencer(sequencer: ET.Element, ids: _PointeeIds, clip_slots: int,
                    session: Sequence[ET.Element | None]) -> ET.Element:
    _device_header(sequencer, ids)
    _clip_slots(sequencer, clip_slots, session)
    _values(sequencer, MonitoringEnum=1, KeepRecordMonitoringLatency=True)
    events = _arranger(sequencer, "ClipTimeable")
    _values(ET.SubElement(sequencer, "Recorder"), IsArmed=False, TakeCounter=0)
    controllers = ET.SubElement(sequencer, "MidiControllers")
    for number in range(_MIDI_CONTROLLERS):
        ids.target(controllers, f"ControllerTargets.{number}", locked=number in _LOCKED_CONTROLLERS)
    return events


def _clip_slots(sequencer: ET.Element, count: int, session: Sequence[ET.Element | None] = ()) -> None:
    """`count` clip slots (one per scene), the first holding `session`'s clips (None: empty),
    as Live 12.2 and 12.4 save a Session clip: ClipSlot/ClipSlot/Value/<clip>."""
    slots = ET.SubElement(sequencer, "ClipSlotList")
    for index in range(count):
        slot = ET.SubElement(slots, "ClipSlot", Id=str(index))
        _value(slot, "LomId", 0)
        value = ET.SubElement(ET.SubElement(slot, "ClipSlot"), "Value")
        if index < len(session) and session[index] is not None:
            value.append(session[index])
        _values(slot, HasStop=True, NeedRefreeze=True)


def _routing(chain: ET.Element, tag: str, target: str, upper: str, lower: str = "") -> None:
    routing = ET.SubElement(chain, tag)
    _values(routing, Target=target, UpperDisplayString=upper, LowerDisplayString=lower)
    _values(ET.SubElement(routing, "MpeSettings"), ZoneType=0, FirstNoteChannel=1, LastNoteChannel=15)


def _mixer(chain: ET.Element, ids: _PointeeIds, volume: float = 1.0, width: int = 93, pan: float = 0.0) -> ET.Element:
    mixer = ET.SubElement(chain, "Mixer")
    _device_header(mixer, ids)
    ET.SubElement(mixer, "Sends")  # one per return track, and there are none
    _switch(mixer, "Speaker", ids)
    _values(mixer, SoloSink=False, PanMode=0)
    _dial(mixer, "Pan", ids, pan, -1.0, 1.0)
    _dial(mixer, "SplitStereoPanL", ids, -1.0, -1.0, 1.0)
    _dial(mixer, "SplitStereoPanR", ids, 1.0, -1.0, 1.0)
    _dial(mixer, "Volume", ids, volume, _LIVE_VOLUME_FLOOR, 1.99526238)  # -inf (shown below -70 dB) .. +6 dB
    _value(mixer, "ViewStateSesstionTrackWidth", width)  # sic: Live's spelling
    fade = ET.SubElement(mixer, "CrossFadeState")
    _values(fade, LomId=0, Manual=1)
    ids.target(fade, "AutomationTarget")
    ET.SubElement(mixer, "SendsListWrapper", LomId="0")
    return mixer


def _device_chain(track: ET.Element, audio_in: tuple[str, str], audio_out: tuple[str, str],
                  lane_height: int = 68) -> ET.Element:
    chain = ET.SubElement(track, "DeviceChain")
    lanes = ET.SubElement(chain, "AutomationLanes")
    lane = ET.SubElement(ET.SubElement(lanes, "AutomationLanes"), "AutomationLane", Id="0")
    _values(lane, SelectedDevice=0, SelectedEnvelope=0, IsContentSelectedInDocument=False, LaneHeight=lane_height)
    _value(lanes, "AreAdditionalAutomationLanesFolded", False)
    _values(ET.SubElement(chain, "ClipEnvelopeChooserViewState"), SelectedDevice=0, SelectedEnvelope=0,
            PreferModulationVisible=False)
    _routing(chain, "AudioInputRouting", f"AudioIn/External/{audio_in[0]}", "Ext. In", audio_in[1])
    _routing(chain, "MidiInputRouting", "MidiIn/External.All/-1", "Ext: All Ins")
    _routing(chain, "AudioOutputRouting", *audio_out)
    _routing(chain, "MidiOutputRouting", "MidiOut/None", "None")
    return chain


def _inner_chain(chain: ET.Element) -> None:
    """Where instruments and effects go: none."""
    inner = ET.SubElement(chain, "DeviceChain")
    ET.SubElement(inner, "Devices")
    ET.SubElement(inner, "SignalModulations")


def _track_head(track: ET.Element, name: str, colour: int, unfolded: bool = True,
                user_name: str | None = None) -> ET.Element:
    """The elements every track starts with; returns its (empty) automation Envelopes."""
    _values(track, LomId=0, LomIdView=0, IsContentSelectedInDocument=False, PreferredContentViewMode=0)
    _values(ET.SubElement(track, "TrackDelay"), Value=0, IsValueSampleBased=False)
    # UserName is the name Live shows; EffectiveName is what it derives and rewrites.
    _values(ET.SubElement(track, "Name"), EffectiveName=name, UserName=name if user_name is None else user_name,
            Annotation="",
            MemorizedFirstClipName="")
    _value(track, "Color", colour)
    envelopes = ET.SubElement(ET.SubElement(track, "AutomationEnvelopes"), "Envelopes")
    _values(track, TrackGroupId=-1, TrackUnfolded=unfolded)
    ET.SubElement(track, "DevicesListWrapper", LomId="0")
    ET.SubElement(track, "ClipSlotsListWrapper", LomId="0")
    _value(track, "ViewData", "{}")
    take_lanes = ET.SubElement(track, "TakeLanes")
    ET.SubElement(take_lanes, "TakeLanes")
    _value(take_lanes, "AreTakeLanesFolded", True)
    _value(track, "LinkedTrackGroupId", -1)
    return envelopes


def _player_track(tag: str, track_id: int, name: str, colour: int, ids: _PointeeIds,
                  audio_in: tuple[str, str], mix: ChannelMix = _NEUTRAL) -> tuple[ET.Element, ET.Element]:
    """An audio or MIDI track up to its sequencers; returns the track and its DeviceChain."""
    track = ET.Element(tag, Id=str(track_id))
    _track_head(track, name, colour)
    _values(track, SavedPlayingSlot=-1, SavedPlayingOffset=0, Freeze=False, VelocityDetail=0,
            NeedArrangerRefreeze=True, PostProcessFreezeClips=0)
    chain = _device_chain(track, audio_in, ("AudioOut/Main", "Master"))
    # Live's Volume is the linear gain (1 = 0 dB); the page's fader floor is Live's -inf
    volume = _LIVE_VOLUME_FLOOR if mix.volume_db <= MIN_VOLUME_DB else max(_LIVE_VOLUME_FLOOR, mix.gain)
    _mixer(chain, ids, volume=volume, pan=mix.pan)
    return track, chain


def _audio_track(track_id: int, name: str, colour: int, clip: ET.Element | None,
                 session: Sequence[ET.Element | None], scenes: int, ids: _PointeeIds, mix: ChannelMix) -> ET.Element:
    track, chain = _player_track("AudioTrack", track_id, name, colour, ids, ("M0", "1"), mix)
    events = _audio_sequencer(ET.SubElement(chain, "MainSequencer"), ids, scenes, monitoring=2, session=session)
    if clip is not None:
        events.append(clip)
    _audio_sequencer(ET.SubElement(chain, "FreezeSequencer"), ids, scenes, monitoring=1)
    _inner_chain(chain)
    return track


def _midi_track(track_id: int, name: str, colour: int, clip: ET.Element | None,
                session: Sequence[ET.Element | None], scenes: int, ids: _PointeeIds) -> ET.Element:
    track, chain = _player_track("MidiTrack", track_id, name, colour, ids, ("S0", "1/2"))
    events = _midi_sequencer(ET.SubElement(chain, "MainSequencer"), ids, scenes, session)
    if clip is not None:
        events.append(clip)
    _audio_sequencer(ET.SubElement(chain, "FreezeSequencer"), ids, scenes, monitoring=1)
    _inner_chain(chain)
    _values(track, ReWireDeviceMidiTargetId=0, PitchbendRange=96, IsTuned=True, ControllerLayoutRemoteable=0)
    _values(ET.SubElement(track, "ControllerLayoutCustomization"), PitchClassSource=0, OctaveSource=2,
            KeyNoteTarget=60, StepSize=1, OctaveEvery=12, AllowedKeys=0, FillerKeysMapTo=0)
    return track


def _main_track(bpm: float, ids: _PointeeIds) -> ET.Element:
    """The main (master) track, which holds the tempo and the time signature."""
    track = ET.Element("MainTrack")
    envelopes = _track_head(track, "Main", 3, unfolded=False, user_name="")
    chain = _device_chain(track, ("S0", "1/2"), ("AudioOut/External/S0", "Ext. Out", "1/2"), lane_height=85)
    mixer = _mixer(chain, ids, width=103)
    tempo = _dial(mixer, "Tempo", ids, float(bpm), 60.0, 200.0)  # the range a MIDI controller sweeps
    signature = ET.SubElement(mixer, "TimeSignature")
    _values(signature, LomId=0, Manual=TIME_SIGNATURE_4_4)
    signature_target = ids.target(signature, "AutomationTarget")
    _dial(mixer, "GlobalGrooveAmount", ids, 100.0, 0.0, 131.25)
    _dial(mixer, "CrossFade", ids, 0.0, -1.0, 1.0)
    _values(mixer, TempoAutomationViewBottom=60, TempoAutomationViewTop=200)
    _audio_sequencer(ET.SubElement(ET.SubElement(chain, "FreezeSequencer"), "AudioSequencer", Id="0"), ids,
                     clip_slots=0, monitoring=1)
    _inner_chain(chain)
    # The arrangement plays the tempo and time signature from these envelopes, not from
    # Manual: a set whose envelope said 120 would play at 120 whatever the dial shows.
    _envelope(envelopes, 0, signature_target, "EnumEvent", TIME_SIGNATURE_4_4)
    _envelope(envelopes, 1, tempo, "FloatEvent", float(bpm))
    return track


def _envelope(envelopes: ET.Element, index: int, target: int, event: str, value: object) -> None:
    envelope = ET.SubElement(envelopes, "AutomationEnvelope", Id=str(index))
    _value(ET.SubElement(envelope, "EnvelopeTarget"), "PointeeId", target)
    automation = ET.SubElement(envelope, "Automation")
    ET.SubElement(ET.SubElement(automation, "Events"), event, Id="0", Time=str(_ENVELOPE_START_BEATS),
                  Value=_text(value))
    view = ET.SubElement(automation, "AutomationTransformViewState")
    _value(view, "IsTransformPending", False)
    ET.SubElement(view, "TimeAndValueTransforms")


def _pre_hear_track(ids: _PointeeIds) -> ET.Element:
    """The browser's preview channel."""
    track = ET.Element("PreHearTrack")
    _track_head(track, "Master", -1, unfolded=False, user_name="")
    chain = _device_chain(track, ("S0", "1/2"), ("AudioOut/External/S0", "Ext. Out", "1/2"), lane_height=85)
    _mixer(chain, ids, volume=0.5012149811, width=74)  # -6 dB
    _inner_chain(chain)
    return track


# ---- clips -----------------------------------------------------------------------------------

def _clip_head(clip: ET.Element, name: str, colour: int, scale: _Scale, beats: float) -> None:
    """What MIDI and audio clips share, up to their content: at bar 1, looping over `beats`."""
    _values(clip, LomId=0, LomIdView=0, CurrentStart=0, CurrentEnd=beats)
    _values(ET.SubElement(clip, "Loop"), LoopStart=0, LoopEnd=beats, StartRelative=0, LoopOn=True,
            OutMarker=beats, HiddenLoopStart=0, HiddenLoopEnd=beats)
    _values(clip, Name=name, Annotation="", Color=colour, LaunchMode=0, LaunchQuantisation=0)
    signature = ET.SubElement(ET.SubElement(ET.SubElement(clip, "TimeSignature"), "TimeSignatures"),
                              "RemoteableTimeSignature", Id="0")
    _values(signature, Numerator=4, Denominator=4, Time=0)
    ET.SubElement(ET.SubElement(clip, "Envelopes"), "Envelopes")
    _values(ET.SubElement(clip, "ScrollerTimePreserver"), LeftTime=0, RightTime=beats)
    _values(ET.SubElement(clip, "TimeSelection"), AnchorTime=0, OtherTime=0)
    _values(clip, Legato=False, Ram=False)
    _value(ET.SubElement(clip, "GrooveSettings"), "GrooveId", -1)
    _values(clip, Disabled=False, VelocityAmount=0)
    _values(ET.SubElement(clip, "FollowAction"), FollowTime=4, IsLinked=True, LoopIterations=1, FollowActionA=4,
            FollowActionB=0, FollowChanceA=100, FollowChanceB=0, JumpIndexA=1, JumpIndexB=1,
            FollowActionEnabled=False)
    _grid(clip, "Grid", denominator=16, fixed=False)
    # IsWarped on a MIDI clip too: its notes are in beats and follow the tempo.
    _values(clip, FreezeStart=0, FreezeEnd=0, IsWarped=True, TakeId=1, IsInKey=scale.known)
    scale.write(clip)


def _midi_clip(name: str, colour: int, scale: _Scale, part: Track, ticks_per_beat: int,
               beats: float) -> ET.Element:
    clip = ET.Element("MidiClip", Id="0", Time="0")
    _clip_head(clip, name, colour, scale, beats)
    notes = ET.SubElement(clip, "Notes")
    key_tracks = ET.SubElement(notes, "KeyTracks")
    by_pitch: dict[int, list] = {}
    for note in sorted(part.notes):
        by_pitch.setdefault(note.pitch, []).append(note)
    note_id = 1
    # One KeyTrack per pitch, lowest first, as Live writes them; times in beats from the clip start.
    for index, pitch in enumerate(sorted(by_pitch)):
        key_track = ET.SubElement(key_tracks, "KeyTrack", Id=str(index))
        events = ET.SubElement(key_track, "Notes")
        for note in by_pitch[pitch]:
            ET.SubElement(events, "MidiNoteEvent", Time=_text(note.start / ticks_per_beat),
                          Duration=_text(note.duration / ticks_per_beat), Velocity=str(note.velocity),
                          OffVelocity=str(_OFF_VELOCITY), NoteId=str(note_id))
            note_id += 1
        _value(key_track, "MidiKey", pitch)
    ET.SubElement(ET.SubElement(notes, "PerNoteEventStore"), "EventLists")
    ET.SubElement(notes, "NoteProbabilityGroups")
    _value(ET.SubElement(notes, "ProbabilityGroupIdGenerator"), "NextId", 1)
    _value(ET.SubElement(notes, "NoteIdGenerator"), "NextId", note_id)
    _values(clip, BankSelectCoarse=-1, BankSelectFine=-1, ProgramChange=-1, NoteEditorFoldInZoom=-1,
            NoteEditorFoldInScroll=0, NoteEditorFoldOutZoom=-1, NoteEditorFoldOutScroll=0,
            NoteEditorFoldScaleZoom=-1, NoteEditorFoldScaleScroll=0, NoteSpellingPreference=3,
            AccidentalSpellingPreference=3, PreferFlatRootNote=False)
    _grid(clip, "ExpressionGrid", denominator=16, fixed=False)
    return clip


def _audio_clip(name: str, role: str, colour: int, scale: _Scale, stem: StemFile, bpm: float,
                beats: float) -> ET.Element:
    """The stem, warped so that its `frames` span exactly the piece's `beats`, in the warp mode
    of its `role`.

    Two warp markers pin sample 0 to beat 0 and the file's end to its length in beats at the
    set's tempo: the file plays at its own speed at that tempo, and at any other tempo it is
    stretched to stay on the grid. A stem whose length is not the piece's (more than a frame
    off) would drift against the MIDI clips, so it is refused.
    """
    path = PurePosixPath(stem.relative_path)
    if path.is_absolute() or "\\" in stem.relative_path:
        raise ValueError(f"stem {name}: {stem.relative_path!r} is not a posix path relative to the set")
    if stem.sample_rate <= 0 or stem.frames <= 0:
        raise ValueError(f"stem {name}: {stem.frames} frames at {stem.sample_rate} Hz is no audio")
    seconds = stem.frames / stem.sample_rate
    stem_beats = seconds * bpm / 60.0
    if abs(stem_beats - beats) * 60.0 / bpm * stem.sample_rate > 1.0:  # more than a frame off
        raise ValueError(f"stem {name}: {stem.frames} frames at {stem.sample_rate} Hz last {stem_beats:.6f} beats "
                         f"at {bpm:g} bpm, not the piece's {beats:g}")

    clip = ET.Element("AudioClip", Id="0", Time="0")
    _clip_head(clip, name, colour, scale, beats)
    sample_ref = ET.SubElement(clip, "SampleRef")
    file_ref = ET.SubElement(sample_ref, "FileRef")
    _values(file_ref, RelativePathType=_FILE_REF_RELATIVE_TO_SET, RelativePath=path.as_posix(),
            Path=stem.absolute_path, Type=_FILE_REF_TYPE_SAMPLE, LivePackName="", LivePackId="",
            OriginalFileSize=stem.size_bytes, OriginalCrc=stem.crc)  # as Live computes it: daw.live_crc
    _value(sample_ref, "LastModDate", stem.modified_unix)
    ET.SubElement(sample_ref, "SourceContext")
    _values(sample_ref, SampleUsageHint=0, DefaultDuration=stem.frames, DefaultSampleRate=stem.sample_rate,
            SamplesToAutoWarp=_SAMPLES_TO_AUTO_WARP_OFF)
    onsets = ET.SubElement(clip, "Onsets")
    ET.SubElement(onsets, "UserOnsets")
    _value(onsets, "HasUserOnsets", False)
    _values(clip, WarpMode=WARP_MODES.get(role, _WARP_MODE_OTHER), GranularityTones=30, GranularityTexture=65, FluctuationTexture=25,
            TransientResolution=6, TransientLoopMode=2, TransientEnvelope=100, ComplexProFormants=100,
            ComplexProEnvelope=128, Sync=True, HiQ=True, Fade=False)
    # No fades: a stem must start and end on the sample the renderer wrote.
    _values(ET.SubElement(clip, "Fades"), FadeInLength=0, FadeOutLength=0, ClipFadesAreInitialized=True,
            CrossfadeInState=0, FadeInCurveSkew=0, FadeInCurveSlope=0, FadeOutCurveSkew=0, FadeOutCurveSlope=0,
            IsDefaultFadeIn=False, IsDefaultFadeOut=False)
    _values(clip, PitchCoarse=0, PitchFine=0, SampleVolume=1)
    markers = ET.SubElement(clip, "WarpMarkers")
    ET.SubElement(markers, "WarpMarker", Id="0", SecTime="0", BeatTime="0")
    ET.SubElement(markers, "WarpMarker", Id="1", SecTime=_text(seconds), BeatTime=_text(stem_beats))
    ET.SubElement(clip, "SavedWarpMarkersForStretched")
    _values(clip, MarkersGenerated=False, IsSongTempoLeader=False)
    return clip


# ---- the rest of the set ------------------------------------------------------------------------

def _grid(parent: ET.Element, tag: str, denominator: int, fixed: bool) -> None:
    _values(ET.SubElement(parent, tag), FixedNumerator=1, FixedDenominator=denominator, GridIntervalPixel=20,
            Ntoles=2, SnapToGrid=True, Fixed=fixed)


@dataclass(frozen=True)
class _Scale:
    """The key as Live 12.0 writes a scale: a root (0 = C) and a name. A key that does not
    parse leaves Live's default, C major, switched off."""

    root_note: int
    name: str
    known: bool

    @staticmethod
    def of(key: str) -> _Scale:
        try:
            parsed = parse_key(key)
        except UserError:
            return _Scale(0, "Major", known=False)
        return _Scale(parsed.tonic, "Minor" if parsed.mode == "minor" else "Major", known=True)

    def write(self, parent: ET.Element) -> None:
        _values(ET.SubElement(parent, "ScaleInformation"), RootNote=self.root_note, Name=self.name)


def _scenes(live_set: ET.Element, names: Sequence[str], count: int) -> None:
    """`count` scenes, the first named `names` (a take's scene), the rest empty."""
    scenes = ET.SubElement(live_set, "Scenes")
    for index in range(count):
        scene = ET.SubElement(scenes, "Scene", Id=str(index))
        _values(ET.SubElement(scene, "FollowAction"), FollowTime=4, IsLinked=True, LoopIterations=1,
                FollowActionA=4, FollowActionB=0, FollowChanceA=100, FollowChanceB=0, JumpIndexA=0,
                JumpIndexB=0, FollowActionEnabled=False)
        _values(scene, Name=names[index] if index < len(names) else "", Annotation="", Color=-1, Tempo=120, IsTempoEnabled=False,
                TimeSignatureId=TIME_SIGNATURE_4_4, IsTimeSignatureEnabled=False, LomId=0)
        ET.SubElement(scene, "ClipSlotsListWrapper", LomId="0")


def _locators(locators: ET.Element, markers: Sequence[Marker], beats: float) -> None:
    """Each marker as an Arrangement locator (Live 12's Locator: LomId, Time in beats, Name,
    Annotation, IsSongStart); a marker past the piece's end is refused."""
    for index, marker in enumerate(sorted(markers, key=lambda m: m.bar)):
        time = marker.beats(BEATS_PER_BAR)
        if marker.bar < 1 or time >= beats:
            raise ValueError(f"marker {marker.name!r}: bar {marker.bar} is outside the piece's "
                             f"{beats / BEATS_PER_BAR:g} bars")
        locator = ET.SubElement(locators, "Locator", Id=str(index))
        _values(locator, LomId=0, Time=time, Name=marker.name, Annotation="", IsSongStart=False)


_CHOOSER_BAR_ARRANGEMENT = 0  # open in the Arrangement, where the clips are

# View state and settings of the reference set, in its order, around ChooserBar/Annotation.
_LIVE_SET_VIEW_STATE = (
    """<SequencerNavigator><BeatTimeHelper><CurrentZoom Value="0.254945054945054927" /></BeatTimeHelper>
    <ScrollerPos X="0" Y="0" /><ClientSize X="745" Y="490" /></SequencerNavigator>""",
    '<IsContentSplitterOpen Value="true" />',
    '<IsExpressionSplitterOpen Value="true" />',
    """<ExpressionLanes>
    <MidiEditorLaneModel Id="0"><Type Value="0" /><Size Value="41" /><IsMinimized Value="false" /></MidiEditorLaneModel>
    <MidiEditorLaneModel Id="1"><Type Value="1" /><Size Value="41" /><IsMinimized Value="false" /></MidiEditorLaneModel>
    <MidiEditorLaneModel Id="2"><Type Value="2" /><Size Value="41" /><IsMinimized Value="true" /></MidiEditorLaneModel>
    <MidiEditorLaneModel Id="3"><Type Value="3" /><Size Value="41" /><IsMinimized Value="true" /></MidiEditorLaneModel>
    </ExpressionLanes>""",
    """<ContentLanes>
    <MidiEditorLaneModel Id="0"><Type Value="4" /><Size Value="41" /><IsMinimized Value="false" /></MidiEditorLaneModel>
    <MidiEditorLaneModel Id="1"><Type Value="5" /><Size Value="25" /><IsMinimized Value="true" /></MidiEditorLaneModel>
    </ContentLanes>""",
    '<ViewStateFxSlotCount Value="4" />',
    '<ViewStateSessionMixerHeight Value="120" />',
    '<ViewStateArrangerMixerVolumeSectionHeight Value="120" />',
    '<ShouldSceneTempoAndTimeSignatureBeVisible Value="false" />',
    '<WaveformVerticalZoomFactor Value="1" />',
    '<IsWaveformVerticalZoomActive Value="true" />',
    "<Locators><Locators /></Locators>",
    "<DetailClipKeyMidis />",
    '<TracksListWrapper LomId="0" />',
    '<VisibleTracksListWrapper LomId="0" />',
    '<ReturnTracksListWrapper LomId="0" />',
    '<ScenesListWrapper LomId="0" />',
    '<CuePointsListWrapper LomId="0" />',
)

_LIVE_SET_PREFERENCES = (
    '<SoloOrPflSavedValue Value="true" />',
    '<SoloInPlace Value="true" />',
    '<CrossfadeCurve Value="2" />',
    '<LatencyCompensation Value="2" />',
    '<HighlightedTrackIndex Value="0" />',
    '<GroovePool><LomId Value="0" /><Grooves /></GroovePool>',
    '<AutomationMode Value="false" />',
    '<SnapAutomationToGrid Value="true" />',
    '<ArrangementOverdub Value="false" />',
    '<ColorSequenceIndex Value="2043570831" />',
    '<AutoColorPickerForPlayerAndGroupTracks><NextColorIndex Value="14" /></AutoColorPickerForPlayerAndGroupTracks>',
    '<AutoColorPickerForReturnAndMainTracks><NextColorIndex Value="6" /></AutoColorPickerForReturnAndMainTracks>',
    '<ViewData Value="{}" />',
    '<ResetNonautomatedMidiControllersOnClipStarts Value="true" />',
    '<MidiFoldIn Value="false" />',
    '<MidiFoldMode Value="-99" />',
    '<MultiClipFocusMode Value="false" />',
    '<MultiClipLoopBarHeight Value="0" />',
    '<MidiPrelisten Value="false" />',
    "<LinkedTrackGroups />",
    '<NoteSpellingPreference Value="0" />',
    '<AccidentalSpellingPreference Value="3" />',
    '<PreferFlatRootNote Value="false" />',
    '<UseWarperLegacyHiQMode Value="false" />',
    '<VideoWindowRect Top="-2147483648" Left="-2147483648" Bottom="-2147483648" Right="-2147483648" />',
    '<ShowVideoWindow Value="true" />',
    "<TuningSystems />",
    '<TrackHeaderWidth Value="93" />',
    '<ViewStateMainWindowClipDetailOpen Value="false" />',
    '<ViewStateMainWindowHiddenOtherDocViewTypeClipDetailOpen Value="false" />',
    '<ViewStateMainWindowHiddenOtherDocViewTypeDeviceDetailOpen Value="true" />',
    '<ViewStateMainWindowDeviceDetailOpen Value="true" />',
    '<ViewStateSecondWindowClipDetailOpen Value="true" />',
    '<ViewStateSecondWindowDeviceDetailOpen Value="false" />',
    """<ViewStates><MixerInArrangement Value="0" /><ArrangerMixerIO Value="1" /><ArrangerMixerSends Value="1" />
    <ArrangerMixerReturns Value="1" /><ArrangerMixerVolume Value="1" /><ArrangerMixerTrackOptions Value="0" />
    <ArrangerMixerCrossFade Value="0" /><MixerInSession Value="1" /><SessionIO Value="1" /><SessionSends Value="1" />
    <SessionReturns Value="1" /><SessionVolume Value="1" /><SessionTrackOptions Value="0" />
    <SessionCrossFade Value="0" /><SessionShowOverView Value="0" /><ArrangerIO Value="1" />
    <ArrangerReturns Value="1" /><ArrangerVolume Value="1" /><ArrangerTrackOptions Value="0" />
    <ArrangerShowOverView Value="1" /></ViewStates>""",
    # The settings of Live 12's MIDI generators and transformations, at their defaults.
    """<NoteAlgorithms>
    <ArpeggiateAlgorithm Id="0"><Rate Value="10" /><Steps Value="2" /><Distance Value="12" /><Gate Value="1" />
    <Style Value="0" /></ArpeggiateAlgorithm>
    <SpanAlgorithm Id="1"><Mode Value="1" /><ChordThreshold Value="10" /><LengthVariation Value="0" />
    <LengthOffset Value="0" /><FixedLength Value="0" /></SpanAlgorithm>
    <ConnectAlgorithm Id="2"><Tie Value="0" /><Density Value="1" /><Spread Value="0" /><Rate Value="0" />
    </ConnectAlgorithm>
    <OrnamentAlgorithm Id="3"><FlamEnabled Value="true" /><FlamPosition Value="-0.200000003" />
    <FlamVelocity Value="0.5" /><GraceNotesEnabled Value="false" /><GraceNotesChance Value="1" />
    <GraceNotesVelocity Value="0.5" /><GraceNotesPosition Value="-0.200000003" /><GraceNotesAmount Value="3" />
    <GraceNotesPitch Value="1" /></OrnamentAlgorithm>
    <RecombineAlgorithm Id="4"><PermutePitches Value="true" /><PermuteDurations Value="true" />
    <PermuteVelocities Value="true" /><Shuffle Value="false" /><Mirror Value="false" /><RotateAmount Value="0" />
    <MinRotateAmount Value="0" /><MaxRotateAmount Value="0" /></RecombineAlgorithm>
    <QuantizeAlgorithm Id="5"><Reference Value="0" /><TripletReference Value="false" />
    <QuantizeNoteStarts Value="true" /><QuantizeNoteEnds Value="false" /><Amount Value="100" /></QuantizeAlgorithm>
    <StrumAlgorithm Id="6"><ChordThreshold Value="0" /><StrumLow Value="0" /><StrumHigh Value="0" />
    <TensionAmount Value="0" /></StrumAlgorithm>
    <TimeWarpAlgorithm Id="7"><Breakpoints>
    <Breakpoint Id="0"><Value Value="0.5" /><Time Value="0" /><Control1X Value="0.5" /><Control1Y Value="0.5" />
    <Control2X Value="0.5" /><Control2Y Value="0.5" /><IsActive Value="true" /></Breakpoint>
    <Breakpoint Id="1"><Value Value="0.5" /><Time Value="0.5" /><Control1X Value="0.5" /><Control1Y Value="0.5" />
    <Control2X Value="0.5" /><Control2Y Value="0.5" /><IsActive Value="false" /></Breakpoint>
    <Breakpoint Id="2"><Value Value="0.5" /><Time Value="1" /><Control1X Value="0.5" /><Control1Y Value="0.5" />
    <Control2X Value="0.5" /><Control2Y Value="0.5" /><IsActive Value="true" /></Breakpoint>
    </Breakpoints><StretchNoteEnd Value="true" /><PreserveTimeRange Value="true" /><Quantize Value="false" />
    </TimeWarpAlgorithm>
    <RhythmAlgorithm Id="8"><Density Value="4" /><Repetitions Value="1" /><Pattern Value="14" />
    <PatternLength Value="8" /><Pitch Value="36" /><Velocity Value="100" /><Accent Value="127" />
    <Period Value="4" /><Offset Value="0" /><Shift Value="0" /><StepDuration Value="7" /><Split Value="0" />
    </RhythmAlgorithm>
    <StacksAlgorithm Id="9"><Sequence><Chord Id="8"><RootDegree Value="0" /><Octave Value="3" />
    <RootPitch Value="60" /><Inversion Value="0" /><RuleNumber Value="0" /><Duration Value="1" />
    <Offset Value="0" /></Chord></Sequence></StacksAlgorithm>
    <ShapeAlgorithm Id="10"><ShapeLevels>"""
    + "".join(f'<RemoteableFloat Id="{i}" Value="{i / 20:g}" />' for i in range(21))
    + """</ShapeLevels><ShapePresets Value="2" /><Rate Value="0" /><Tie Value="0" /><Density Value="1" />
    <MinPitch Value="60" /><MaxPitch Value="84" /><PitchVariation Value="0" /></ShapeAlgorithm>
    <SeedAlgorithm Id="11"><NotesDensity Value="0.5" /><MinPitch Value="60" /><MaxPitch Value="84" />
    <MinDuration Value="-6" /><MaxDuration Value="-3" /><MinVelocity Value="30" /><MaxVelocity Value="100" />
    <VerticalLimit Value="4" /></SeedAlgorithm>
    </NoteAlgorithms>""",
)
