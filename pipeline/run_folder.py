"""A run folder read back: the sha256 of its files (run.json records them), a part's MIDI file
checked against that record, and the arrangement the folder holds. `pipeline run` (takes,
--from), `render`, the DAW exports and the service read run folders through these."""

from __future__ import annotations

from pathlib import Path

from stemforge.pipeline.request import RunError
from stemforge.symbolic.core.hashing import file_sha256
from stemforge.symbolic.music.arrangement import Arrangement, ArrangementError, Track, read_tracks
from stemforge.symbolic.runtime.run_manifest import MANIFEST_NAME, RunManifest


def file_hashes(run_dir: Path) -> dict[str, str]:
    """Every file of a run folder but run.json itself -> its sha256."""
    return {str(p.relative_to(run_dir)): file_sha256(p) for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.relative_to(run_dir) != Path(MANIFEST_NAME)}


def verified_midi(run_dir: Path, manifest: RunManifest, role: str, what: str = "RUN_DIR") -> Path:
    """The MIDI file of `role` in a run folder, checked against the sha256 run.json holds for
    it: a swapped file, or hashes edited to match one, is refused rather than used (and its
    evidence rewritten). A run.json without hashes (written before stemforge kept them) is
    trusted as it is."""
    path = manifest.midi_path(role, run_dir)
    if path is None or not path.is_file():
        raise RunError(f"{what}: {run_dir} has no {role} MIDI file ({manifest.midi.get(role)}); was a file removed?")
    if manifest.files:
        relative = manifest.midi[role]
        recorded = manifest.files.get(relative)
        if recorded is None or file_sha256(path) != recorded:
            raise RunError(f"{what}: {path} is not the file this run wrote (its sha256 differs from run.json's); "
                           "a changed MIDI file is not rendered: run `pipeline run --seed-midi` on it instead")
    return path


def arrangement_from_run(run_dir: Path, manifest: RunManifest, what: str = "RUN_DIR") -> Arrangement:
    tracks: dict[str, Track] = {}
    for role in manifest.parts():
        try:
            tracks.update(read_tracks(verified_midi(run_dir, manifest, role, what)))
        except ArrangementError as error:
            raise RunError(f"{what}: {error}") from error
    return Arrangement(manifest.conditions, tracks)
