"""The feel: swing, micro-timing and velocity applied to grid notes (everywhere, with small
templates built here), template extraction from takes and user MIDI files, the groove pool
file, and the pool built from the real Groove MIDI Dataset (skipped without it)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
import symusic

from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Note, Track, tracks_to_score
from stemforge.symbolic.music.conditions import GENRE_DEFAULT_BPM, GENRES
from stemforge.symbolic.recipes import grooves
from stemforge.symbolic.runtime import groove
from stemforge.symbolic.runtime.groove import (
    GENRE_SWING,
    GrooveError,
    GroovePool,
    GrooveTemplate,
    GroupFeel,
    Performance,
    SlotFeel,
    apply_feel,
    template_from_midi,
    template_from_performances,
)

GMD = Path(__file__).resolve().parents[2] / "shared" / "data" / "gmd"
needs_gmd = pytest.mark.skipif(not (GMD / "info.csv").is_file(),
                               reason="GMD (../shared/data/gmd) is not on this machine")
BEAT = TICKS_PER_BEAT
BARS = 8
TOTAL = BARS * TICKS_PER_BAR
KICK, SNARE, HAT, RIDE = 36, 38, 42, 51


def template(*, unit: str = "8th", spread_ms: float = 10.0, ratio_std: float = 0.1,
             slots: dict[tuple[str, int], SlotFeel] | None = None) -> GrooveTemplate:
    """A template whose every group plays on the grid with `spread_ms` scatter, plus the
    given (group, bar slot) figures."""
    overall = SlotFeel(1000, 0.0, spread_ms, 1.0, ratio_std)
    by_bar: dict[str, dict[int, SlotFeel]] = defaultdict(dict)
    for (group, slot), feel in (slots or {}).items():
        by_bar[group][slot] = feel
    return GrooveTemplate("test", unit, 50.0, {g: GroupFeel(overall, {}, by_bar[g]) for g in groove.DRUM_GROUPS})


def every_bar(group: str, beat_slots: tuple[int, ...], feel: SlotFeel) -> dict[tuple[str, int], SlotFeel]:
    return {(group, beat * 12 + s): feel for beat in range(4) for s in beat_slots}


def grid_groove(hat_step: int = 120, velocity: int = 95) -> dict[str, Track]:
    """8 bars: kick on 1 and 3, snare on 2 and 4, hats every `hat_step`, bass on the kicks,
    melody in 8ths; all at one velocity, as flat as tokens get."""
    drums, bass, melody = [], [], []
    for bar in range(BARS):
        base = bar * TICKS_PER_BAR
        drums += [Note(base + b * BEAT, 40, KICK if b % 2 == 0 else SNARE, velocity) for b in range(4)]
        drums += [Note(t, 40, HAT, velocity) for t in range(base, base + TICKS_PER_BAR, hat_step)]
        bass += [Note(base + b * BEAT, 2 * BEAT, 36 + bar % 3, velocity) for b in (0, 2)]
        melody += [Note(t, 240, 60 + (t // 240) % 7, velocity) for t in range(base, base + TICKS_PER_BAR, 240)]
    return {"drums": Track("drums", 0, True, drums), "bass": Track("bass", 33, False, bass),
            "melody": Track("melody", 0, False, melody)}


def feel(tracks: dict[str, Track], tpl: GrooveTemplate, swing: float | None = None, amount: float = 1.0,
         seed: int = 1, bpm: float = 90.0) -> dict[str, Track]:
    return apply_feel(tracks, tpl, swing_percent=swing, amount=amount, seed=seed, total_ticks=TOTAL, bpm=bpm)


def starts(track: Track, pitch: int) -> list[int]:
    return sorted(n.start for n in track.notes if n.pitch == pitch)


# ----------------------------------------------------------------------------- swing


@pytest.mark.parametrize(("unit", "percent", "positions"), [
    ("8th", 62.0, {0, 120, 298, 360}), ("8th", 66.7, {0, 120, 320, 360}), ("16th", 58.0, {0, 139, 240, 379}),
], ids=["8ths-62%", "8ths-triplet", "16ths-58%"])
def test_swung_offbeats_land_late_by_the_swing_amount(unit: str, percent: float, positions: set[int]) -> None:
    out = feel(grid_groove(hat_step=120), template(unit=unit), swing=percent, amount=0.0)["drums"]
    assert {t % BEAT for t in starts(out, HAT)} == positions
    assert len(starts(out, HAT)) == 16 * BARS


def test_swung_hats_with_micro_timing_sit_late_around_the_swing_point() -> None:
    out = feel(grid_groove(hat_step=240), template(spread_ms=10.0), swing=62.0)["drums"]
    ands = [t % BEAT for t in starts(out, HAT) if 120 < t % BEAT < 400]
    assert len(ands) == 4 * BARS
    assert abs(sum(ands) / len(ands) - 298) < 6  # 62% of a beat, on average
    assert all(abs(a - 298) <= BEAT * groove.MAX_SHIFT_BEATS for a in ands)


@pytest.mark.parametrize(("unit", "stays"), [("8th", (160, 320)), ("16th", (160, 240, 320, 400))],
                         ids=["8th-swing-keeps-triplets", "16th-swing-keeps-8ths-and-triplets"])
def test_swing_leaves_other_positions_alone(unit: str, stays: tuple[int, ...]) -> None:
    notes = [Note(b * BEAT + s, 40, RIDE, 90) for b in range(8) for s in (0, *stays)]
    out = feel({"drums": Track("drums", 0, True, notes)}, template(unit=unit), swing=64.0, amount=0.0)
    assert out["drums"].notes == sorted(notes)


# ----------------------------------------------------------------------------- guarantees


@pytest.mark.parametrize("offset_beats", [-0.06, 0.06], ids=["drummer-ahead", "drummer-behind"])
def test_bar_one_downbeat_stays_at_tick_zero(offset_beats: float) -> None:
    pushed = SlotFeel(500, offset_beats, 30.0, 1.0, 0.1)
    tpl = template(slots=every_bar("kick", (0,), pushed) | every_bar("hat", (0,), pushed))
    out = feel(grid_groove(), tpl)
    for track in out.values():
        assert min(n.start for n in track.notes) == 0
    later_downbeats = [t for t in starts(out["drums"], KICK) if t > 0]
    assert all(t % BEAT for t in later_downbeats)  # the other downbeats did move


def dense_take() -> dict[str, Track]:
    """Same-pitch hats 40 ticks apart (1/48 rolls), notes up to the last tick, a bass that
    holds to the end: the cases where shifting could overlap or spill out of the clip."""
    hats = [Note(t, 40, HAT, 90) for t in range(0, TOTAL, 40)]
    bass = [Note(t, 480, 40, 100) for t in range(0, TOTAL, 480)]
    melody = [Note(t, 120, 64, 90) for t in range(0, TOTAL, 120)]
    return {"drums": Track("drums", 0, True, hats), "bass": Track("bass", 33, False, bass),
            "melody": Track("melody", 0, False, melody)}


@pytest.mark.parametrize("swing", [None, 58.0, 75.0], ids=["straight", "swing-58", "swing-75"])
@pytest.mark.parametrize("seed", [1, 2, 3], ids=lambda s: f"seed{s}")
def test_notes_stay_in_the_clip_and_same_pitches_never_overlap(swing: float | None, seed: int) -> None:
    late = SlotFeel(500, 0.06, 60.0, 1.0, 0.3)  # late placement, wild scatter
    tpl = template(spread_ms=60.0, slots={(g, s): late for g in groove.DRUM_GROUPS for s in range(48)})
    out = apply_feel(dense_take(), tpl, swing_percent=swing, seed=seed, total_ticks=TOTAL, bpm=174.0)
    for track in out.values():
        by_pitch = defaultdict(list)
        for n in track.notes:
            assert 0 <= n.start < TOTAL and n.duration > 0 and n.start + n.duration <= TOTAL
            assert 1 <= n.velocity <= 127
            by_pitch[n.pitch].append(n)
        for notes in by_pitch.values():
            notes.sort()
            for earlier, later in zip(notes, notes[1:]):
                assert earlier.start < later.start and earlier.start + earlier.duration <= later.start


def test_same_seed_gives_byte_identical_midi_and_another_seed_does_not() -> None:
    def midi(seed: int) -> bytes:
        tracks = feel(grid_groove(), template(), swing=60.0, seed=seed)
        return tracks_to_score(list(tracks.values()), bpm=90, ticks_per_beat=BEAT, total_ticks=TOTAL).dumps_midi()

    assert midi(7) == midi(7)
    assert midi(7) != midi(8)


def test_drums_keep_their_pitches_and_every_note() -> None:
    before = grid_groove()
    after = feel(before, template(), swing=60.0)
    for role in before:
        assert sorted(n.pitch for n in after[role].notes) == sorted(n.pitch for n in before[role].notes)


@pytest.mark.parametrize("swing", [None, 50.0], ids=["no-swing", "swing-50"])
def test_quantize_returns_the_input_unchanged(swing: float | None) -> None:
    before = grid_groove()
    assert feel(before, template(), swing=swing, amount=0.0) == before


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"amount": 1.5}, "amount"), ({"swing_percent": 80.0}, "swing"), ({"swing_percent": 40.0}, "swing"),
    ({"total_ticks": TOTAL - TICKS_PER_BAR}, "notes must start"),
], ids=["amount-above-1", "swing-above-75", "swing-below-50", "notes-past-the-end"])
def test_bad_arguments_are_clear_errors(kwargs: dict, message: str) -> None:
    arguments = {"swing_percent": None, "amount": 1.0, "seed": 1, "total_ticks": TOTAL, "bpm": 90.0} | kwargs
    with pytest.raises(ValueError, match=message):
        apply_feel(grid_groove(), template(), **arguments)


# ----------------------------------------------------------------------------- what a producer hears


def test_eight_bars_of_flat_drums_get_twenty_plus_velocities() -> None:
    drums = feel(grid_groove(), template(ratio_std=0.1))["drums"]
    assert len({n.velocity for n in drums.notes}) >= 20


def test_flat_hats_take_the_template_accents_and_keep_their_level() -> None:
    accents = every_bar("hat", (0,), SlotFeel(500, 0.0, 10.0, 1.2, 0.0)) | every_bar(
        "hat", (3, 9), SlotFeel(500, 0.0, 10.0, 0.6, 0.0)) | every_bar("hat", (6,), SlotFeel(500, 0.0, 10.0, 0.9, 0.0))
    out = feel(grid_groove(hat_step=120), template(ratio_std=0.0, slots=accents))["drums"]
    hats = [n for n in out.notes if n.pitch == HAT]
    on_beat = [n.velocity for n in hats if n.start % BEAT < 60]
    sixteenths = [n.velocity for n in hats if 60 < n.start % BEAT < 180 or 300 < n.start % BEAT < 420]
    assert sum(on_beat) / len(on_beat) > 1.5 * sum(sixteenths) / len(sixteenths)
    assert abs(sum(n.velocity for n in hats) / len(hats) - 95) < 5  # the model's level is kept


def test_accents_the_model_already_played_are_not_doubled() -> None:
    accents = every_bar("hat", (0, 6), SlotFeel(500, 0.0, 10.0, 1.2, 0.0)) | every_bar(
        "hat", (3, 9), SlotFeel(500, 0.0, 10.0, 0.8, 0.0))
    played = {0: 114, 240: 114, 120: 76, 360: 76}  # already accented like the template (1.2 : 0.8)
    notes = [Note(t, 40, HAT, played[t % BEAT]) for t in range(0, TOTAL, 120)]
    out = feel({"drums": Track("drums", 0, True, notes)}, template(ratio_std=0.0, slots=accents))["drums"]
    assert [n.velocity for n in out.notes] == [n.velocity for n in notes]  # not 137 -> 127 and 61


def test_bass_locks_to_the_kick_and_scatters_half_as_much() -> None:
    out = feel(grid_groove(), template(spread_ms=20.0), bpm=90.0)
    kicks = dict(zip(range(0, TOTAL, 2 * BEAT), starts(out["drums"], KICK)))
    bass = sorted(n.start for n in out["bass"].notes)
    kick_moves = [abs(k - grid) for grid, k in kicks.items()]
    bass_moves = [abs(b - grid) for grid, b in zip(range(0, TOTAL, 2 * BEAT), bass)]
    assert sum(bass_moves) < 0.7 * sum(kick_moves)
    assert all(abs(b - kicks[grid]) <= abs(kicks[grid] - grid) for grid, b in zip(kicks, bass))


# ----------------------------------------------------------------------------- extraction


def synthetic_take(bars: int = 16, swing_percent: float = 60.0, snare_late_ticks: int = 8, seed: int = 0
                   ) -> list[tuple[int, int, int]]:
    """A drummer on a click: kick 1 and 3, snare 2 and 4 laid back, swung 8th hats loud on
    the beat and soft on the "and", a few ticks of scatter."""
    rng = random.Random(seed)
    hits = []
    for beat in range(bars * 4):
        base = beat * BEAT
        if beat % 2:
            hits.append((base + snare_late_ticks + rng.randint(-3, 3), SNARE, 105))
        else:
            hits.append((base + rng.randint(-3, 3), KICK, 100))
        hits.append((base + rng.randint(-3, 3), HAT, 90 + rng.randint(-4, 4)))
        hits.append((base + round(2 * 240 * swing_percent / 100) + rng.randint(-3, 3), HAT, 60 + rng.randint(-4, 4)))
    return sorted((max(0, t), p, v) for t, p, v in hits)


def test_a_drummers_swing_placement_and_accents_are_measured() -> None:
    tpl = template_from_performances("take", [Performance("take", "jazz", 100.0, synthetic_take())])
    assert tpl.swing_unit == "8th" and abs(tpl.swing_percent - 60.0) < 1.0
    assert abs(tpl.slot("snare", 12).offset_beats * BEAT - 8) <= 2  # beat 2 sits 8 ticks late
    assert tpl.slot("hat", 0).velocity_ratio > 1.1 > 0.9 > tpl.slot("hat", 6, swung=True).velocity_ratio


def write_take(path: Path, bpm: float, hits: list[tuple[int, int, int]]) -> Path:
    score = symusic.Score(BEAT)
    score.tempos.append(symusic.Tempo(0, bpm))
    track = symusic.Track(name="drums", program=0, is_drum=True)
    for tick, pitch, velocity in hits:
        track.notes.append(symusic.Note(tick, 40, pitch, velocity))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


@pytest.mark.parametrize("bpm", [75.0, 150.0], ids=["75bpm", "150bpm"])
def test_a_users_own_take_becomes_a_template_at_any_tempo(tmp_path: Path, bpm: float) -> None:
    tpl = template_from_midi(write_take(tmp_path / "my_take.mid", bpm, synthetic_take()))
    assert tpl.name == "my_take" and tpl.median_bpm == bpm
    assert abs(tpl.swing_percent - 60.0) < 1.0  # swing and placement are in beats: same at any tempo
    assert abs(tpl.slot("snare", 12).offset_beats * BEAT - 8) <= 2
    out = feel(grid_groove(hat_step=240), tpl, swing=tpl.swing_percent)["drums"]
    assert all(t % BEAT in range(270, 330) for t in starts(out, HAT) if 120 < t % BEAT < 400)


@pytest.mark.parametrize(("content", "message"), [(b"not midi at all", "not a readable MIDI"), (None, "no drum take")],
                         ids=["not-midi", "no-notes"])
def test_a_bad_user_take_is_a_clear_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "take.mid"
    if content is None:
        write_take(path, 90.0, [])
    else:
        path.write_bytes(content)
    with pytest.raises(GrooveError, match=message) as error:
        template_from_midi(path)
    assert str(path) in str(error.value)


# ----------------------------------------------------------------------------- the pool file


def small_pool() -> GroovePool:
    take = Performance("take", "jazz", 100.0, synthetic_take())
    return GroovePool({"jazz": template_from_performances("jazz", [take])})


def test_pool_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    pool = small_pool()
    pool.save(tmp_path / "grooves.json")
    again = GroovePool.load(tmp_path / "grooves.json")
    assert again.to_json() == pool.to_json() == small_pool().to_json()
    assert again.template("jazz").swing_unit == "8th"


def broken(data: dict, where: str) -> dict:
    entry = data["templates"]["jazz"]
    if where == "format":
        data["format"] = 99
    elif where == "templates":
        data["templates"] = []
    elif where == "swing_unit":
        entry["swing_unit"] = "quarter"
    elif where == "overall":
        entry["groups"]["kick"]["overall"] = [1, 2]
    elif where == "by_bar_slot":
        entry["groups"]["kick"]["by_bar_slot"]["99"] = entry["groups"]["kick"]["overall"]
    return data


@pytest.mark.parametrize(("where", "names"), [
    ("format", "format"), ("templates", "templates"), ("swing_unit", "templates.jazz.swing_unit"),
    ("overall", "templates.jazz.groups.kick.overall"), ("by_bar_slot", "templates.jazz.groups.kick.by_bar_slot"),
])
def test_a_bad_pool_file_names_the_file_and_field(tmp_path: Path, where: str, names: str) -> None:
    path = tmp_path / "grooves.json"
    path.write_text(json.dumps(broken(json.loads(small_pool().to_json()), where)))
    with pytest.raises(GrooveError, match=names.replace(".", r"\.")) as error:
        GroovePool.load(path)
    assert str(path) in str(error.value)


def test_unreadable_pool_file_and_unknown_genre_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "grooves.json").write_text("{not json")
    with pytest.raises(GrooveError, match="cannot read the groove pool"):
        GroovePool.load(tmp_path / "grooves.json")
    with pytest.raises(GrooveError, match="no template for genre 'polka'"):
        small_pool().template("polka")


def test_shipped_pool_covers_every_genre_and_credits_gmd() -> None:
    pool = groove.default_pool()
    assert set(pool.templates) == set(GENRES)
    assert "Groove MIDI Dataset, Gillick et al. 2019" in pool.source and "CC BY 4.0" in pool.licence
    assert groove.GROOVES_PATH.stat().st_size < 200_000
    assert pool.template("lofi").donors == ("hiphop", "soul") and pool.template("trap").donors == ("hiphop",)
    assert pool.template("house").donors == pool.template("techno").donors == ("house",)
    assert pool.template("dnb").donors == ("funk", "dnb") and not pool.template("jazz").donors


def test_genre_swing_defaults_follow_the_measured_gmd_swing() -> None:
    pool = groove.default_pool()
    for genre in GENRES:
        if not pool.template(genre).donors:
            assert GENRE_SWING[genre] == groove.default_swing(pool.template(genre).swing_percent), genre
    assert GENRE_SWING["jazz"] >= 60 and GENRE_SWING["lofi"] >= 58
    assert 50 < GENRE_SWING["hiphop"] < 56 and GENRE_SWING["house"] == GENRE_SWING["techno"] == 50
    assert pool.template("jazz").swing_unit == "8th"


@pytest.mark.parametrize(("genre", "offbeat", "lands"), [("jazz", 240, 307), ("lofi", 120, 144)],
                         ids=["jazz-8ths-at-64%", "lofi-16ths-at-60%"])
def test_shipped_swing_moves_the_offbeat_hats_late_by_the_default(genre: str, offbeat: int, lands: int) -> None:
    before = grid_groove(hat_step=120)
    out = apply_feel(before, groove.default_pool().template(genre), swing_percent=GENRE_SWING[genre],
                     seed=5, total_ticks=TOTAL, bpm=GENRE_DEFAULT_BPM[genre])["drums"]
    pairs = zip(starts(before["drums"], HAT), starts(out, HAT))  # same-pitch notes keep their order
    landed = [after - (grid - offbeat) for grid, after in pairs if grid % BEAT == offbeat]
    assert abs(sum(landed) / len(landed) - lands) < 8  # late by the default swing, on average
    assert all(abs(t - lands) <= BEAT * groove.MAX_SHIFT_BEATS for t in landed)


def test_every_shipped_template_gives_flat_tokens_twenty_plus_velocities() -> None:
    pool = groove.default_pool()
    for genre in GENRES:
        out = apply_feel(grid_groove(), pool.template(genre), swing_percent=GENRE_SWING[genre], seed=3,
                         total_ticks=TOTAL, bpm=GENRE_DEFAULT_BPM[genre])
        assert len({n.velocity for n in out["drums"].notes}) >= 20, genre


# ----------------------------------------------------------------------------- the real GMD


@pytest.fixture(scope="module")
def gmd_train() -> list[Performance]:
    return grooves.gmd_performances(GMD, ("train",))


@needs_gmd
def test_building_from_gmd_reproduces_the_shipped_file(gmd_train: list[Performance]) -> None:
    assert grooves.build_pool(gmd_train, GENRES).to_json() == groove.GROOVES_PATH.read_text()


@needs_gmd
def test_jazz_feel_swings_a_straight_groove_at_least_as_much_as_gmd_jazz() -> None:
    from collections import Counter

    from stemforge.configs import resolve_config
    from stemforge.eval.music_features import swing
    from stemforge.symbolic.recipes.corpus import CorpusConfig, load_gmd

    config = CorpusConfig.load(resolve_config("default", "corpus"))
    real = [n for g in load_gmd(GMD, config, Counter()) if g.genre == "jazz" for n in g.drums]
    ride = [Note(t, 40, RIDE, 90) for t in range(0, TOTAL, 240)]
    out = apply_feel({"drums": Track("drums", 0, True, ride)}, groove.default_pool().template("jazz"),
                     swing_percent=GENRE_SWING["jazz"], seed=1, total_ticks=TOTAL, bpm=GENRE_DEFAULT_BPM["jazz"])
    on_token_grid = [Note(round(n.start / 40) * 40, n.duration, n.pitch, n.velocity) for n in out["drums"].notes]
    assert swing(ride, BEAT).value == 0.0
    assert swing(on_token_grid, BEAT).value >= swing(real, BEAT).value
