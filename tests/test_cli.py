"""The `pipeline` command as a producer uses it: run, continue a clip, regenerate parts,
and one-line errors for bad input with nothing half-written."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest
import soundfile

from stemforge.pipeline.cli import main
from stemforge.symbolic.core.ticks import TICKS_PER_BAR
from stemforge.symbolic.music.arrangement import read_tracks
from tests.midi_fixtures import write_groove


def _run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr without the plain progress lines ("run:  55% composed")
    a run writes when stderr is not a terminal (tests/test_progress.py checks those)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    messages = [line for line in captured.err.splitlines(keepends=True) if not line.startswith("run: ")]
    return code, captured.out, "".join(messages)


def _midi_bpm_and_length(path: Path) -> tuple[float, int]:
    midi = mido.MidiFile(path)
    tempo = next(m.tempo for t in midi.tracks for m in t if m.type == "set_tempo")
    return mido.tempo2bpm(tempo), midi.ticks_per_beat


def test_run_writes_every_role_with_exact_bars_and_bpm(tiny_model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, stdout, _ = _run(capsys, "run", "--prompt", "house 80bpm", "--model", tiny_model, "--out", out,
                           "--seed", 7)
    assert code == 0 and str(out) in stdout
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["conditions"]["bpm"] == 80 and manifest["conditions"]["bars"] == 8
    assert set(manifest["midi"]) == {"drums", "bass", "melody", "full"}
    for role in ("drums", "bass", "melody"):
        path = out / manifest["midi"][role]
        bpm, _ = _midi_bpm_and_length(path)
        assert bpm == pytest.approx(80.0, abs=1e-6)
        track = read_tracks(path)[role]
        assert track.notes and track.end_tick() <= 8 * TICKS_PER_BAR
    assert set(read_tracks(out / manifest["midi"]["full"])) == {"drums", "bass", "melody"}
    assert manifest["files"][manifest["midi"]["full"]] and manifest["model"]["sha256"]
    assert manifest["sampling"]["decoder"] == "int8"  # which decoder made it: a seed repeats within one
    # every file says what it is in a DAW's browser: genre, tempo, key, and a tag unique per take
    name = manifest["name"]
    key = manifest["conditions"]["key"].replace(" minor", "min").replace(" major", "maj")
    assert re.fullmatch(rf"house_80bpm_{re.escape(key)}_take[0-9a-f]{{4}}", name), name
    assert sorted(manifest["midi"].values()) == sorted([f"{name}_full.mid"] + [f"midi/{name}_{r}.mid"
                                                                               for r in ("drums", "bass", "melody")])
    assert not list(tmp_path.glob(".*partial*"))


def test_same_seed_gives_byte_identical_files(tiny_model: Path, tmp_path: Path, capsys) -> None:
    for name in ("a", "b"):
        assert _run(capsys, "run", "--prompt", "rock 120bpm", "--model", tiny_model, "--out", tmp_path / name,
                    "--seed", 3, "--bars", 4)[0] == 0
    manifest = json.loads((tmp_path / "a" / "run.json").read_text())
    assert manifest["midi"] == json.loads((tmp_path / "b" / "run.json").read_text())["midi"]  # same names too
    for relative in manifest["midi"].values():
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()


def test_unknown_genre_maps_to_a_known_one_and_says_so(tiny_model: Path, tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "run", "--prompt", "techno 130", "--model", tiny_model, "--out", tmp_path / "r",
                        "--seed", 1, "--bars", 2)
    assert code == 0
    assert "techno" in err and "house" in err and len(err.strip().splitlines()) == 1
    assert json.loads((tmp_path / "r" / "run.json").read_text())["model_genre"] == "house"


def test_seed_clip_bars_are_kept_verbatim_and_continued(tiny_model: Path, tmp_path: Path, capsys) -> None:
    clip = write_groove(tmp_path / "clip.mid", "hiphop", bpm=90, bars=2, seed=4)
    out = tmp_path / "continued"
    assert _run(capsys, "run", "--prompt", "hiphop 90bpm", "--model", tiny_model, "--out", out,
                "--seed-midi", clip, "--bars", 4, "--seed", 2)[0] == 0
    original = read_tracks(clip)
    composed = read_tracks(out / json.loads((out / "run.json").read_text())["midi"]["full"])
    for role, track in original.items():
        kept = [n for n in composed[role].notes if n.start < 2 * TICKS_PER_BAR]
        assert kept == track.notes, role
        assert composed[role].end_tick() <= 4 * TICKS_PER_BAR


def test_regenerate_parts_around_kept_ones(tiny_model: Path, tmp_path: Path, capsys) -> None:
    first = tmp_path / "first"
    assert _run(capsys, "run", "--prompt", "rock 120bpm", "--model", tiny_model, "--out", first, "--seed", 1,
                "--bars", 4)[0] == 0
    second = tmp_path / "second"
    assert _run(capsys, "run", "--from", first, "--keep", "drums,melody", "--model", tiny_model, "--out", second,
                "--seed", 99)[0] == 0
    before, manifest = (json.loads((folder / "run.json").read_text()) for folder in (first, second))
    for role in ("drums", "melody"):
        assert read_tracks(first / before["midi"][role]) == read_tracks(second / manifest["midi"][role])
    assert manifest["conditions"]["bpm"] == 120 and manifest["conditions"]["bars"] == 4
    assert read_tracks(first / before["midi"]["bass"]) != read_tracks(second / manifest["midi"]["bass"])
    assert manifest["name"] != before["name"]  # another take: no file name in common


def _bad_inputs(tmp_path: Path, tiny_model: Path) -> dict[str, tuple[list, str]]:
    not_midi = tmp_path / "notes.mid"
    not_midi.write_text("hello")
    long_clip = write_groove(tmp_path / "long.mid", "rock", 120, bars=8)
    run_without_json = tmp_path / "not_a_run"
    run_without_json.mkdir()
    existing = tmp_path / "exists"
    existing.mkdir()
    fake_model = tmp_path / "fake_model"
    fake_model.mkdir()
    empty = tmp_path / "empty_midi"
    empty.mkdir()
    base = ["run", "--model", tiny_model, "--seed", 1]
    return {
        "missing seed clip": (base + ["--seed-midi", tmp_path / "nope.mid", "--out", tmp_path / "o1"], "--seed-midi"),
        "non-MIDI seed clip": (base + ["--seed-midi", not_midi, "--out", tmp_path / "o2"], "--seed-midi"),
        "clip longer than bars": (base + ["--seed-midi", long_clip, "--bars", 4, "--out", tmp_path / "o3"],
                                  "longer than --bars"),
        "keep without from": (base + ["--keep", "drums", "--out", tmp_path / "o4"], "--keep"),
        "from without run.json": (base + ["--from", run_without_json, "--keep", "drums", "--out", tmp_path / "o5"],
                                  "run.json"),
        "keep unknown role": (base + ["--keep", "vocals", "--out", tmp_path / "o6"], "--keep"),
        "model dir that is not one": (["run", "--model", fake_model, "--out", tmp_path / "o7"], "--model"),
        "existing out": (base + ["--out", existing], "already exists"),
        "impossible bpm": (base + ["--bpm", 400, "--out", tmp_path / "o8"], "bpm"),
        "unknown key": (base + ["--key", "H minor", "--out", tmp_path / "o9"], "key"),
        "too many bars": (base + ["--bars", 500, "--out", tmp_path / "o10"], "bars"),
        "empty data folder": (["prepare", empty, "--out", tmp_path / "d"], "MIDI_DIR"),
        "train on a non-dataset": (["train", empty, "--out", tmp_path / "m"], "DATA_DIR"),
        "NaN temperature": (base + ["--temperature", "nan", "--out", tmp_path / "o11"], "temperature"),
        "infinite key bias": (base + ["--key-bias", "inf", "--out", tmp_path / "o12"], "key-bias"),
        "70-bit seed": (["run", "--model", tiny_model, "--seed", 2**70, "--out", tmp_path / "o13"], "seed"),
        "a key of 20,000 spaces": (base + ["--key", "a" + " " * 20000 + "x", "--out", tmp_path / "o14"],
                                   "unknown key"),
        "instrument path": (base + ["--instrument", "bass=/etc/passwd", "--stems", "--out", tmp_path / "o15"],
                            "not a path"),
        # checked before the model loads: a folder that is not a model would be the error otherwise
        "bad key before the model": (["run", "--model", fake_model, "--key", "H major", "--out", tmp_path / "o16"],
                                     "key"),
        "bad bpm before the model": (["run", "--model", fake_model, "--bpm", 0.5, "--out", tmp_path / "o17"], "bpm"),
        "unknown kit before the model": (["run", "--model", fake_model, "--stems", "--kit", "nokit",
                                          "--out", tmp_path / "o18"], "--kit"),
        "unknown preset before the model": (["run", "--model", fake_model, "--stems", "--preset", "nopreset",
                                             "--out", tmp_path / "o19"], "preset"),
        "bad sample rate before the model": (["run", "--model", fake_model, "--stems", "--sample-rate", 1000,
                                              "--out", tmp_path / "o20"], "--sample-rate"),
        "musicgen without weights before the model": (["run", "--model", fake_model, "--stems", "--renderer",
                                                       "musicgen", "--out", tmp_path / "o21"], "--musicgen"),
    }


CASES = ["missing seed clip", "non-MIDI seed clip", "clip longer than bars", "keep without from",
         "from without run.json", "keep unknown role", "model dir that is not one", "existing out",
         "impossible bpm", "unknown key", "too many bars", "empty data folder", "train on a non-dataset",
         "NaN temperature", "infinite key bias", "70-bit seed", "a key of 20,000 spaces", "instrument path",
         "bad key before the model", "bad bpm before the model", "unknown kit before the model",
         "unknown preset before the model", "bad sample rate before the model",
         "musicgen without weights before the model"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_writes_nothing(case: str, tiny_model: Path, tmp_path: Path, capsys) -> None:
    args, expected = _bad_inputs(tmp_path, tiny_model)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = _run(capsys, *args)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_help_documents_every_flag_with_defaults() -> None:
    result = subprocess.run([sys.executable, "-m", "stemforge.pipeline.cli", "run", "--help"], capture_output=True, text=True,
                            check=True)
    for flag in ("--bars", "--bpm", "--key", "--genre", "--seed", "--temperature", "--top-k", "--top-p",
                 "--seed-midi", "--from", "--keep", "--stems", "--model", "--out"):
        assert flag in result.stdout
    assert "(default: 0.95)" in result.stdout
    assert "(0 = off) (default: 0)" in result.stdout  # a default of 0 is shown too
    from stemforge.audio.render import SUPPORTED_SAMPLE_RATES

    help_text = " ".join(result.stdout.split())
    assert all(str(rate) in help_text.rsplit("--sample-rate SAMPLE_RATE", 1)[1][:200] for rate in SUPPORTED_SAMPLE_RATES)


def test_a_prompt_with_from_changes_only_what_it_names(tiny_model: Path, tmp_path: Path, capsys) -> None:
    first = tmp_path / "first"
    assert _run(capsys, "run", "--prompt", "rock 120bpm in E minor", "--model", tiny_model, "--out", first,
                "--seed", 1, "--bars", 2)[0] == 0
    second = tmp_path / "second"
    assert _run(capsys, "run", "--from", first, "--keep", "drums", "--prompt", "busy", "--model", tiny_model,
                "--out", second, "--seed", 2)[0] == 0
    conditions = json.loads((second / "run.json").read_text())["conditions"]
    assert (conditions["genre"], conditions["bpm"], conditions["key"], conditions["bars"]) == (
        "rock", 120.0, "E minor", 2)
    assert conditions["density"] == "busy"


def test_resume_takes_the_checkpoints_own_config(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    """The hint printed after Ctrl-C is `--resume` without `--config`: it must continue a
    `tiny` run as tiny (it used to build the default `small` size and crash on the weights)."""
    out = tmp_path / "m"
    assert _run(capsys, "train", tiny_dataset, "--out", out, "--config", "tiny", "--steps", 3)[0] == 0
    code, stdout, stderr = _run(capsys, "train", tiny_dataset, "--out", out, "--resume", "--steps", 6)
    assert code == 0, stderr
    meta = json.loads((out / "stemforge.json").read_text())
    assert meta["steps"] == 6 and meta["config"]["n_layer"] == 2
    code, _, stderr = _run(capsys, "train", tiny_dataset, "--out", out, "--resume", "--config", "small", "--steps", 9)
    assert code == 2 and stderr.startswith("error: --config: the checkpoint's model has another size (n_layer 2 vs 6")


def test_sigterm_during_a_run_leaves_nothing_behind(tiny_model: Path, tmp_path: Path) -> None:
    """`kill` (SIGTERM) unwinds like Ctrl-C: the hidden partial folder goes too."""
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "stemforge.pipeline.cli", "run", "--prompt", "rock 120bpm", "--model",
                                str(tiny_model), "--bars", "16", "--stems", "--seed", "3", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while process.poll() is None and not list(tmp_path.glob(".run.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_run_that_loses_the_race_for_its_folder_says_so(tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    """Two runs with one --out: the second to finish gets a one-line error, and nothing of it stays."""
    import stemforge.pipeline.run as run_module
    import stemforge.pipeline.run_folder as run_folder_module

    out = tmp_path / "run"
    real_hashes = run_folder_module.file_hashes

    def another_run_finishes_first(folder: Path) -> dict:
        (out / "midi").mkdir(parents=True)
        return real_hashes(folder)

    monkeypatch.setattr(run_folder_module, "file_hashes", another_run_finishes_first)
    with pytest.raises(run_module.RunError, match="created by another run while this one composed"):
        run_module.run(run_module.RunRequest(prompt="rock", model=tiny_model, bars=2, seed=1, out=out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and list(out.iterdir()) == [out / "midi"]


# ------------------------------------------------------------------ pipeline render (new stems for a run)

def _tree(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def midi_only_run(tiny_model: Path, tmp_path: Path, capsys) -> Path:
    run_dir = tmp_path / "runs" / "take"
    assert _run(capsys, "run", "--prompt", "funk 100bpm", "--model", tiny_model, "--bars", 2, "--seed", 4,
                "--out", run_dir)[0] == 0
    return run_dir


def test_render_gives_a_midi_only_run_its_stems_in_place(midi_only_run: Path, capsys) -> None:
    midi_before = {k: v for k, v in _tree(midi_only_run).items() if k.endswith(".mid")}
    code, stdout, stderr = _run(capsys, "render", midi_only_run, "--dry")
    assert code == 0, stderr
    manifest = json.loads((midi_only_run / "run.json").read_text())
    assert set(manifest["stems"]) == {"drums", "bass", "melody"} and (midi_only_run / manifest["mix"]).is_file()
    seconds = 2 * 4 * 60 / 100
    for relative in manifest["stems"].values():
        audio, rate = soundfile.read(midi_only_run / relative)
        assert rate == 44100 and audio.shape == (round(seconds * 44100), 2)
    assert {k: v for k, v in _tree(midi_only_run).items() if k.endswith(".mid")} == midi_before
    assert sorted(p.name for p in midi_only_run.parent.iterdir()) == ["take"]  # no backup or partial left
    # the run's Live Set now holds the stems too, read back by an independent Live-set reader
    buildable = pytest.importorskip("buildable", reason="buildable (dev extra) reads Live sets")
    live_set = buildable.LiveSet.from_file(midi_only_run / manifest["live_set"])
    assert [(type(t).__name__, t.user_name) for t in live_set.primary_tracks] == \
        [("AudioTrack", r) for r in ("drums", "bass", "melody")] + [("MidiTrack", f"{r} MIDI") for r in ("drums", "bass", "melody")]
    assert live_set.main_track.device_chain.mixer.tempo.manual == 100


def test_render_never_replaces_stems_and_copies_to_out(midi_only_run: Path, tmp_path: Path, capsys) -> None:
    assert _run(capsys, "render", midi_only_run, "--dry")[0] == 0
    rendered = _tree(midi_only_run)
    code, _, stderr = _run(capsys, "render", midi_only_run)
    assert code == 2 and "already has stems; pass --out" in stderr
    copy = tmp_path / "wet"
    code, _, stderr = _run(capsys, "render", midi_only_run, "--out", copy, "--sample-rate", 48000)
    assert code == 0, stderr
    assert _tree(midi_only_run) == rendered  # the original is untouched
    manifest = json.loads((copy / "run.json").read_text())
    assert manifest["sample_rate"] == 48000 and soundfile.info(copy / manifest["mix"]).samplerate == 48000
    code, _, stderr = _run(capsys, "render", midi_only_run, "--out", copy)
    assert code == 2 and "already exists" in stderr


def test_render_checks_its_flags_before_touching_anything(midi_only_run: Path, capsys) -> None:
    before = _tree(midi_only_run)
    code, _, stderr = _run(capsys, "render", midi_only_run, "--sample-rate", 1000)
    assert code == 2 and stderr.startswith("error: --sample-rate 1000: unsupported")
    assert _tree(midi_only_run) == before
    assert sorted(p.name for p in midi_only_run.parent.iterdir()) == ["take"]


def test_a_bug_is_an_internal_error_with_its_traceback_not_bad_input(tiny_model: Path, tmp_path: Path, capsys,
                                                                     monkeypatch) -> None:
    """A ValueError from inside stemforge (numpy, a broken invariant) used to print as
    `error: ...` with exit 2, as if the user's input were wrong."""
    import stemforge.symbolic.runtime.compose as compose_module

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(compose_module, "plan_for", broken)
    code, _, stderr = _run(capsys, "run", "--prompt", "rock", "--model", tiny_model, "--bars", 2, "--seed", 1,
                           "--out", tmp_path / "r")
    assert code == 1 and "Traceback" in stderr
    assert "internal error: ValueError: operands could not be broadcast together -- a bug in stemforge" in stderr
    assert not stderr.startswith("error:") and not (tmp_path / "r").exists()


def test_finetune_flags_lora_and_full_pick_the_method() -> None:
    from stemforge.pipeline.cli import build_parser

    parser = build_parser()
    base = ["finetune-musicgen", "stems", "--out", "m", "--base", "weights"]
    assert parser.parse_args(base).lora is True
    assert parser.parse_args([*base, "--lora"]).lora is True
    assert parser.parse_args([*base, "--full"]).lora is False
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--lora", "--full"])
    # --help says which is the default once, and never "--full ... (default: True)"
    helped = parser._subparsers._group_actions[0].choices["finetune-musicgen"].format_help()
    options = " ".join(helped[helped.index("\n  --lora"):helped.index("\n  --steps")].split())
    assert options == "--lora train LoRA adapters (the default) --full full fine-tune of the decoder instead of LoRA"


def test_keeping_every_role_is_refused_on_the_cli_as_in_the_service(tiny_model: Path, tmp_path: Path, capsys) -> None:
    first = tmp_path / "first"
    assert _run(capsys, "run", "--prompt", "rock", "--model", tiny_model, "--bars", 2, "--seed", 1, "--out", first)[0] == 0
    code, _, stderr = _run(capsys, "run", "--from", first, "--keep", "drums,bass,melody", "--model", tiny_model,
                           "--out", tmp_path / "second")
    assert code == 2 and "--keep: keeping every role leaves nothing to regenerate" in stderr
    assert not (tmp_path / "second").exists()


def test_takes_are_variations_of_one_idea_each_as_it_would_compose_alone(tiny_model: Path, tmp_path: Path,
                                                                          capsys) -> None:
    from stemforge.symbolic.runtime.run_manifest import RunManifest

    base = ["run", "--prompt", "rock 120bpm", "--model", tiny_model, "--bars", "2", "--seed", "40"]
    code, out, _ = _run(capsys, *base, "--takes", "3", "--out", tmp_path / "takes")
    assert code == 0 and "3 takes" in out
    takes = [RunManifest.read(tmp_path / "takes" / f"take{n}") for n in (1, 2, 3)]
    assert [t.seed for t in takes] == [40, 41, 42]
    assert [t.take for t in takes] == [{"number": n, "of": 3, "decoder": "batched"} for n in (1, 2, 3)]
    assert len({(t.conditions.key, t.conditions.chords, t.conditions.bpm) for t in takes}) == 1
    assert len({tuple(t.token_ids) for t in takes}) == 3  # three different pieces

    # the batched decoder composes take 2 as one run with its seed, key and chords does alone
    idea = takes[0].conditions
    assert _run(capsys, *base[:-1], "41", "--key", idea.key, "--chords", idea.chords, "--out", tmp_path / "one")[0] == 0
    assert RunManifest.read(tmp_path / "one").token_ids == takes[1].token_ids
    # and the same request gives the same files again
    assert _run(capsys, *base, "--takes", "3", "--out", tmp_path / "again")[0] == 0
    for n in (1, 2, 3):
        assert RunManifest.read(tmp_path / "again" / f"take{n}").files == takes[n - 1].files


def test_takes_with_stems_render_side_by_side_each_as_it_renders_alone(tiny_model: Path, tmp_path: Path,
                                                                       monkeypatch) -> None:
    """`--takes 3 --stems` renders its takes at once on the usable cores (one after another they
    took three renders' time), and each take's stems are the ones its seed renders alone."""
    import threading
    import time

    import stemforge.pipeline.run as run_module
    from stemforge.pipeline.request import RunRequest
    from stemforge.pipeline.run import run

    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1})  # a 2-core machine, as CI's
    spans: list[tuple[float, float, str]] = []
    render_stems = run_module.render_stems

    def timed(*arguments, **keywords):
        started = time.perf_counter()
        try:
            return render_stems(*arguments, **keywords)
        finally:
            spans.append((started, time.perf_counter(), threading.current_thread().name))

    monkeypatch.setattr(run_module, "render_stems", timed)
    base = {"prompt": "rock 120bpm", "model": tiny_model, "bars": 2, "stems": True}
    result = run(RunRequest(**base, seed=40, takes=3, out=tmp_path / "takes"))
    assert len(spans) == 3 and len({name for *_, name in spans}) > 1
    first_end = min(end for _, end, _ in spans)
    assert sum(start < first_end for start, _, _ in spans) >= 2  # a second render began before the first ended
    idea = result.manifest.conditions
    for number, take in enumerate(result.takes):
        alone = run(RunRequest(**base, seed=40 + number, key=idea.key, chords=idea.chords,
                               out=tmp_path / f"alone{number}"))
        assert {path: digest for path, digest in take.manifest.files.items() if path.endswith(".wav")} == {
            path: digest for path, digest in alone.manifest.files.items() if path.endswith(".wav")}
