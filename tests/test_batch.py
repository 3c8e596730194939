"""`pipeline batch` as a producer uses it: a prompts file with per-line flags rendered into one
folder with an index, in parallel on local workers, resumed by a second call; a bad line is one
error naming the file and the line, before anything is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile

from stemforge.pipeline.cli import main

PROMPTS = """# a night's session
rock 120bpm --seed 3

hiphop 90bpm --bars 1 --seed 4   # a short one
"lofi 80bpm, chill" --takes 2 --seed 10
"""


def _batch(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = main(["batch", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_batch_renders_every_line_into_one_indexed_folder_and_resumes(tiny_model: Path, tmp_path: Path,
                                                                      capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS)
    out = tmp_path / "night"
    code, stdout, stderr = _batch(capsys, prompts, "--out", out, "--model", tiny_model, "--bars", 2, "--stems",
                                  "--workers", 2)
    assert code == 0, stderr
    assert "3/3 items done, 0 failed" in stdout
    assert "batch: 1/3 items" in stderr and "left" in stderr  # the progress line, with its ETA

    index = json.loads((out / "index.json").read_text())
    assert index["counts"] == {"done": 3, "failed": 0, "pending": 0}
    rock, hiphop, lofi = index["items"]
    assert [i["line"] for i in index["items"]] == [2, 4, 5]
    assert rock["prompt"] == "rock 120bpm --seed 3" and rock["takes"][0]["seed"] == 3
    assert rock["takes"][0]["bars"] == 2 and hiphop["takes"][0]["bars"] == 1  # batch default, line's own flag
    assert [t["seed"] for t in lofi["takes"]] == [10, 11] and lofi["takes"][1]["folder"].endswith("/take2")
    for item in index["items"]:
        for take in item["takes"]:
            assert take["timings"]["total"] > 0
            mix = out / take["files"]["mix"]
            audio, rate = soundfile.read(mix)
            assert audio.shape[0] == round(take["bars"] * 4 * 60 / take["bpm"] * rate)
            assert all((out / path).is_file() for path in take["files"]["stems"].values())
    rows = list(csv.DictReader((out / "index.csv").open()))
    assert [(r["line"], r["take"], r["seed"]) for r in rows] == [("2", "1", "3"), ("4", "1", "4"),
                                                                 ("5", "1", "10"), ("5", "2", "11")]
    assert rows[2]["prompt"] == '"lofi 80bpm, chill" --takes 2 --seed 10' and rows[2]["mix"] == lofi["takes"][0]["files"]["mix"]
    assert not list((out / "items").glob(".*"))  # no partial folders

    # a second call skips what is finished; a new line is the only thing rendered
    stamps = {p: p.stat().st_mtime_ns for p in (out / "items").rglob("run.json")}
    prompts.write_text(PROMPTS + "house 124bpm --seed 5\n")
    code, stdout, stderr = _batch(capsys, prompts, "--out", out, "--model", tiny_model, "--bars", 2, "--stems")
    assert code == 0, stderr and "4/4 items done" in stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    index = json.loads((out / "index.json").read_text())
    assert index["counts"]["done"] == 4 and index["items"][3]["takes"][0]["seed"] == 5
    assert len(list((out / "items").iterdir())) == 4


@pytest.mark.parametrize("line, words", [
    ("rock --bpm 900", "prompts.txt:3: bpm: 900 is out of range"),
    ("rock --key H", "prompts.txt:3: "),
    ("rock --bars 2 --out /tmp/x", "prompts.txt:3: unrecognized arguments: --out /tmp/x (--out and --model"),
    ("rock --tempo 90", "prompts.txt:3: unrecognized arguments: --tempo"),
    ('"rock 120', "prompts.txt:3: No closing quotation"),
], ids=["bpm", "key", "out-per-line", "unknown-flag", "quote"])
def test_a_bad_line_is_one_error_naming_file_and_line_and_nothing_is_written(
        line: str, words: str, tiny_model: Path, tmp_path: Path, capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"rock 120bpm\nhouse\n{line}\n")
    out = tmp_path / "batch"
    code, stdout, stderr = _batch(capsys, prompts, "--out", out, "--model", tiny_model)
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and words in stderr, stderr
    assert not out.exists()


def test_batch_never_takes_over_a_folder_that_is_not_a_batch(tiny_model: Path, tmp_path: Path, capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("rock\n")
    taken = tmp_path / "mine"
    taken.mkdir()
    (taken / "song.wav").write_bytes(b"RIFF")
    code, _, stderr = _batch(capsys, prompts, "--out", taken, "--model", tiny_model)
    assert code == 2 and "is not a batch folder" in stderr
    assert sorted(p.name for p in taken.iterdir()) == ["song.wav"]
    code, _, stderr = _batch(capsys, tmp_path / "missing.txt", "--out", tmp_path / "b", "--model", tiny_model)
    assert code == 2 and "missing.txt does not exist" in stderr
