"""A real run's DAW files held against readers that are not ours.

One run of the shipped default model through `pipeline.run.run` (3 takes, stems, DAWproject):
- the Live set: abletoolz 2.1.0 `--check-samples` (on its own Python 3.13, scripts/install_readers.sh)
  finds every sample; buildable reads the tracks and scenes;
- the DAWproject: project.xml and metadata.xml valid against DAWproject 1.0's Project.xsd and
  MetaData.xsd (tests/fixtures/dawproject, MIT), and read back by openDAW's DAWproject reader
  (@opendaw/lib-dawproject, npm): tempo, tracks, clips, notes, files, scenes, mixer;
- the mixer export: the mix re-rendered through faders and pans, the sets carrying them.
The readers skip with a reason where scripts/install_readers.sh could not install them.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import soundfile

from stemforge.audio.daw import ChannelMix
from stemforge.pipeline.exports import export_with_mixer, read_takes
from stemforge.pipeline.request import RunRequest
from stemforge.pipeline.run import run
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import read_tracks
from stemforge.symbolic.runtime.run_manifest import RunManifest

ROOT = Path(__file__).parents[1]
ABLETOOLZ = ROOT / ".tools" / "bin" / "abletoolz"
DAWPROJECT_READER = ROOT / ".tools" / "dawproject-reader" / "read_dawproject.mjs"
SCHEMAS = Path(__file__).parent / "fixtures" / "dawproject"
TAKES = 3
BARS = 5  # two phrases (markers at bars 1 and 5)
NO_ABLETOOLZ = f"{ABLETOOLZ} absent: scripts/install_readers.sh could not install abletoolz (needs Python >= 3.12)"


@pytest.fixture(scope="module")
def takes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("daw") / "run"
    run(RunRequest(prompt="lofi 80bpm", bars=BARS, takes=TAKES, seed=7, stems=True, dawproject=True, out=out))
    print(f"run under test: {out}")
    return out


def _manifests(run_dir: Path) -> list[RunManifest]:
    return [RunManifest.read(run_dir / f"take{n}") for n in range(1, TAKES + 1)]


def _set_path(run_dir: Path) -> Path:
    manifest = _manifests(run_dir)[0]
    return (run_dir / "take1" / manifest.live_set).resolve()


def _abletoolz(live_set: Path) -> tuple[dict, str]:
    """abletoolz --check-samples on `live_set`: its run report and what it printed."""
    for old in live_set.parent.glob("abletoolz_report_*.json"):
        old.unlink()
    done = subprocess.run([str(ABLETOOLZ), str(live_set), "--check-samples", "--no-meta", "-v"], capture_output=True,
                          text=True, timeout=120)
    reports = list(live_set.parent.glob("abletoolz_report_*.json"))
    assert reports, f"abletoolz wrote no report: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return json.loads(reports[0].read_text()), done.stdout


# ---- the Live set ------------------------------------------------------------------------------

def test_one_set_for_the_run_with_a_scene_per_take(takes_run: Path) -> None:
    manifests = _manifests(takes_run)
    assert len({m.live_set for m in manifests}) == 1 and manifests[0].live_set.startswith("../")
    assert not list(takes_run.glob("take*/*.als"))  # no per-take sets
    root = ET.fromstring(gzip.open(_set_path(takes_run)).read())
    scenes = [s.find("Name").get("Value") for s in root.iter("Scene")][:TAKES]
    assert [name.split()[1] for name in scenes] == [m.name.rsplit("_", 1)[1] for m in manifests]  # the takes' tags
    for track in root.iter("AudioTrack"):
        role = track.find("Name/UserName").get("Value")
        slots = track.findall("DeviceChain/MainSequencer/ClipSlotList/ClipSlot")
        paths = [slot.find("ClipSlot/Value/AudioClip/SampleRef/FileRef/RelativePath").get("Value")
                 for slot in slots[:TAKES]]
        assert paths == [f"take{n}/{m.stems[role]}" for n, m in enumerate(manifests, 1)]
        arranged = track.find("DeviceChain/MainSequencer/Sample/ArrangerAutomation/Events/AudioClip")
        assert arranged.find("SampleRef/FileRef/RelativePath").get("Value") == paths[0]  # take 1 in the Arrangement


def test_abletoolz_finds_every_sample(takes_run: Path) -> None:
    if not ABLETOOLZ.is_file():
        pytest.skip(NO_ABLETOOLZ)
    report, printed = _abletoolz(_set_path(takes_run))
    assert report["abletoolz"] == "2.1.0"
    assert report["totals"]["failed"] == 0 and report["totals"]["samples_missing"] == 0, report["sets"]
    stems = sum(len(m.stems) for m in _manifests(takes_run))
    found = [line for line in printed.splitlines() if line.startswith("Sample ") and " found: " in line]
    assert len(found) == stems + len(_manifests(takes_run)[0].stems)  # Session slots + the Arrangement
    assert all("Absolute /" in line for line in found)


def test_abletoolz_resolves_the_relative_paths_of_a_moved_project(takes_run: Path, tmp_path: Path) -> None:
    """The run folder moved and the old one gone: abletoolz resolves relative paths inside a Live
    Project (a folder with 'Ableton Project Info', which Live adds when it saves a set as one)."""
    if not ABLETOOLZ.is_file():
        pytest.skip(NO_ABLETOOLZ)
    moved = tmp_path / "moved"
    shutil.copytree(takes_run, moved)
    (moved / "Ableton Project Info").mkdir()
    live_set = moved / _set_path(takes_run).name
    root = ET.fromstring(gzip.open(live_set).read())
    assert all(Path(ref.find("Path").get("Value")).is_relative_to(takes_run) for ref in root.iter("FileRef"))
    backup = takes_run.with_name("run.away")
    takes_run.rename(backup)  # the absolute paths now lead nowhere
    try:
        report, printed = _abletoolz(live_set)
    finally:
        backup.rename(takes_run)
    assert report["totals"]["failed"] == 0 and report["totals"]["samples_missing"] == 0, printed[-3000:]


def test_buildable_reads_the_runs_set(takes_run: Path) -> None:
    buildable = pytest.importorskip("buildable", reason="buildable is not installed (dev extra)")
    live_set = buildable.LiveSet.from_file(_set_path(takes_run))
    roles = list(_manifests(takes_run)[0].stems)
    assert [t.user_name for t in live_set.primary_tracks] == [*roles, *(f"{r} MIDI" for r in roles)]
    assert live_set.main_track.device_chain.mixer.tempo.manual == 80


# ---- the DAWproject ----------------------------------------------------------------------------

def _dawproject(run_dir: Path) -> Path:
    manifest = _manifests(run_dir)[0]
    assert manifest.dawproject and manifest.dawproject.endswith(".dawproject")
    return (run_dir / "take1" / manifest.dawproject).resolve()


def test_dawproject_is_valid_against_the_official_schemas(takes_run: Path) -> None:
    etree = pytest.importorskip("lxml.etree")
    with zipfile.ZipFile(_dawproject(takes_run)) as archive:
        names = archive.namelist()
        project, metadata = archive.read("project.xml"), archive.read("metadata.xml")
    assert names[:2] == ["project.xml", "metadata.xml"]
    for xml, xsd in ((project, "Project.xsd"), (metadata, "MetaData.xsd")):
        schema = etree.XMLSchema(etree.parse(str(SCHEMAS / xsd)))
        assert schema.validate(etree.fromstring(xml)), f"{xsd}: {schema.error_log}"
    manifests = _manifests(takes_run)
    assert sorted(n for n in names if n.startswith("audio/")) == sorted(
        f"audio/{Path(p).name}" for m in manifests for p in m.stems.values())
    markers = etree.fromstring(project).findall("Arrangement/Markers/Marker")
    assert [(m.get("name"), float(m.get("time"))) for m in markers] == [("phrase 1", 0.0), ("phrase 2", 16.0)]


def _read_back(path: Path) -> dict:
    if not DAWPROJECT_READER.is_file() or shutil.which("node") is None:
        pytest.skip(f"{DAWPROJECT_READER} or node absent: scripts/install_readers.sh could not install it")
    done = subprocess.run(["node", str(DAWPROJECT_READER), str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_opendaw_reads_the_dawproject_back(takes_run: Path) -> None:
    read = _read_back(_dawproject(takes_run))
    project, manifests = read["project"], _manifests(takes_run)
    first = manifests[0]
    assert project["transport"]["tempo"]["value"] == 80 and project["transport"]["tempo"]["unit"] == "bpm"
    assert (project["transport"]["timeSignature"]["numerator"], project["transport"]["timeSignature"]["denominator"]) \
        == (4, 4)
    tracks = {t["name"]: t for t in project["structure"]}
    roles = list(first.stems)
    assert [t["name"] for t in project["structure"]] == [*roles, *(f"{r} MIDI" for r in roles), "Master"]
    assert all(tracks[r]["contentType"] == "audio" and tracks[f"{r} MIDI"]["contentType"] == "notes" for r in roles)
    master = tracks["Master"]["channel"]["id"]
    assert all(t["channel"]["destination"] == master for name, t in tracks.items() if name != "Master")
    beats = BARS * BEATS_PER_BAR
    by_track = {lane["track"]: lane["lanes"][0]["clips"][0] for lane in project["arrangement"]["lanes"]["lanes"]}
    for role in roles:
        clip = by_track[tracks[role]["id"]]
        assert (clip["time"], clip["duration"], clip["loopEnd"]) == (0, beats, beats)
        warps = clip["content"][0]
        audio = warps["content"][0]
        assert audio["file"]["path"] == f"audio/{Path(first.stems[role]).name}"
        info = soundfile.info(takes_run / "take1" / first.stems[role])
        assert audio["sampleRate"] == info.samplerate and audio["channels"] == info.channels
        assert audio["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-9)
        assert warps["warps"][-1]["time"] == pytest.approx(beats, abs=1e-6)  # the last sample on the last beat
        # the notes of the part's MIDI file, in beats
        notes = by_track[tracks[f"{role} MIDI"]["id"]]["content"][0]["notes"]
        part = read_tracks(takes_run / "take1" / first.midi[role])[role]
        assert sorted((n["key"], round(n["time"] * TICKS_PER_BEAT), round(n["duration"] * TICKS_PER_BEAT))
                      for n in notes) == sorted((n.pitch, n.start, n.duration) for n in part.notes)
    scenes = project["scenes"]
    assert len(scenes) == TAKES
    for scene, manifest in zip(scenes, manifests):
        paths = {slot["clip"]["content"][0]["content"][0]["file"]["path"] for slot in scene["content"][0]["lanes"]
                 if slot["clip"]["content"][0].get("content")}
        assert paths == {f"audio/{Path(p).name}" for p in manifest.stems.values()}
    assert read["meta"]["genre"] == "lofi"
    assert set(read["files"]) >= {"project.xml", "metadata.xml"}


# ---- the mixer ---------------------------------------------------------------------------------

def _wav(path: Path) -> np.ndarray:
    return soundfile.read(path, dtype="float64", always_2d=True)[0].T


def test_the_mixer_reaches_the_mix_and_both_sets(takes_run: Path, tmp_path: Path) -> None:
    roles = list(_manifests(takes_run)[0].stems)
    silent, left = roles[0], roles[1]
    mixer = {silent: ChannelMix(-60.0, 0.0), left: ChannelMix(-6.0, -1.0)}
    out = tmp_path / "export"
    export_with_mixer(takes_run, mixer, out)
    for take in read_takes(out):
        folder = out / take.folder
        stems = {role: _wav(folder / path) for role, path in take.manifest.stems.items()}
        mix = _wav(folder / take.manifest.mix)
        # the silent stem is gone, the hard-left one has no right channel: the right channel is the rest
        rest = sum(audio for role, audio in stems.items() if role not in (silent, left))
        assert np.abs(mix[1] - rest[1]).max() < 1e-5
        expected_left = rest[0] + 10 ** (-6 / 20) * (stems[left][0] + stems[left][1])
        assert np.abs(mix[0] - expected_left).max() < 1e-5
        assert take.manifest.mixer == {silent: {"volume_db": -60.0, "pan": 0.0}, left: {"volume_db": -6.0, "pan": -1.0}}
        assert (folder / take.manifest.live_set).is_file()
    root = ET.fromstring(gzip.open(out / read_takes(out)[0].manifest.live_set.removeprefix("../")).read())
    mixers = {t.find("Name/UserName").get("Value"): t.find("DeviceChain/Mixer") for t in root.iter("AudioTrack")}
    assert float(mixers[left].find("Volume/Manual").get("Value")) == pytest.approx(10 ** (-6 / 20))
    assert float(mixers[left].find("Pan/Manual").get("Value")) == -1.0
    assert float(mixers[silent].find("Volume/Manual").get("Value")) < 0.001  # Live's -inf
    assert all(Path(ref.find("Path").get("Value")).is_relative_to(out) for ref in root.iter("FileRef"))
    with zipfile.ZipFile(out / read_takes(out)[0].manifest.dawproject.removeprefix("../")) as archive:
        project = ET.fromstring(archive.read("project.xml"))
    channels = {t.get("name"): t.find("Channel") for t in project.iter("Track")}
    assert float(channels[left].find("Volume").get("value")) == pytest.approx(10 ** (-6 / 20))
    assert float(channels[left].find("Pan").get("value")) == 0.0  # DAWproject's normalized pan: 0 is left
    assert float(channels[silent].find("Volume").get("value")) == 0.0
    if ABLETOOLZ.is_file():
        report, _ = _abletoolz(out / read_takes(out)[0].manifest.live_set.removeprefix("../"))
        assert report["totals"]["samples_missing"] == 0 and report["totals"]["failed"] == 0
    with pytest.raises(FileExistsError):
        export_with_mixer(takes_run, mixer, out)  # never over an earlier export
    with pytest.raises(ValueError, match="no stem 'chords'"):
        export_with_mixer(takes_run, {"chords": ChannelMix(-3.0, 0.0)}, tmp_path / "other")
