"""`pipeline prepare` and `pipeline train` on MIDI shaped like what users bring (issue 11):
POP909-style 1/4 headers over 4/4 songs, Roland V-Drums hi-hat edge notes, sequences
longer than a small model's context, a genre whose every file landed in validation."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.tokenizer import TokenizerSpec
from stemforge.symbolic.training.prepare import PrepareConfig, PrepareError, load_piece, prepare_dataset
from stemforge.symbolic.training.train import TrainConfig, TrainError, train
from tests.conftest import SHARED_DATA
from tests.midi_fixtures import write_corpus, write_dense_groove, write_edge_hat_groove, write_song

SPEC = TokenizerSpec(genres=["pop"])
LEAD_IN = TICKS_PER_BEAT + 150  # a one-beat pickup, and the notes 0.31 beat off the file's grid


def _report(data_dir: Path) -> dict:
    return json.loads((data_dir / "prepare_report.json").read_text())


# ------------------------------------------------------------------ meter

def test_a_one_four_header_over_four_four_notes_is_read_as_four_four(tmp_path: Path) -> None:
    folder = tmp_path / "midi"
    write_song(folder / "ballad_90bpm.mid", beats_per_bar=4, header=(1, 4), lead_in=LEAD_IN)
    write_song(folder / "waltz_90bpm.mid", beats_per_bar=3, header=(1, 4))
    write_song(folder / "honest_waltz_90bpm.mid", beats_per_bar=3, header=(3, 4))
    prepare_dataset(folder, tmp_path / "data", progress=False)
    report = _report(tmp_path / "data")
    used = {u["file"]: u for u in report["used"]}
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert set(used) == {"ballad_90bpm.mid"}
    meter = used["ballad_90bpm.mid"]["meter"]
    assert (meter["header"], meter["read_as"], meter["from"]) == ("1/4", "4/4", "notes")
    # the first downbeat (after the pickup) moved onto a bar line
    assert abs((LEAD_IN + meter["shift_ticks"]) % TICKS_PER_BAR) <= 10
    assert "3 beats" in skipped["waltz_90bpm.mid"]  # a real 3/4 song under a 1/4 header: still skipped
    assert skipped["honest_waltz_90bpm.mid"] == "not in 4/4 (3/4)"
    markdown = (tmp_path / "data" / "prepare_report.md").read_text()
    assert "ballad_90bpm.mid | 1/4 | 4/4" in markdown


def test_the_bass_lands_on_the_bar_lines_the_notes_imply(tmp_path: Path) -> None:
    path = write_song(tmp_path / "song.mid", beats_per_bar=4, header=(1, 4), lead_in=LEAD_IN)
    piece = load_piece(path, tmp_path, {}, SPEC)
    roots = [n for n in piece.tracks["bass"].notes if n.duration == 3 * TICKS_PER_BEAT // 2]
    assert len(roots) == 16 and all(n.start % TICKS_PER_BAR == 0 for n in roots)


def write_beat_annotation(folder: Path, downbeat_tick: int, bars: int = 16, bpm: float = 90.0,
                          slip_at: int | None = None) -> Path:
    """A POP909-style beat_midi.txt (seconds, beat flag, downbeat flag per beat), its first
    annotated bar 5 beats long and, with `slip_at`, a beat tracker's slip: a 3-beat bar there."""
    seconds_per_beat = 60.0 / bpm
    rows, beat, bar_beats = [], downbeat_tick / TICKS_PER_BEAT - 1, []
    for bar in range(bars):
        bar_beats.append(5 if bar == 0 else 3 if bar == slip_at else 4)
    for length in bar_beats:
        for k in range(length):
            rows.append(f"{beat * seconds_per_beat:.6f} {1.0 if k % 2 == 0 else 0.0} {1.0 if k == 0 else 0.0}")
            beat += 1
    (folder / "beat_midi.txt").write_text("\n".join(rows) + "\n")
    return folder / "beat_midi.txt"


@pytest.mark.parametrize("slip_at", [None, 16], ids=["steady", "with-a-tracker-slip"])
def test_a_beat_annotation_beside_the_song_sets_the_bars(tmp_path: Path, slip_at: int | None) -> None:
    """The bars most annotated downbeats mark, whatever the header, the odd first bar or a
    late slip of the tracker say; the notes are not asked."""
    path = write_song(tmp_path / "song" / "song.mid", beats_per_bar=4, header=(1, 4), lead_in=LEAD_IN, bars=24)
    write_beat_annotation(path.parent, LEAD_IN, bars=24, slip_at=slip_at)
    meter = load_piece(path, path.parent, {}, SPEC).meter
    assert (meter["from"], meter["read_as"]) == ("annotation", "4/4")
    assert (LEAD_IN + meter["shift_ticks"]) % TICKS_PER_BAR == 0
    odd = 1 + (slip_at is not None)  # the 5-beat first bar, and the slip
    assert f"({odd} annotated bar(s) of another length" in meter["note"]


def test_markers_on_the_downbeats_set_the_bars(tmp_path: Path) -> None:
    import symusic

    path = write_song(tmp_path / "song.mid", beats_per_bar=4, header=(1, 4), lead_in=LEAD_IN)
    score = symusic.Score(str(path))
    for bar, name in ((0, "Intro"), (4, "Verse"), (12, "Chorus")):
        score.markers.append(symusic.TextMeta(LEAD_IN + bar * TICKS_PER_BAR, name))
    score.dump_midi(str(path))
    meter = load_piece(path, tmp_path, {}, SPEC).meter
    assert meter["from"] == "annotation" and "markers" in meter["note"]
    assert (LEAD_IN + meter["shift_ticks"]) % TICKS_PER_BAR == 0


def test_four_four_files_are_taken_as_written(tmp_path: Path) -> None:
    path = write_song(tmp_path / "song.mid", beats_per_bar=4, header=(4, 4), lead_in=LEAD_IN)
    piece = load_piece(path, tmp_path, {}, SPEC)
    assert piece.meter["from"] == "header" and piece.meter["shift_ticks"] == 0
    assert piece.tracks["bass"].notes[0].start == round(LEAD_IN / 40) * 40


@pytest.mark.skipif(not (SHARED_DATA / "pop909" / "034").is_dir(), reason="needs ../shared/data/pop909")
@pytest.mark.parametrize("annotated", [True, False], ids=["beside-beat_midi.txt", "notes-alone"])
def test_pop909_songs_under_one_four_headers_are_kept_and_triple_meter_ones_are_not(
        tmp_path: Path, annotated: bool) -> None:
    """Songs 001-030 all say 1/4 or 2/4; by POP909's index.xlsx all have 4-beat bars (014
    in 12/8 feel, written as 4/4 with triplets). 034 (1/4 header) is in triple meter. Beside
    their beat_midi.txt the annotation says so; copied away from it, the notes do."""
    def song(number: int) -> Path:
        original = SHARED_DATA / "pop909" / f"{number:03d}" / f"{number:03d}.mid"
        if annotated:
            return original
        copy = tmp_path / f"{number:03d}.mid"
        shutil.copy(original, copy)
        return copy

    meters = [load_piece(song(n), song(n).parent, {}, SPEC).meter for n in range(1, 31)]
    assert all(m["read_as"] == "4/4" for m in meters)
    assert {m["from"] for m in meters} == ({"annotation"} if annotated else {"notes"})
    triple = song(34)
    with pytest.raises(PrepareError, match="bars of 6 beats" if annotated else "3 beats"):
        load_piece(triple, triple.parent, {}, SPEC)


# ------------------------------------------------------------------ drums

def test_extended_drum_notes_are_mapped_and_counted(tmp_path: Path) -> None:
    """A folder of V-Drums takes is one kit: the take without hat edges gets the same map;
    a General MIDI file in another folder keeps its vibraslap and splash."""
    folder = tmp_path / "midi"
    roland = write_edge_hat_groove(folder / "vdrums" / "funk_roland_100bpm.mid")
    rims_only = write_edge_hat_groove(folder / "vdrums" / "funk_roland_take2_100bpm.mid", edges=False)
    general = write_edge_hat_groove(folder / "gm" / "funk_gm_100bpm.mid", roland=False)
    prepare_dataset(folder, tmp_path / "data", progress=False)
    report = _report(tmp_path / "data")
    used = {u["file"]: u for u in report["used"]}
    assert used["vdrums/funk_roland_100bpm.mid"]["drum_notes"] == {
        "mapped": {"22": 32, "26": 8, "55": 2, "58": 8}, "dropped": {"100": 8}, "kit": "vdrums"}
    assert used["vdrums/funk_roland_take2_100bpm.mid"]["drum_notes"] == {
        "mapped": {"55": 2, "58": 8}, "dropped": {"100": 8}, "kit": "vdrums"}
    assert used["gm/funk_gm_100bpm.mid"]["drum_notes"] == {"mapped": {}, "dropped": {"100": 8}, "kit": "gm"}
    totals = report["summary"]["drum_notes"]
    assert totals["mapped"] == {"22": 32, "26": 8, "55": 4, "58": 16} and totals["dropped"] == {"100": 24}

    for path in (roland, rims_only):
        pitches = [n.pitch for n in load_piece(path, folder, {}, SPEC, kit="vdrums").tracks["drums"].notes]
        assert pitches.count(42) == 7 * 8 and pitches.count(46) == 8 and pitches.count(43) == 8
        assert pitches.count(49) == 2 and not {22, 26, 55, 58, 100} & set(pitches)
    gm = [n.pitch for n in load_piece(general, folder, {}, SPEC).tracks["drums"].notes]
    assert gm.count(58) == 8 and gm.count(55) == 2  # on a General MIDI kit 58 and 55 are what they say
    markdown = (tmp_path / "data" / "prepare_report.md").read_text()
    assert "| 22 | 42 | 32 |" in markdown and "| 100 | 24 |" in markdown and "2 file(s) read as Roland" in markdown


@pytest.mark.parametrize("setting, kit", [("gm", "gm"), ("vdrums", "vdrums")], ids=["forced-gm", "forced-vdrums"])
def test_the_prepare_config_names_the_kit(tmp_path: Path, setting: str, kit: str) -> None:
    write_edge_hat_groove(tmp_path / "midi" / "funk_a_100bpm.mid", edges=False)
    write_edge_hat_groove(tmp_path / "midi" / "funk_b_100bpm.mid", roland=False)
    prepare_dataset(tmp_path / "midi", tmp_path / "data", config=PrepareConfig(drum_kit=setting), progress=False)
    assert {u["drum_notes"]["kit"] for u in _report(tmp_path / "data")["used"]} == {kit}


def test_an_unknown_drum_kit_setting_is_a_clear_error(tmp_path: Path) -> None:
    write_edge_hat_groove(tmp_path / "midi" / "funk_a_100bpm.mid")
    with pytest.raises(PrepareError, match="drum_kit 'roland' is not one of auto, gm, vdrums"):
        prepare_dataset(tmp_path / "midi", tmp_path / "data", config=PrepareConfig(drum_kit="roland"), progress=False)


# ------------------------------------------------------------------ sequence length

@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two plain grooves and two dense ones whose 8-bar windows exceed 1024 tokens."""
    folder = write_corpus(tmp_path_factory.mktemp("long") / "midi", files_per_genre=1)
    write_dense_groove(folder / "funk_dense_0_96bpm.mid")
    write_dense_groove(folder / "funk_dense_1_96bpm.mid")
    out = tmp_path_factory.mktemp("long_data") / "data"
    prepare_dataset(folder, out, config=PrepareConfig(transpositions=[], valid_fraction=0.2), progress=False)
    return out


def test_prepare_reports_the_token_length_distribution(long_dataset: Path) -> None:
    lengths = json.loads((long_dataset / "dataset.json").read_text())["tokens_per_sequence"]
    assert {"p50", "p90", "p95", "p99", "max", "over_1024", "over_2048", "by_window_bars"} <= set(lengths)
    assert 0 < lengths["over_1024"] < 1 and lengths["max"] > 1024
    assert lengths["by_window_bars"]["8"]["max"] > lengths["by_window_bars"]["4"]["max"]
    assert "longer than 1024 tokens" in (long_dataset / "prepare_report.md").read_text()


def test_train_warns_before_cutting_long_sequences_and_refuses_past_the_limit(
        long_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainConfig.load("tiny")
    config.max_truncated_share = 0.0
    with pytest.raises(TrainError, match=r"^n_positions=1024 .*max_truncated_share") as error:
        train(long_dataset, tmp_path / "refused", config, steps=2, progress=False)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "refused.partial").exists()

    meta = train(long_dataset, tmp_path / "model", TrainConfig.load("tiny"), steps=2, progress=False)
    warning = capsys.readouterr().err
    assert "longer than n_positions=1024" in warning and "window_bars" in warning
    assert meta["sequences_over_context"]["train"] > 0


# ------------------------------------------------------------------ genres without training windows

def test_a_genre_with_no_training_windows_is_flagged_from_prepare_to_the_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_corpus(tmp_path / "midi", files_per_genre=2)
    rows = (folder / "tracks.csv").read_text().splitlines()
    groups = [row.split(",")[0] for row in rows[1:]]
    # a group name that sorts first by hash, so the only jazz file lands in validation
    lowest = min(hashlib.sha256(g.encode()).hexdigest() for g in groups)
    jazz_group = next(name for name in (f"jazz-session-{i}" for i in range(1000))
                      if hashlib.sha256(name.encode()).hexdigest() < lowest)
    (folder / "rock_0_120bpm.mid").rename(folder / "jazz_0_120bpm.mid")
    rows = [rows[0] + ",group"] + [
        (row.replace("rock_0_120bpm.mid,rock", "jazz_0_120bpm.mid,jazz") + ","
         + (jazz_group if row.startswith("rock_0_") else row.split(",")[0])) for row in rows[1:]]
    (folder / "tracks.csv").write_text("\n".join(rows) + "\n")

    summary = prepare_dataset(folder, tmp_path / "data", folder / "tracks.csv",
                              PrepareConfig(valid_fraction=0.1), progress=False)
    assert summary["genres"]["jazz"] == {"train": 0, "valid": summary["genres"]["jazz"]["valid"]}
    assert summary["genres_without_training_windows"] == ["jazz"]
    assert "jazz" in capsys.readouterr().err
    assert "no training windows" in (tmp_path / "data" / "prepare_report.md").read_text()

    train(tmp_path / "data", tmp_path / "model", TrainConfig.load("tiny"), steps=2, progress=False)
    assert "jazz" in capsys.readouterr().err
    meta = json.loads((tmp_path / "model" / "stemforge.json").read_text())
    assert meta["genres_without_training_windows"] == ["jazz"]
    # a genre with no training windows never steers a piece: no neighbour, no label-free part -> refused
    with pytest.raises(ConditionError, match="genre 'jazz' has only 0 training windows in this model"):
        run(RunRequest(prompt="jazz 120bpm", model=tmp_path / "model", bars=2, seed=1, out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()
