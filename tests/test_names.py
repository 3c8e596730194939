"""File names a producer drops into one sample folder: two files that differ never share a name
(any sampling setting, any render setting: the tag is made from the MIDI the run wrote and how
it was rendered), the same request gets the same names, keys are spelled as typed ("Db major"
is Dbmaj, not C#maj), and files are written with the user's umask, not owner-only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemforge.pipeline.cli import main
from stemforge.symbolic.music.conditions import build_conditions

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(tiny_model: Path, out: Path, *extra: str) -> dict:
    args = ["run", "--prompt", "hiphop 90bpm", "--model", str(tiny_model), "--out", str(out), "--seed", "11",
            "--bars", "2", *extra]
    assert main(args) == 0
    return json.loads((out / "run.json").read_text())


def _names(manifest: dict) -> set[str]:
    return {Path(p).name for p in [*manifest["midi"].values(), *manifest["stems"].values(), manifest.get("mix"),
                                   manifest.get("live_set")] if p}


def _kit(folder: Path) -> Path:
    folder.mkdir()
    for name, hz in (("kick", 55), ("snare", 190), ("hat", 7000)):
        t = np.arange(int(0.2 * 44100)) / 44100
        soundfile.write(folder / f"{name}.wav", (0.8 * np.exp(-t * 30) * np.sin(2 * np.pi * hz * t)).astype(np.float32),
                        44100)
    return folder


def test_every_setting_that_changes_a_file_changes_its_name(tiny_model: Path, tmp_path: Path, capsys) -> None:
    base = _run(tiny_model, tmp_path / "base")
    again = _run(tiny_model, tmp_path / "again")
    assert base["name"] == again["name"]  # the same request, the same names
    for flags in (["--temperature", "0.6"], ["--top-k", "4"], ["--top-p", "0.5"], ["--quantize"]):
        other = _run(tiny_model, tmp_path / "-".join(flags).strip("-"), *flags)
        same_notes = all((tmp_path / "base" / base["midi"][r]).read_bytes() ==
                         (tmp_path / "-".join(flags).strip("-") / other["midi"][r]).read_bytes() for r in base["midi"])
        assert (other["name"] == base["name"]) == same_notes, flags
        assert not same_notes or flags == ["--top-k", "4"], flags  # these settings did change the notes
    # the same MIDI rendered twice with other sounds: other audio, other names
    rendered = []
    for label, flags in (("dry", ["--dry"]), ("wet", []), ("kit", ["--kit", str(_kit(tmp_path / "sounds"))]),
                         ("bass38", ["--instrument", "bass=38"]), ("loud", ["--loudness", "-12"])):
        assert main(["render", str(tmp_path / "base"), "--out", str(tmp_path / label), *flags]) == 0, label
        rendered.append(json.loads((tmp_path / label / "run.json").read_text()))
    stem_names = [_names({**m, "midi": {}}) for m in rendered]
    for i, first in enumerate(stem_names):
        for second in stem_names[i + 1:]:
            assert not first & second, (first, second)  # no WAV or Live set shares a name with another render's
    capsys.readouterr()


def test_a_key_keeps_the_spelling_it_was_typed_with(tiny_model: Path, tmp_path: Path) -> None:
    assert build_conditions("lofi in Db major").key == "Db major"
    assert build_conditions("lofi", key="C#m").key == "C# minor"
    manifest = _run(tiny_model, tmp_path / "db", "--key", "Db major")
    assert manifest["conditions"]["key"] == "Db major" and "_Dbmaj_" in manifest["name"]


def test_a_bare_decimal_tempo_in_the_prompt_is_the_tempo() -> None:
    assert build_conditions("lofi 87.5").bpm == 87.5
    assert build_conditions("lofi 87.5 chill, 4 bars").bars == 4


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_files_are_written_with_the_users_umask(umask: int, file_mode: int, folder_mode: int, tiny_model: Path,
                                                tmp_path: Path) -> None:
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "stemforge.pipeline.cli", "run", "--prompt", "lofi", "--model",
                    str(tiny_model), "--out", str(out), "--bars", "1", "--stems", "--seed", "2"], cwd=REPO_ROOT,
                   check=True, capture_output=True, preexec_fn=lambda: os.umask(umask))
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert {k: oct(v) for k, v in modes.items() if v != (folder_mode if (out / k).is_dir() else file_mode)} == {}
    assert any(k.endswith(".wav") for k in modes) and "run.json" in modes
