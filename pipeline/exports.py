"""A run's DAW files: one Ableton Live Set for the whole run (a scene per take, the first take
in the Arrangement) and, when asked, a DAWproject of the same; and the page's mixer applied to
a finished run (`export_with_mixer`): the mixes re-rendered and the sets written again with the
faders and pans, into a copy of the run folder.

    files = write_daw_files(tmp_dir, run_dir, takes, dawproject=True)
    export_with_mixer(run_dir, {"drums": ChannelMix(-3.0, 0.0)}, out_dir)
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stemforge.audio.daw import ChannelMix, Marker, SetTake, StemFile
from stemforge.symbolic.core.paths import FolderExistsError, atomic_folder
from stemforge.symbolic.music.arrangement import Arrangement
from stemforge.symbolic.runtime.plan import PHRASE_BARS
from stemforge.symbolic.runtime.run_manifest import MANIFEST_NAME, RunManifest, take_tag


@dataclass(frozen=True)
class TakeFolder:
    """One take of a run: its folder inside the run folder ("" for a one-take run, "take2"...),
    its run.json and its parts."""

    folder: str
    manifest: RunManifest
    arrangement: Arrangement


@dataclass(frozen=True)
class DawFiles:
    """The run's DAW files, relative to the run folder."""

    live_set: str
    dawproject: str | None = None


def phrase_markers(bars: int) -> list[Marker]:
    """A marker at each phrase the composer plans (a variation ends every PHRASE_BARS bars).
    Song forms with named sections pass their own markers instead."""
    return [Marker(f"phrase {number}", bar) for number, bar in enumerate(range(1, bars + 1, PHRASE_BARS), 1)]


def form_markers(form: str) -> list[Marker]:
    """A marker at each section of a form ('intro:4 verse:8 ...'), a returning section numbered
    ('verse', 'chorus', 'verse 2', 'chorus 2')."""
    from stemforge.symbolic.runtime.form import parse_form

    parsed = parse_form(form)
    seen: dict[str, int] = {}
    markers = []
    for section, start in zip(parsed.sections, parsed.starts):
        seen[section.name] = seen.get(section.name, 0) + 1
        label = section.name if seen[section.name] == 1 else f"{section.name} {seen[section.name]}"
        markers.append(Marker(label, start + 1))
    return markers


def set_takes(run_folder: Path, final_folder: Path, takes: Sequence[TakeFolder]) -> list[SetTake]:
    """The takes as the DAW files refer to them: each stem by its path relative to the run
    folder (where the files are written) and its absolute path once the run is in place."""
    result = []
    for number, take in enumerate(takes, 1):
        stems = {role: StemFile.of(run_folder, _joined(take.folder, path), final_folder)
                 for role, path in take.manifest.stems.items()}
        # the tag the take's files carry (it also covers the MIDI and render settings)
        tag = take.manifest.name.rsplit("_", 1)[-1] if take.manifest.name else \
            take_tag(take.manifest.conditions, take.manifest.model.sha256)
        result.append(SetTake(f"{number} {tag}" if len(takes) > 1 else tag, take.arrangement, stems))
    return result


def write_daw_files(run_folder: Path, final_folder: Path, takes: Sequence[TakeFolder], dawproject: bool = False,
                    mixer: Mapping[str, ChannelMix] | None = None, markers: Sequence[Marker] | None = None) -> DawFiles:
    """<name>.als (and <name>.dawproject) at the top of `run_folder`, which will be moved to
    `final_folder`: the first take's name, with `_Ntakes` when there are several."""
    from stemforge.audio.dawproject import write_dawproject
    from stemforge.audio.live_set import write_live_set

    first = takes[0].manifest
    base = first.name if len(takes) == 1 else f"{first.name}_{len(takes)}takes"
    if markers is None:
        form = first.conditions.form
        markers = form_markers(form) if form else phrase_markers(first.conditions.bars)
    in_set = set_takes(run_folder, final_folder, takes)
    write_live_set(run_folder / f"{base}.als", in_set, markers, mixer)
    project = None
    if dawproject:
        project = f"{base}.dawproject"
        write_dawproject(run_folder / project, run_folder, in_set, markers, mixer, title=base,
                         comment=f"stemforge: {first.prompt}".strip(), version=_version())
    return DawFiles(f"{base}.als", project)


def finish_takes(run_folder: Path, final_folder: Path, takes: Sequence[TakeFolder], dawproject: bool = False,
                 mixer: Mapping[str, ChannelMix] | None = None) -> DawFiles:
    """The run's DAW files, then every take's run.json naming them (relative to the take's
    folder), with the sha256 of every file of its folder."""
    from stemforge.pipeline.run_folder import file_hashes

    files = write_daw_files(run_folder, final_folder, takes, dawproject=dawproject, mixer=mixer)
    for take in takes:
        manifest = take.manifest
        manifest.live_set = take_relative(files.live_set, take)
        manifest.dawproject = take_relative(files.dawproject, take)
        if mixer:
            manifest.mixer = {role: {"volume_db": mix.volume_db, "pan": mix.pan} for role, mix in mixer.items()}
        folder = run_folder / take.folder
        manifest.files = file_hashes(folder)
        manifest.write(folder)
    return files


def take_relative(path: str | None, take: TakeFolder) -> str | None:
    """A run-level file as the take's run.json names it (relative to the take's folder)."""
    if path is None:
        return None
    return f"../{path}" if take.folder else path


def read_takes(run_dir: Path) -> list[TakeFolder]:
    """The takes of a run folder written by `pipeline run` (one, or take1..takeN)."""
    from stemforge.pipeline.run_folder import arrangement_from_run

    run_dir = Path(run_dir)
    if (run_dir / MANIFEST_NAME).is_file():
        names = [""]
    else:
        names = sorted((p.name for p in run_dir.glob("take*") if (p / MANIFEST_NAME).is_file()),
                       key=lambda n: int(n[4:]) if n[4:].isdigit() else 0)
    takes = []
    for name in names:
        manifest = RunManifest.read(run_dir / name)
        takes.append(TakeFolder(name, manifest, arrangement_from_run(run_dir / name, manifest)))
    if not takes:
        raise ValueError(f"{run_dir}: no run.json; point it at a folder written by `pipeline run`")
    return takes


def export_with_mixer(run_dir: Path, mixer: Mapping[str, ChannelMix], out: Path) -> DawFiles:
    """A copy of `run_dir` at `out` whose mix WAVs are re-rendered through the mixer (fader and
    pan per stem, as the page plays them) and whose Live Set (and DAWproject, where the run has
    one) carries the same faders and pans. Written beside `out` and moved into place."""
    import numpy as np
    import soundfile

    from stemforge.audio.mixdown import mixdown
    from stemforge.audio.stems import StemSet
    from stemforge.audio.wav import write_wav_24bit_acid
    from stemforge.symbolic.runtime.run_manifest import acid_root_note

    takes = read_takes(run_dir)
    roles = {role for take in takes for role in take.manifest.stems}
    unknown = set(mixer) - roles
    if unknown:
        raise ValueError(f"mixer: no stem {sorted(unknown)[0]!r} in this run (it has {', '.join(sorted(roles))})")
    if out.exists():
        raise FileExistsError(f"{out} exists; an export is never written over another")
    try:  # two threads exporting the same run and mixer at once write two partial folders (atomic_folder)
        with atomic_folder(out) as tmp:
            shutil.copytree(run_dir, tmp, ignore=shutil.ignore_patterns("*.als", "*.dawproject"), dirs_exist_ok=True)
            for take in takes:
                manifest = take.manifest
                if not manifest.stems or not manifest.mix:
                    continue
                folder = tmp / take.folder
                conditions = manifest.conditions
                audio = {role: np.ascontiguousarray(soundfile.read(folder / path, dtype="float32",
                                                                   always_2d=True)[0].T)
                         for role, path in manifest.stems.items()}
                stems = StemSet(manifest.sample_rate or 0, conditions.bpm, conditions.bars, audio)
                mix = mixdown(stems, {role: m for role, m in mixer.items() if role in audio})
                write_wav_24bit_acid(folder / manifest.mix, mix, stems.sample_rate, stems.bpm, stems.beats,
                                     root_note=acid_root_note(conditions.key))
            had_project = any(t.manifest.dawproject for t in takes)
            files = finish_takes(tmp, out, takes, dawproject=had_project, mixer=mixer)
    except FolderExistsError as error:  # the same export finished first elsewhere
        raise FileExistsError(f"{out} exists; an export is never written over another") from error
    return files


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stemforge")
    except PackageNotFoundError:
        return "0"


def _joined(folder: str, path: str) -> str:
    return f"{folder}/{path}" if folder else path
