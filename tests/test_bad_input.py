"""Bad input and hostile run folders as a producer (or a stranger's run folder) brings them: each is
one line naming the file and what to do, exit 2, nothing written, never a traceback. `pipeline
render` stays inside the run folder whatever run.json says, and renders only the MIDI the run
wrote (checked by sha256), never rewriting the evidence of a swapped file. A full disk while
writing is one line too (a real, size-limited tmpfs)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemforge.pipeline.cli import main
from tests.small_disk import fill, limited_files, small_disk

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(capsys: pytest.CaptureFixture, *args) -> tuple[int, list[str]]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if not line.startswith("run: ")]


@pytest.fixture(scope="module")
def made_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MIDI-only run (2 bars) to copy and spoil."""
    out = tmp_path_factory.mktemp("made") / "run"
    assert main(["run", "--prompt", "funk 100bpm", "--model", str(tiny_model), "--bars", "2", "--seed", "4",
                 "--out", str(out)]) == 0
    return out


def _copy(made_run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "deep" / "er" / "run"
    shutil.copytree(made_run, folder)
    return folder


def _edit(run_dir: Path, **fields) -> None:
    data = json.loads((run_dir / "run.json").read_text())
    data.update(fields)
    (run_dir / "run.json").write_text(json.dumps(data))


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


@pytest.mark.parametrize("name", ["../../../escaped", "/tmp/stemforge-escaped/x", "..", ".hidden", "a\\b"])
def test_render_stays_inside_the_run_folder_whatever_run_json_names(name: str, made_run: Path, tmp_path: Path,
                                                                    capsys) -> None:
    run_dir = _copy(made_run, tmp_path)
    _edit(run_dir, name=name)
    before = _files_under(tmp_path)
    code, lines = _run(capsys, "render", run_dir, "--dry")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: RUN_DIR: ") and "name" in lines[0], lines
    assert _files_under(tmp_path) == before and not Path("/tmp/stemforge-escaped").exists()


def test_run_json_paths_that_leave_the_folder_are_refused(made_run: Path, tmp_path: Path, capsys) -> None:
    run_dir = _copy(made_run, tmp_path)
    midi = json.loads((run_dir / "run.json").read_text())["midi"]
    _edit(run_dir, midi={**midi, "bass": "../../../../etc/hostname"})
    code, lines = _run(capsys, "render", run_dir, "--dry")
    assert code == 2 and len(lines) == 1 and "not a path inside the run folder" in lines[0], lines


def test_render_refuses_a_swapped_midi_file_and_keeps_the_evidence(made_run: Path, tmp_path: Path, capsys) -> None:
    run_dir = _copy(made_run, tmp_path)
    manifest = json.loads((run_dir / "run.json").read_text())
    bass, drums = run_dir / manifest["midi"]["bass"], run_dir / manifest["midi"]["drums"]
    bass.write_bytes(drums.read_bytes())  # another valid MIDI file in the bass's place
    before, files = (run_dir / "run.json").read_bytes(), _files_under(tmp_path)
    code, lines = _run(capsys, "render", run_dir, "--dry")
    assert code == 2 and len(lines) == 1 and "is not the file this run wrote" in lines[0], lines
    assert (run_dir / "run.json").read_bytes() == before and _files_under(tmp_path) == files
    # hashes edited to "match": a wrong sha256 for a file is refused the same way
    manifest["files"][manifest["midi"]["bass"]] = "0" * 64
    (run_dir / "run.json").write_text(json.dumps(manifest))
    bass.write_bytes((made_run / manifest["midi"]["bass"]).read_bytes())
    code, lines = _run(capsys, "render", run_dir, "--dry", "--out", tmp_path / "copy")
    assert code == 2 and "is not the file this run wrote" in lines[0] and not (tmp_path / "copy").exists()


def _wav_with_rate(path: Path, rate: int) -> Path:
    t = np.arange(44100 * 3) / 44100
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"fmt ")
    data[at + 12:at + 16] = struct.pack("<I", rate)
    path.write_bytes(bytes(data))
    return path


def _nan_wav(path: Path) -> Path:
    soundfile.write(path, np.full(44100 * 3, np.nan, np.float32), 44100, subtype="FLOAT")
    return path


def _zero_ticks_midi(path: Path) -> Path:
    track = b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 0) + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


def _nested(run_dir: Path) -> Path:
    (run_dir / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    return run_dir


def _huge(run_dir: Path) -> Path:
    data = json.loads((run_dir / "run.json").read_text())
    data["conditions"]["bars"] = 100_000
    (run_dir / "run.json").write_text(json.dumps(data))
    return run_dir


# (what to spoil, the command, what the one line must say)
CASES = {
    "like with a 0 Hz header": (lambda d, r: ["run", "--prompt", "lofi", "--like", _wav_with_rate(d / "a.wav", 0)],
                                "--like: "),
    "like full of NaN": (lambda d, r: ["run", "--prompt", "lofi", "--like", _nan_wav(d / "n.wav")], "not numbers"),
    "seed clip with 0 ticks per quarter": (
        lambda d, r: ["run", "--prompt", "lofi", "--seed-midi", _zero_ticks_midi(d / "z.mid")], "ticks per quarter"),
    "render of a deeply nested run.json": (lambda d, r: ["render", _nested(r), "--dry"], "nested too deeply"),
    "--from a deeply nested run.json": (lambda d, r: ["run", "--from", _nested(r), "--keep", "drums"],
                                        "nested too deeply"),
    "eval of a deeply nested run.json": (lambda d, r: ["eval", _nested(r), "--out", d / "report"], "nested too deeply"),
    "render of 100000 bars": (lambda d, r: ["render", _huge(r), "--dry"], "bars: 100000"),
    "--from 100000 bars": (lambda d, r: ["run", "--from", _huge(r), "--keep", "drums"], "bars: 100000"),
    "eval of 100000 bars": (lambda d, r: ["eval", _huge(r), "--out", d / "report"], "bars: 100000"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_input_is_one_line_and_writes_nothing(case: str, made_run: Path, tiny_model: Path, tmp_path: Path,
                                                        capsys) -> None:
    spoil, expected = CASES[case]
    run_dir = _copy(made_run, tmp_path)
    args = spoil(tmp_path, run_dir)
    if args[0] == "run":
        args += ["--model", tiny_model, "--out", tmp_path / "out", "--bars", "2"]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, lines = _run(capsys, *args)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (case, lines)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_seed_clip_that_fills_the_requested_bars_is_not_a_traceback(made_run: Path, tiny_model: Path,
                                                                      tmp_path: Path, capsys) -> None:
    """A clip whose parts fill every asked bar (it ended in StopIteration, "a bug in stemforge")
    is one line naming --bars, and nothing is written."""
    manifest = json.loads((made_run / "run.json").read_text())
    code, lines = _run(capsys, "run", "--prompt", "funk", "--seed-midi", made_run / manifest["midi"]["full"],
                       "--bars", "2", "--model", tiny_model, "--out", tmp_path / "out")
    assert code == 2 and len(lines) == 1 and "--bars" in lines[0], lines
    assert not any("internal error" in line for line in lines), lines
    assert not (tmp_path / "out").exists()


def test_a_full_disk_while_writing_midi_is_one_line_and_leaves_nothing(tiny_model: Path, tmp_path: Path) -> None:
    """`pipeline run` onto a file system with 8 KB free: MIDI files fail to write (this ended in
    an EOFError traceback: symusic wrote an empty file without a word)."""
    disk = tmp_path / "disk"
    with small_disk(disk, 256 * 1024) as mounted:
        command = [sys.executable, "-m", "stemforge.pipeline.cli", "run", "--prompt", "lofi", "--bars", "2",
                   "--model", str(tiny_model), "--out", str(disk / "run"), "--seed", "1"]
        if mounted:
            fill(disk, 8 * 1024)
            result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        else:  # no mount rights: the same writes fail with EFBIG under a file size limit
            result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                                    preexec_fn=limited_files(200))
        lines = [line for line in result.stderr.splitlines() if not line.startswith("run: ")]
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: disk full: "), result.stderr
        assert not (disk / "run").exists() and not list(disk.glob(".*partial*"))
