"""Progress a person can follow: one run's progress only moves forward (it once jumped back
from 55% to 0% when rendering started), and long loops write a few plain lines, not
carriage-return redraws, when stderr is a log file."""

from __future__ import annotations

from pathlib import Path

from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.progress import PlainProgress, progress_bar


def test_a_run_with_stems_and_takes_reports_progress_that_only_moves_forward(tiny_model: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    run(RunRequest(prompt="rock 120bpm", model=tiny_model, bars=1, seed=2, stems=True, takes=2, out=tmp_path / "r"),
        lambda stage, fraction: seen.append((stage, fraction)))
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions), seen
    assert fractions[-1] == 1.0 and any(stage.startswith("take 2/2") for stage, _ in seen)


def test_a_loop_writes_about_ten_plain_lines_to_a_log(capsys) -> None:
    items = list(progress_bar(range(1000), desc="tokenizing", unit="window"))  # stderr is captured: not a terminal
    assert items == list(range(1000))
    err = capsys.readouterr().err
    assert "\r" not in err and 9 <= len(err.splitlines()) <= 11, err
    assert err.splitlines()[0].startswith("tokenizing: 100/1000 windows, 10%")
    assert err.splitlines()[-1].startswith("tokenizing: 1000 window(s) in")


def test_a_manual_bar_says_how_long_is_left_and_its_postfix(capsys) -> None:
    bar = progress_bar(total=4, desc="training", unit="step", initial=1)
    assert isinstance(bar, PlainProgress)
    bar.set_postfix(loss="2.310")
    for _ in range(3):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("training: 2/4 steps, 50%") and "left" in lines[0] and lines[0].endswith("loss=2.310")
    assert lines[-1].startswith("training: 4 step(s) in")
    assert progress_bar(total=3, desc="quiet", enabled=False) is not None and capsys.readouterr().err == ""


def test_pipeline_run_writes_one_plain_line_per_stage_to_a_log(tiny_model: Path, tmp_path: Path, capsys) -> None:
    from stemforge.pipeline.cli import main

    assert main(["run", "--prompt", "rock", "--model", str(tiny_model), "--bars", "1", "--seed", "1",
                 "--out", str(tmp_path / "r")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("run: ")]
    assert [line.split("% ", 1)[1] for line in lines] == ["loaded model", "composing", "composed", "done"][:len(lines)]
    assert lines[-1] == "run: 100% done" and "\r" not in "".join(lines)
    percents = [int(line[5:8]) for line in lines]
    assert percents == sorted(percents)
