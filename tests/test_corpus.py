"""The corpus builder: genre rules, bass derivation, the output contract with `pipeline
prepare`, determinism, a mini build from a synthetic copy of the shared-data layout, and
a small build from the real ../shared/data when it is there."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import openpyxl
import pytest
import symusic

from stemforge.symbolic.music.arrangement import Note, midi_length_ticks
from stemforge.symbolic.music.conditions import GENRES
from stemforge.symbolic.music.keys import parse_key
from stemforge.symbolic.recipes import corpus_rules as rules
from stemforge.symbolic.recipes.corpus import (
    CorpusConfig,
    CorpusError,
    Song,
    SongDealer,
    build_corpus,
    estimate_key,
    load_pop909_song,
)

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data"
from stemforge.symbolic.core.ticks import TICKS_PER_BAR as BAR  # noqa: E402
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT as BEAT  # noqa: E402


def backbeat_groove(bars: int, hat_step: int = 240) -> list[Note]:
    """Kick on 1 and 3-and, snare on 2 and 4, straight hats."""
    notes = []
    for bar in range(bars):
        base = bar * BAR
        notes += [Note(base, 40, 36, 110), Note(base + 2 * BEAT + 240, 40, 36, 100),
                  Note(base + BEAT, 40, 38, 110), Note(base + 3 * BEAT, 40, 38, 110)]
        notes += [Note(base + t, 40, 42, 80) for t in range(0, BAR, hat_step)]
    return sorted(notes)


# ----------------------------------------------------------------------------- rules


def test_house_groove_has_a_kick_on_every_beat_and_open_hats_off_beat():
    notes = rules.four_on_the_floor(backbeat_groove(2, 120), 2, random.Random(0), techno=False)
    kicks = rules.kick_ticks(notes)
    assert kicks == list(range(0, 2 * BAR, BEAT))
    open_hats = rules.hits_at(notes, {rules.OPEN_HAT})
    assert open_hats == list(range(240, 2 * BAR, BEAT))
    assert rules.hits_at(notes, {rules.CLAP}) == [BEAT, 3 * BEAT, BAR + BEAT, BAR + 3 * BEAT]


def test_trap_groove_is_half_time_with_hat_rolls():
    rolled = 0
    for seed in range(6):
        notes = rules.trap_groove(backbeat_groove(2), 4, random.Random(seed))
        snares = [t for t in rules.hits_at(notes, {rules.SNARE}) if notes and t % BEAT == 0]
        assert snares == [bar * BAR + 2 * BEAT for bar in range(4)]  # backbeat on 3: half-time
        hats = rules.hits_at(notes, {rules.CLOSED_HAT})
        gaps = {b - a for a, b in zip(hats, hats[1:], strict=False)}
        rolled += any(g < 120 for g in gaps)
        assert max(n.start for n in notes) < 4 * BAR
    assert rolled >= 4  # most seeds roll somewhere in 4 bars


def test_dnb_groove_forces_the_two_step():
    notes = rules.dnb_groove(backbeat_groove(2, 120), 2, random.Random(3))
    kicks, snares = set(rules.kick_ticks(notes)), set(rules.hits_at(notes, {rules.SNARE}))
    for bar in range(2):
        assert {bar * BAR, bar * BAR + 2 * BEAT + 240} <= kicks
        assert {bar * BAR + BEAT, bar * BAR + 3 * BEAT} <= snares
        assert not kicks & {bar * BAR + BEAT, bar * BAR + 3 * BEAT}


def test_lofi_groove_swings_more_than_its_straight_source():
    source = backbeat_groove(2, 120)
    lofi = rules.lofi_groove(source, random.Random(1))
    assert rules.swing_ratio(source) == 0
    assert rules.swing_ratio(lofi) > 0.4
    assert rules.detect_feel([n.start for n in lofi])[0] == "swing16"
    assert max(n.velocity for n in lofi) < max(n.velocity for n in source)


def test_detect_feel_finds_swing_and_the_players_offset():
    jitter = random.Random(0)
    swung = [b * BEAT + o + jitter.randint(-15, 15) for b in range(64) for o in (0, 330)]
    assert rules.detect_feel(swung)[0] == "triplet"
    ahead = [b * BEAT + o - 30 + jitter.randint(-8, 8) for b in range(64) for o in (0, 120, 240, 360)]
    feel, offset = rules.detect_feel(ahead)
    assert (feel, offset) == ("straight", 30)
    notes = rules.quantize_hits([(t, 42, 80) for t in ahead], feel, 64 * BEAT, offset)
    assert {n.start % 120 for n in notes} == {0}


@pytest.mark.parametrize(
    "label, root, third, bass",
    [("C:maj", 0, 4, 0), ("Bb:min7", 10, 3, 10), ("F#:maj7/5", 6, 4, 1), ("Eb:sus4(b7)", 3, 5, 3),
     ("A:min/b3", 9, 3, 0)],
    ids=["major", "minor7", "slash-fifth", "sus4b7", "minor-first-inversion"],
)
def test_parse_chord(label, root, third, bass):
    chord = rules.parse_chord(label)
    assert (chord.root, chord.third, chord.bass) == (root, third, bass)


def test_parse_chord_no_chord():
    assert rules.parse_chord("N") is None


def test_bass_follows_the_kicks_with_chord_roots():
    c_major, g_major = rules.parse_chord("C:maj"), rules.parse_chord("G:maj")
    spans = [rules.ChordSpan(0, BAR, c_major), rules.ChordSpan(BAR, 2 * BAR, g_major)]
    kicks = [0, 720, 1200, BAR, BAR + 1200]
    bass = rules.derive_bass(spans, kicks, 2 * BAR, parse_key("C major"), "hiphop", random.Random(0))
    assert [n.start for n in bass] == kicks
    assert bass[0].pitch % 12 == 0 and bass[3].pitch % 12 == 7  # roots on the downbeats
    assert all(n.pitch % 12 in {0, 4, 7} for n in bass[:3])  # tones of C over C
    assert all(rules.BASS_LOW <= n.pitch <= rules.BASS_HIGH for n in bass)
    assert all(a.start + a.duration <= b.start for a, b in zip(bass, bass[1:], strict=False))


def test_bass_fills_a_bar_without_kicks_and_chord_changes_on_a_beat():
    spans = [rules.ChordSpan(0, BEAT * 2, rules.parse_chord("A:min")),
             rules.ChordSpan(BEAT * 2, 2 * BAR, rules.parse_chord("F:maj"))]
    bass = rules.derive_bass(spans, [0], 2 * BAR, parse_key("A minor"), "pop", random.Random(0))
    by_start = {n.start: n.pitch % 12 for n in bass}
    assert by_start[0] == 9 and by_start[2 * BEAT] == 5 and by_start[BAR] == 5


def test_bass_takes_the_pianists_pitches_where_they_fit():
    """A pianist's lowest notes give the bass its inversions and passing tones; a note outside
    the chord on a downbeat does not replace the root there."""
    spans = [rules.ChordSpan(0, BAR, rules.parse_chord("C:maj")), rules.ChordSpan(BAR, 2 * BAR, rules.parse_chord("A:min"))]
    kicks = [0, 2 * BEAT, BAR, BAR + 2 * BEAT]
    piano = [Note(0, BEAT, 40, 80), Note(2 * BEAT, 2 * BEAT, 38, 80),  # E (C/E) on 1, a passing D on 3
             Note(BAR, BEAT, 42, 80)]  # F# (not in A minor's chord) on the downbeat of bar 2
    bass = rules.derive_bass(spans, kicks, 2 * BAR, parse_key("C major"), "pop", random.Random(0), piano)
    assert [n.pitch % 12 for n in bass][:3] == [4, 2, 9]
    plain = rules.derive_bass(spans, kicks, 2 * BAR, parse_key("C major"), "pop", random.Random(0))
    assert plain[0].pitch % 12 == 0  # without a pianist: the root


def test_real_fills_go_into_the_phrase_ends():
    from stemforge.symbolic.recipes.corpus import Fill, splice_fills

    groove = [Note(b * BAR + t, 40, 36 if t == 0 else 38 if t in (BEAT, 3 * BEAT) else 42, 100)
              for b in range(8) for t in range(0, BAR, 240)]
    fill = Fill("gmd:drummer1/session1/9", "rock", [(0, 38, 100), (240, 48, 100), (480, 45, 100), (720, 43, 110)])
    spliced, filled = splice_fills(groove, 8, "straight", "rock", "drummer1/session1/2", {"rock": [fill]}, 1.0,
                                   random.Random(0))
    assert filled
    last_half = [(n.start - 7 * BAR, n.pitch) for n in spliced if n.start >= 7 * BAR + 2 * BEAT]
    assert last_half == [(960, 38), (1200, 48), (1440, 45), (1680, 43)]
    assert [n for n in spliced if n.start < 7 * BAR + 2 * BEAT and n.start >= 4 * BAR] != []
    assert splice_fills(groove, 8, "straight", "house", "x", {"house": [fill]}, 1.0, random.Random(0))[1] is False


@pytest.mark.parametrize("genre", ["house", "techno", "jazz", "latin", "ambient"], ids=str)
def test_idiomatic_bass_rhythms(genre):
    spans = [rules.ChordSpan(0, 2 * BAR, rules.parse_chord("D:min7"))]
    four_on_the_floor = list(range(0, 2 * BAR, BEAT))
    kicks = four_on_the_floor if genre in ("house", "techno") else [0, BAR]
    bass = rules.derive_bass(spans, kicks, 2 * BAR, parse_key("D minor"), genre, random.Random(0))
    starts = [n.start for n in bass]
    expected = {
        "house": sorted([*four_on_the_floor, 3 * BEAT + 240, BAR + 3 * BEAT + 240]),  # kicks + the bounce into a bar
        "techno": four_on_the_floor,  # a short note with every kick
        "jazz": list(range(0, 2 * BAR, BEAT)),  # walking quarters
        "latin": [720, 1440, BAR + 720, BAR + 1440],  # tumbao
        "ambient": [0, BAR],  # one long note per bar of a held chord
    }[genre]
    assert starts == expected


def test_estimate_key_of_a_scale():
    notes = [Note(i * BEAT, BEAT, 57 + s, 80) for i, s in enumerate((0, 2, 3, 5, 7, 8, 10, 12, 7, 3, 0, 0))]
    assert estimate_key(notes).name == "A minor"


def test_song_dealer_never_shares_a_song_between_groups():
    songs = [Song(f"{i:03d}", [], [], [parse_key("C major")], [True] * 16) for i in range(6)]
    dealer = SongDealer(songs, seed=0)
    seen: dict[str, str] = {}
    for index in range(12):
        group = f"g{index % 3}"
        excerpt = dealer.excerpt(group, 8, random.Random(index))
        assert seen.setdefault(excerpt.song_id, group) == group
    assert dealer.shared == 0


# ----------------------------------------------------------------------------- config


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 1\nitems_per_genre: 3\nbogus: 2\n")
    with pytest.raises(CorpusError, match="bogus"):
        CorpusConfig.load(path)


def test_default_config_names_every_genre():
    config = CorpusConfig.load(REPO / "configs" / "corpus" / "default.yaml")
    assert sorted(config.genres) == sorted(GENRES)
    assert config.bpm_ranges["dnb"][0] >= 160 and config.bpm_ranges["dnb"][1] <= 180


def test_config_rejects_a_drum_source_typo(tmp_path):
    config = CorpusConfig.load(REPO / "configs" / "corpus" / "default.yaml")
    config.drums["lofi"] = ["lofy:hiphop"]
    with pytest.raises(CorpusError, match="lofy"):
        config.validated()


# ----------------------------------------------------------------------------- mini data


def _write_midi(path: Path, tracks: list[tuple[str, int, bool, list[tuple[int, int, int, int]]]],
                bpm: float, tpq: int = 480) -> None:
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, bpm))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    for name, program, is_drum, notes in tracks:
        track = symusic.Track(name=name, program=program, is_drum=is_drum)
        for start, duration, pitch, velocity in notes:  # given at 480 per beat
            track.notes.append(symusic.Note(start * tpq // 480, max(1, duration * tpq // 480), pitch, velocity))
        score.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))


def _played_groove(bars: int, seed: int) -> list[tuple[int, int, int, int]]:
    """A GMD-like performance on the Roland kit: hits a little off the grid."""
    rng = random.Random(seed)
    notes = []
    for n in backbeat_groove(bars, 240):
        pitch = {42: 22}.get(n.pitch, n.pitch) if rng.random() < 0.3 else n.pitch
        notes.append((max(0, n.start + rng.randint(-20, 20)), 30, pitch, rng.randint(60, 120)))
    return notes


def make_mini_data(root: Path) -> Path:
    gmd = root / "gmd"
    rows = [("drummer1/session1/1", "hiphop", 90), ("drummer1/session1/2", "dance/disco", 120),
            ("drummer1/session1/3", "funk", 100)]
    gmd.mkdir(parents=True)
    with open(gmd / "info.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["drummer", "session", "id", "style", "bpm", "beat_type", "time_signature",
                         "midi_filename", "audio_filename", "duration", "split"])
        for index, (gid, style, bpm) in enumerate(rows):
            name = f"{gid}_{style.replace('/', '-')}_{bpm}_beat_4-4.mid"
            writer.writerow(["drummer1", "drummer1/session1", gid, style, bpm, "beat", "4-4", name, "",
                             "30", "train"])
            _write_midi(gmd / name, [("", 0, True, _played_groove(20, index))], bpm)
        writer.writerow(["drummer1", "drummer1/session1", "drummer1/session1/4", "rock", 100, "beat", "3-4",
                         "x.mid", "", "3", "train"])
    pop = root / "pop909"
    workbook = openpyxl.Workbook()
    workbook.active.append(["song_id", "name", "artist", "modify_times", "num_beats_per_measure",
                            "num_quavers_per_beat"])
    for song in ("001", "002", "003", "004"):  # 004 is in 3/4 by the index: skipped
        workbook.active.append([song, "x", "y", "1", "3" if song == "004" else "2", "2"])
        folder = pop / song
        folder.mkdir(parents=True)
        seconds_per_beat = 60 / 90
        beats = 4 * 26
        (folder / "beat_midi.txt").write_text("".join(
            f"{0.1 + i * seconds_per_beat} {1.0 if i % 2 == 0 else 0.0} {1.0 if i % 4 == 0 else 0.0}\n"
            for i in range(beats)))
        chords = ["C:maj", "A:min", "F:maj", "G:7"]
        (folder / "chord_midi.txt").write_text("".join(
            f"{0.1 + b * 4 * seconds_per_beat}\t{0.1 + (b + 1) * 4 * seconds_per_beat}\t{chords[b % 4]}\n"
            for b in range(26)))
        (folder / "key_audio.txt").write_text("0.0\t80.0\tC:maj\n")
        scale = (60, 62, 64, 65, 67, 69, 71, 72)
        melody = [(48 + i * 240, 220, scale[(i * (int(song) + 2)) % 8], 100) for i in range(4 * 2 * 26)]
        _write_midi(folder / f"{song}.mid", [("MELODY", 0, False, melody), ("PIANO", 0, False, melody[:4])], 90)
    workbook.save(pop / "index.xlsx")
    drums = [(n.start, 40, n.pitch, 100) for n in backbeat_groove(24)]
    bass = [(b * BEAT, 400, (40, 45, 43, 38)[b // 8 % 4], 100) for b in range(4 * 24)]
    lead = [(b * 240, 200, (76, 74, 72, 71)[b % 4], 90) for b in range(8 * 24)]
    _write_midi(root / "freedoom" / "freedoom1" / "D_TEST.mid",
                [("Drums", 0, True, drums), ("Bass", 33, False, bass), ("Lead", 80, False, lead)], 140, 96)
    return root


def mini_config(**changes) -> CorpusConfig:
    config = CorpusConfig.load(REPO / "configs" / "corpus" / "default.yaml")
    config.genres = ["lofi", "hiphop", "trap", "house", "techno", "dnb", "rock", "ambient"]
    config.items_per_genre = 3
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="module")
def mini_corpus(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = make_mini_data(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("build") / "corpus"
    summary = build_corpus(root, out, mini_config(), progress=False)
    return root, out, summary


def test_mini_corpus_follows_the_output_contract(mini_corpus):
    _, out, summary = mini_corpus
    with open(out / "tracks.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["filename", "genre", "bpm", "key", "group", "source", "licence"]
    assert {r["genre"] for r in rows} == set(mini_config().genres)
    assert json.loads((out / "corpus.json").read_text())["files"] == len(rows) == summary["files"]
    assert (out / "corpus.png").stat().st_size > 0
    for row in rows:
        score = symusic.Score(str(out / row["filename"]))
        assert row["filename"].startswith(row["genre"] + "/")
        assert score.ticks_per_quarter == 480
        assert [(t.numerator, t.denominator) for t in score.time_signatures] == [(4, 4)]
        assert len(score.tempos) == 1 and abs(score.tempos[0].qpm - float(row["bpm"])) < 0.01
        names = [t.name for t in score.tracks]
        assert set(names) <= {"drums", "bass", "melody"} and {"bass", "melody"} <= set(names)
        assert names == [n for n in ("drums", "bass", "melody") if n in names]
        for track in score.tracks:
            assert track.is_drum == (track.name == "drums")
            assert all(n.time % rules.GRID == 0 and n.duration % rules.GRID == 0 for n in track.notes)
        bars = midi_length_ticks(out / row["filename"], 480) / BAR
        assert bars in (8, 16)
        assert all(n.time < bars * BAR for t in score.tracks for n in t.notes)
        parse_key(row["key"])
        assert row["licence"] and row["group"]


def test_mini_corpus_genres_keep_their_rules(mini_corpus):
    _, out, summary = mini_corpus
    rows = list(csv.DictReader(open(out / "tracks.csv", newline="")))
    low, high = mini_config().bpm_ranges["dnb"]
    for row in rows:
        bpm = float(row["bpm"])
        assert mini_config().bpm_ranges[row["genre"]][0] <= bpm <= mini_config().bpm_ranges[row["genre"]][1]
        tracks = {t.name: t for t in symbolic_tracks(out / row["filename"])}
        if row["genre"] in ("house", "techno"):
            kicks = {n.time for n in tracks["drums"].notes if n.pitch == rules.KICK}
            assert set(range(0, int(tracks["bass"].notes[-1].time) // BAR * BAR, BEAT)) <= kicks
        if row["genre"] == "lofi":
            drums = [Note(n.time, n.duration, n.pitch, n.velocity) for n in tracks["drums"].notes]
            assert rules.swing_ratio(drums) > 0.3
    assert summary["per_genre"]["rock"]["sources"].get("freedoom", 0) >= 1
    assert summary["per_genre"]["hiphop"]["basis"]["drums"] == {"gmd real": 3}
    assert summary["skipped"]["gmd: not 4/4"] == 1 and summary["skipped"]["pop909: not 4/4 (index meter)"] == 1


def symbolic_tracks(path: Path) -> list[symusic.Track]:
    return list(symusic.Score(str(path)).tracks)


def test_mini_corpus_is_deterministic(mini_corpus, tmp_path):
    root, out, _ = mini_corpus
    again = tmp_path / "again"
    build_corpus(root, again, mini_config(), progress=False)
    first = sorted(p.relative_to(out) for p in out.rglob("*.mid"))
    assert first == sorted(p.relative_to(again) for p in again.rglob("*.mid"))
    for relative in first + [Path("tracks.csv")]:
        assert (out / relative).read_bytes() == (again / relative).read_bytes(), relative
    other = tmp_path / "other-seed"
    build_corpus(root, other, mini_config(seed=99), progress=False)
    assert (other / "tracks.csv").read_bytes() != (out / "tracks.csv").read_bytes()


def test_build_refuses_to_overwrite_a_folder_that_is_not_a_corpus(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="not a corpus folder"):
        build_corpus(tmp_path, out, mini_config(), progress=False)
    assert (out / "notes.txt").exists()


def test_pop909_song_in_beats(tmp_path):
    root = make_mini_data(tmp_path)
    song = load_pop909_song(root / "pop909" / "001", (2, 2))
    assert song.melody[0].start == 0 and all(n.start % 120 == 0 for n in song.melody)
    assert [s.chord.root for s in song.chords[:4]] == [0, 9, 5, 7] and song.chords[1].start == BAR
    assert load_pop909_song(root / "pop909" / "001", (3, 2)) == "not 4/4 (index meter)"


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="../shared/data is not on this machine")
def test_small_build_from_the_real_shared_data(tmp_path):
    config = CorpusConfig.load(REPO / "configs" / "corpus" / "default.yaml")
    config.genres = ["lofi", "rock", "jazz", "ambient"]
    config.items_per_genre = 2
    config.pop909_max_songs = 12
    config.gmd_max_files = 120
    config.wjd_max_solos = 12
    summary = build_corpus(REAL_DATA, tmp_path / "corpus", config, progress=False)
    assert {g: v["files"] for g, v in summary["per_genre"].items()} == {g: 2 for g in config.genres}
    assert summary["loaded"]["pop909_songs"] >= 10
    # jazz sings real WJD solos over their real walking bass (one note a beat)
    assert summary["per_genre"]["jazz"]["basis"]["melody"] == {"wjd real": 2}
    assert summary["per_genre"]["jazz"]["basis"]["bass"] == {"wjd real": 2}
    rows = list(csv.DictReader(open(tmp_path / "corpus" / "tracks.csv", newline="")))
    assert all(symusic.Score(str(tmp_path / "corpus" / r["filename"])).note_num() > 50 for r in rows)
