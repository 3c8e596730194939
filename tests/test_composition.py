"""The composition plan the sampler follows: loops, chords, the bass on the kick, density,
clean MIDI and a token budget, on the tiny model the tests train (its notes are not
musical, so every assertion is about what the plan forces or pulls, with margins a
producer would hear), and the prompt words that set them."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import pytest

from stemforge.eval.music_features import bass_on_kick, kick_coverage, self_similarity
from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.decoding.model import load_composer
from stemforge.symbolic.decoding.style import STYLE_FILE, StyleStats
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.conditions import build_conditions, parse_loop, progression_of
from stemforge.symbolic.music.harmony import chord_scale, chord_tones
from stemforge.symbolic.runtime.grammar import GrammarState, GrammarTables, Kind
from stemforge.symbolic.runtime.plan import BarSource, bar_sources, build_plan, draw_groove
from stemforge.symbolic.runtime.sampling import SamplePlan, Sampler, SamplingSettings
from tests.midi_fixtures import groove_tracks

GRID = TICKS_PER_BEAT // 12


# ------------------------------------------------------------------ the plan


@pytest.mark.parametrize(("bars", "period", "cell", "expected"), [
    (8, 4, None, "new new new new =1 =2 =3 ~4"),
    (8, 2, 1, "new ~1 =1 ~2 =1 =2 =1 ~2"),
    (8, 1, 1, "new =1 =1 ~1 =1 =1 =1 ~1"),
    (16, 4, None, "new new new new =1 =2 =3 ~4 =1 =2 =3 ~4 =1 =2 =3 ~4"),
    (4, 4, None, "new new new new"),
    (8, None, None, "new new new new new new new new"),
], ids=["4-bar loop", "2-bar drums", "1-bar drums", "16 bars", "one loop", "off"])
def test_loops_repeat_with_a_variation_at_each_phrase_end(bars: int, period: int | None, cell: int | None,
                                                          expected: str) -> None:
    sources = bar_sources(bars, period, cell)
    shown = " ".join("new" if b not in sources else ("=" if sources[b].whole else "~") + str(sources[b].source + 1)
                     for b in range(bars))
    assert shown == expected
    assert all(s.source < b for b, s in sources.items())  # a bar repeats only what came before it


def test_pitched_parts_loop_over_whole_chord_cycles() -> None:
    plan = build_plan(genre="hiphop", bars=8, loop_bars=2, chord_cycle_bars=4)
    assert plan.sources["bass"][4] == BarSource(0) and 2 not in plan.sources["bass"]  # 4 bars, not 2
    assert plan.sources["drums"][2] == BarSource(0)  # drums still turn over every 2 bars


def _chords(text: str, key: str, bars: int) -> tuple:
    conditions = build_conditions("pop", seed=0, key=key, chords=text)
    return tuple((s.start // GRID, s.end // GRID, s.chord.root, s.chord.bass, chord_tones(s.chord),
                  chord_scale(s.chord, conditions.key_obj)) for s in progression_of(conditions).spans(bars, TICKS_PER_BEAT))


@pytest.mark.parametrize(("bars", "role", "expected"), [
    (8, "melody", "new new ~1 new ~1 =2 ~3 new"),
    (16, "melody", "new new ~1 new ~1 =2 ~3 new new new ~9 new ~1 =2 ~3 =4"),
    (8, "bass", "new new new new =1 =2 =3 ~4"),
    (16, "bass", "new new new new =1 =2 =3 ~4 ~1 =2 ~3 ~4 =1 =2 =3 ~4"),
    (8, "drums", "new ~1 =1 ~2 =1 =2 =1 ~2+fill"),
], ids=["melody A A'", "melody A A' B A''", "bass 8", "bass 16", "drums"])
def test_phrases_develop_instead_of_repeating(bars: int, role: str, expected: str) -> None:
    """--loop 8 (the default): call and response inside a phrase, the phrase back varied
    (A A'), a contrasting B and the A phrase with its first cadence in 16 bars; the bass
    rides the chords and turns at phrase ends; the drums keep a groove and fill every 8 bars.
    With one chord a bar the melody's echoes over other chords keep only their rhythm."""
    plan = build_plan(genre="hiphop", bars=bars, loop_bars=8, chord_cycle_bars=1,
                      chords=_chords("Am", "A minor", bars))
    assert plan.bar_map(role).replace("rest", "new") == expected
    changing = build_plan(genre="hiphop", bars=8, loop_bars=8, chord_cycle_bars=4,
                          chords=_chords("Am F C G", "A minor", 8))
    assert changing.bar_map("melody").split()[2] == "^1"  # bar 3 (C) echoes bar 1 (Am): rhythm only
    assert changing.bar_map("melody").split()[4] == "~1"  # bar 5 is over Am again: notes kept
    exact = build_plan(genre="hiphop", bars=16, loop_bars=4, chord_cycle_bars=4, chords=_chords("Am F C G", "A minor", 16))
    assert exact.bar_map("melody") == "new new new new =1 =2 =3 ~4 =1 =2 =3 ~4 =1 =2 =3 ~4"  # --loop 4: exact


def test_a_through_composed_piece_keeps_its_groove() -> None:
    plan = build_plan(genre="rock", bars=8, loop_bars=None)
    assert plan.bar_map("melody") == plan.bar_map("bass") == " ".join(["new"] * 8)
    assert [s.keep_beats for b, s in sorted(plan.sources["drums"].items())] == [3, 2, 3, 2, 2, 2, 2]
    assert plan.fills == frozenset({7})


def test_the_melody_breathes_in_the_genres_that_do() -> None:
    rests = [build_plan(genre="soul", bars=8, loop_bars=8, seed=seed).rests["melody"] for seed in range(40)]
    assert 0.3 <= sum(bool(r) for r in rests) / 40 <= 0.7 and all(r <= {7} for r in rests)
    house = [build_plan(genre="house", bars=8, loop_bars=8, seed=seed).rests["melody"] for seed in range(40)]
    assert sum(bool(r) for r in house) < sum(bool(r) for r in rests)


def test_each_piece_draws_a_real_groove_of_its_genre(tiny_model: Path) -> None:
    """The kick+snare skeleton comes from the genre's training grooves (the fixture's hip-hop
    plays kicks on 16ths 1, 8, 11 and snares on 5 and 13; house four on the floor)."""
    style = load_composer(tiny_model).style
    feel, skeleton = draw_groove(style, "house", 3)
    assert {p for p, d in skeleton.items() if 36 in d} == {0, 12, 24, 36}
    feel, skeleton = draw_groove(style, "hiphop", 3)
    assert {p for p, d in skeleton.items() if 38 in d} == {12, 36}
    assert draw_groove(None, "hiphop", 3) == (None, {})


@pytest.mark.parametrize(("prompt", "loop", "bars"), [
    ("lofi 80bpm 2-bar loop", 2, 8), ("house 124, 16 bars, 4 bar loop", 4, 16), ("trap no loop", 0, 8),
    ("techno 130", 8, 8), ("lofi 80bpm", 8, 8), ("jazz, through-composed, 12 bars", 0, 12),
    ("pop 8 bar loop, 16 bars", 8, 16),
], ids=["2-bar loop", "loop and bars", "no loop", "techno default", "lofi default", "through-composed",
        "8-bar phrases"])
def test_loop_words_in_the_prompt(prompt: str, loop: int, bars: int) -> None:
    conditions = build_conditions(prompt, seed=1)
    assert (conditions.loop, conditions.bars) == (loop, bars)


@pytest.mark.parametrize(("prompt", "key", "chords"), [
    ("pop chords Am F C G", "A minor", "Am | F | C | G"),
    ("lofi Dm7 G7 Cmaj7 Cmaj7", "C major", "Dm7 | G7 | Cmaj7 | Cmaj7"),
    ("jazz in Bb major progression ii-V-I", "Bb major", "Cm7 | F7 | Bbmaj7 | Bbmaj7"),
    ("rock in E minor chords i VI III VII", "E minor", "Em | C | G | D"),
], ids=["symbols imply A minor", "sevenths imply C major", "romans in Bb", "romans in E minor"])
def test_chords_in_the_prompt_set_the_progression_and_the_key(prompt: str, key: str, chords: str) -> None:
    conditions = build_conditions(prompt, seed=2)
    assert (conditions.key, conditions.chords) == (key, chords)


@pytest.mark.parametrize(("chord", "key", "altered", "gone"), [
    ("A7", "C major", 1, 0), ("E", "A minor", 8, 7), ("Bb", "C major", 10, 11), ("Fm", "C major", 8, 9),
    ("D7", "C major", 6, 5), ("Am7", "C major", None, None),
], ids=["V7/ii: C#", "V in minor: G#", "bVII: Bb", "iv borrowed: Ab", "V7/V: F#", "diatonic"])
def test_a_chords_scale_takes_its_altered_tones(chord: str, key: str, altered: int | None, gone: int | None) -> None:
    from stemforge.symbolic.music.harmony import parse_chord_symbol
    from stemforge.symbolic.music.keys import parse_key

    scale = chord_scale(parse_chord_symbol(chord), parse_key(key))
    assert len(scale) == 7
    if altered is None:
        assert scale == parse_key(key).scale_pitch_classes
    else:
        assert altered in scale and gone not in scale


def test_every_piece_gets_a_progression_in_its_key_that_fits_its_loop() -> None:
    for seed in range(12):
        conditions = build_conditions("techno", seed=seed)
        progression = progression_of(conditions)
        assert conditions.loop % progression.cycle_bars == 0
        assert progression.chords[0].root == conditions.key_obj.tonic  # the loop opens on its home chord


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"chords": "H7 F"}, "chords"), ({"loop": 3}, "loop"),
], ids=["unknown chord", "loop of 3"])
def test_bad_chords_or_loop_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConditionError, match=field):
        build_conditions("lofi", seed=1, **kwargs)
    with pytest.raises(ValueError, match="--loop"):
        parse_loop("3")


# ------------------------------------------------------------------ grammar: clean MIDI, context budget


def _greedy_for_notes(state: GrammarState, tables: GrammarTables, rng: np.random.Generator) -> int:
    """An adversarial sampler: whatever the mask allows, it starts another note."""
    mask = state.sampling_mask()
    notes = mask & tables.note_start
    choices = np.flatnonzero(notes if bool(notes.any()) else mask).tolist()
    return int(rng.choice(choices))


@pytest.mark.parametrize("bars", [4, 16], ids=["4 bars", "16 bars"])
def test_a_note_hungry_sampler_still_finishes_inside_the_context(tiny_model: Path, bars: int) -> None:
    composer = load_composer(tiny_model)
    tables = GrammarTables(composer.tokenizer)
    prefix = composer.tokenizer.prefix_ids("house", 124, "A minor", "busy", bars)
    state = GrammarState(tables, ("drums", "bass", "melody"), bars, max_tokens=600, length=len(prefix))
    rng = np.random.default_rng(0)
    hits: set[tuple[int, int, int]] = set()
    while not state.finished:
        token = _greedy_for_notes(state, tables, rng)
        if tables.kind[token] == Kind.PITCH_DRUM:
            hit = (state.bar_count, state.position, token)
            assert hit not in hits, "the same drum twice at one position"
            hits.add(hit)
        state.advance(token)
        assert state.length <= 600
    segments = composer.tokenizer.split_tracks(state.history)
    assert [s.count(composer.tokenizer.bar_id) for s in segments] == [bars] * 3
    assert all(len(s) > bars + 3 for s in segments)  # every part still got notes


# ------------------------------------------------------------------ the sampler follows the plan


def _sample(composer, genre: str, bars: int, seed: int, **plan_kwargs) -> tuple[dict, list]:
    context = plan_kwargs.pop("context", {})
    conditions = build_conditions(genre, seed=seed, bars=bars, key="A minor", chords=plan_kwargs.pop("chords", None))
    progression = progression_of(conditions)
    spans = progression.spans(bars, TICKS_PER_BEAT)
    composition = build_plan(genre=genre, bars=bars, chord_cycle_bars=progression.cycle_bars,
                             chords=tuple((s.start // GRID, s.end // GRID, s.chord.root, s.chord.bass,
                                           chord_tones(s.chord), chord_scale(s.chord, conditions.key_obj))
                                          for s in spans), seed=seed, **plan_kwargs)
    roles = tuple(context) + tuple(r for r in ("drums", "bass", "melody") if r not in context)
    plan = SamplePlan(composer.tokenizer.prefix_ids(genre, 100, "A minor", composition.density, bars), roles, bars,
                      context, key="A minor", composition=composition, genre=genre)
    sampler = Sampler(composer)
    ids = sampler.sample(plan, SamplingSettings(), seed)
    return {r: t.notes for r, t in composer.tokenizer.decode_tracks(ids).items()}, spans


def _bar(notes: list[Note], bar: int) -> list[tuple[int, int, int]]:
    return sorted((n.start - bar * TICKS_PER_BAR, n.duration, n.pitch) for n in notes
                  if bar * TICKS_PER_BAR <= n.start < (bar + 1) * TICKS_PER_BAR)


def test_repeated_bars_are_the_bars_they_repeat(tiny_model: Path) -> None:
    composer = load_composer(tiny_model)
    tracks, _ = _sample(composer, "hiphop", 8, seed=3, loop_bars=4)
    for role in ("bass", "melody"):
        for bar in (4, 5, 6):
            assert _bar(tracks[role], bar) == _bar(tracks[role], bar - 4), (role, bar)
        half = 2 * TICKS_PER_BEAT  # the phrase-end variation keeps the first half's notes (a note may be
        # cut short where the new second half strikes its pitch again)
        kept = [(n[0], n[2]) for n in _bar(tracks[role], 3) if n[0] < half]
        assert [(n[0], n[2]) for n in _bar(tracks[role], 7) if n[0] < half] == kept
    through, _ = _sample(composer, "hiphop", 8, seed=3, loop_bars=None)
    looped = self_similarity(tracks["bass"], 8, 4, TICKS_PER_BEAT).value
    assert looped > self_similarity(through["bass"], 8, 4, TICKS_PER_BEAT).value + 0.3


def test_an_echo_keeps_the_rhythm_and_a_rest_bar_is_silent(tiny_model: Path) -> None:
    """Bar 3 answers bar 1 over another chord: its first two beats strike where bar 1's did,
    with pitches of its own chord; bar 8 of a breathing piece has no melody."""
    composer = load_composer(tiny_model)
    seed = next(s for s in range(40) if build_plan(genre="hiphop", bars=8, loop_bars=8, seed=s).rests["melody"])
    tracks, _ = _sample(composer, "hiphop", 8, seed, loop_bars=8, chords="Am F C G")
    half = 2 * TICKS_PER_BEAT
    call = [n[0] for n in _bar(tracks["melody"], 0) if n[0] < half]
    answer = [n[0] for n in _bar(tracks["melody"], 2) if n[0] < half]
    assert call and answer == call
    c_major = {0, 4, 7}  # bar 3's chord
    assert sum(n[2] % 12 in c_major for n in _bar(tracks["melody"], 2) if n[0] < half and n[0] % TICKS_PER_BEAT == 0) \
        >= 1
    assert _bar(tracks["melody"], 7) == []


def test_the_chord_wins_over_the_key(tiny_model: Path) -> None:
    """Over A7 in C major the lines play C#, not C: >= 90% of bass and melody notes under a
    chord with tones outside the key are in that chord's scale (issue 26's aim)."""
    composer = load_composer(tiny_model)
    inside = total = c_natural = c_sharp = 0
    for seed in range(3):
        conditions = build_conditions("pop", seed=seed, bars=4, key="C major", chords="C | A7 | Dm | G7")
        progression = progression_of(conditions)
        spans = progression.spans(4, TICKS_PER_BEAT)
        composition = build_plan(genre="pop", bars=4, loop_bars=None, chord_cycle_bars=4,
                                 chords=tuple((s.start // GRID, s.end // GRID, s.chord.root, s.chord.bass,
                                               chord_tones(s.chord), chord_scale(s.chord, conditions.key_obj))
                                              for s in spans))
        plan = SamplePlan(composer.tokenizer.prefix_ids("house", 100, "C major", "normal", 4), ("drums", "bass", "melody"),
                          4, key="C major", composition=composition, genre="house")
        ids = Sampler(composer).sample(plan, SamplingSettings(), seed)
        tracks = composer.tokenizer.decode_tracks(ids)
        a7 = chord_scale(spans[1].chord, conditions.key_obj)
        for role in ("bass", "melody"):
            notes = [n for n in tracks[role].notes if spans[1].start <= n.start < spans[1].end]
            inside += sum(n.pitch % 12 in a7 for n in notes)
            total += len(notes)
            c_natural += sum(n.pitch % 12 == 0 for n in notes)
            c_sharp += sum(n.pitch % 12 == 1 for n in notes)
    assert total and inside / total >= 0.9, (inside, total)
    assert c_sharp > 2 * c_natural, (c_sharp, c_natural)


def test_the_bass_lands_on_the_kicks_and_the_chord_roots(tiny_model: Path) -> None:
    composer = load_composer(tiny_model)
    drums = groove_tracks("hiphop", 4, 0, np.random.default_rng(1))["drums"]
    context = {"drums": composer.tokenizer.encode_track(drums, TICKS_PER_BEAT, 4)}
    locked, loose, covering, downbeats = [], [], [], []
    for seed in range(3):
        tracks, spans = _sample(composer, "hiphop", 4, seed, loop_bars=None, kick_lock=1.0, context=context,
                                chords="Am F C G")
        locked.append((bass_on_kick(tracks["bass"], drums.notes),
                       kick_coverage(tracks["bass"], drums.notes, TICKS_PER_BEAT)))
        for bar, span in enumerate(spans):
            first = min((n for n in tracks["bass"] if bar * TICKS_PER_BAR <= n.start < (bar + 1) * TICKS_PER_BAR),
                        key=lambda n: n.start)
            downbeats.append(first.start == bar * TICKS_PER_BAR and first.pitch % 12 == span.chord.bass)
        tracks, _ = _sample(composer, "hiphop", 4, seed, loop_bars=None, kick_lock=0.0, context=context)
        loose.append((bass_on_kick(tracks["bass"], drums.notes),
                      kick_coverage(tracks["bass"], drums.notes, TICKS_PER_BEAT)))
        # rock's way: every kick gets a bass note, the notes between the kicks stay
        tracks, _ = _sample(composer, "hiphop", 4, seed, loop_bars=None, kick_lock=0.0, kick_cover=1.0,
                            context=context)
        covering.append((bass_on_kick(tracks["bass"], drums.notes),
                         kick_coverage(tracks["bass"], drums.notes, TICKS_PER_BEAT)))
    on_kick = sum(s.hits for s, _ in locked) / sum(s.total for s, _ in locked)
    covered = sum(c.hits for _, c in locked) / sum(c.total for _, c in locked)
    assert on_kick >= 0.8 and covered >= 0.8
    assert on_kick > sum(s.hits for s, _ in loose) / sum(s.total for s, _ in loose)
    covered_without_lock = sum(c.hits for _, c in covering) / sum(c.total for _, c in covering)
    assert covered_without_lock >= 0.8 and covered_without_lock > sum(c.hits for _, c in loose) / sum(
        c.total for _, c in loose), (covering, loose)
    # the chord's root on the downbeat in 11 of 12 bars at least (issue 10 asks 80%): the
    # tiny model is barely trained, so one bar of twelve may still lose to its logits
    assert sum(downbeats) >= len(downbeats) - 1, downbeats


def test_density_words_change_the_notes_of_every_part(tiny_model: Path) -> None:
    composer = load_composer(tiny_model)
    counts = {d: {r: 0 for r in ("drums", "bass", "melody")} for d in ("sparse", "busy")}
    for density in counts:
        for seed in range(3):
            tracks, _ = _sample(composer, "rock", 4, seed, loop_bars=None, density=density)
            for role in counts[density]:
                counts[density][role] += len(tracks[role])
    for role in ("drums", "bass", "melody"):
        assert counts["busy"][role] >= 1.5 * counts["sparse"][role], (role, counts)


def test_training_writes_the_genre_statistics_the_sampler_reads(tiny_model: Path) -> None:
    style = StyleStats.load(tiny_model / STYLE_FILE)
    assert set(style.bars) == {"house", "hiphop", "rock"}
    # the fixture's house groove has four kicks a bar, hip-hop three: the counts say so
    assert style.drums["house"]["36"][0] > 0 and style.drums["house"]["36"][12] > 0
    assert style.drums["hiphop"]["36"][12] == 0
    assert style.drum_position_log_ratio("house")[21] < 0 < style.drum_position_log_ratio("hiphop")[21]  # hip-hop's
    # kick on the 8th 16th is its own; a kick on beat 2 is house's
    assert style.drum_log_share("house")[36][12] > style.drum_log_share("hiphop")[36][12]
    assert 2.5 < style.onset_rate("hiphop", "bass") < 3.5


# ------------------------------------------------------------------ run(): what is written


def test_a_run_writes_its_structure_chords_feel_and_key_signature(tiny_model: Path, tmp_path: Path) -> None:
    grooved = run(RunRequest(prompt="lofi 80bpm chords Am7 Dm7", model=tiny_model, seed=4, out=tmp_path / "g"))
    manifest = json.loads((tmp_path / "g" / "run.json").read_text())
    assert manifest["conditions"]["chords"] == "Am7 | Dm7" and manifest["conditions"]["loop"] == 8
    assert manifest["structure"]["bars"]["bass"] == "new new new new =1 =2 =3 ~4"
    assert manifest["feel"] == {"quantized": False, "groove": "lofi", "swing_percent": 60.0}
    assert manifest["tokens_sampled"] + manifest["tokens_forced"] == len(manifest["token_ids"]) - 6
    bass = tmp_path / "g" / manifest["midi"]["bass"]
    signatures = [m for m in mido.MidiFile(bass).tracks[0] if m.type == "key_signature"]
    assert [m.key for m in signatures] == ["Am"]
    drums = grooved.arrangement.tracks["drums"].notes
    assert any(n.start % GRID for n in drums)  # micro-timing: off the grid
    assert min(n.start for n in drums) == 0  # bar 1 beat 1 stays on sample 0
    assert len({n.velocity for n in drums}) >= 20
    assert grooved.arrangement.grid_tracks["drums"].notes != drums

    straight = run(RunRequest(prompt="lofi 80bpm chords Am7 Dm7", model=tiny_model, seed=4, out=tmp_path / "q",
                              quantize=True))
    notes = [n for t in straight.arrangement.tracks.values() for n in t.notes]
    assert all(n.start % GRID == 0 for n in notes)
    assert straight.arrangement.tracks["drums"].notes == straight.arrangement.grid_tracks["drums"].notes
    assert json.loads((tmp_path / "q" / "run.json").read_text())["feel"]["quantized"] is True


# ------------------------------------------------------------------ the grammar alone (no model)

@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"walk-{s}")
def test_any_walk_the_grammar_allows_decodes_to_valid_parts(seed: int) -> None:
    """Model-free property: whatever the sampler picks among the tokens the mask allows, the
    piece ends with every requested role, exactly the asked bars, pitches in each role's
    range, no drum twice at one position and inside the token budget."""
    from stemforge.symbolic.music.tokenizer import ComposerTokenizer, TokenizerSpec

    rng = np.random.default_rng(seed)
    tokenizer = ComposerTokenizer(TokenizerSpec(genres=["lofi", "house"]))
    tables = GrammarTables(tokenizer)
    roles = tuple(rng.permutation(["drums", "bass", "melody"])[: int(rng.integers(1, 4))])
    bars = int(rng.choice([1, 2, 4, 8]))
    prefix = tokenizer.prefix_ids("house", 120, "A minor", "normal", bars)
    budget = len(prefix) + 40 * bars * len(roles)
    state = GrammarState(tables, roles, bars, max_tokens=budget, length=len(prefix))
    while not state.finished:
        allowed = np.flatnonzero(state.sampling_mask()).tolist()
        assert allowed, "the grammar left no way to go on"
        state.advance(int(rng.choice(allowed)))
        assert state.length <= budget
    tracks = tokenizer.decode_tracks(prefix + state.history)
    assert set(tracks) <= set(roles) and len(tokenizer.split_tracks(state.history)) == len(roles)
    for role, track in tracks.items():
        low, high = tokenizer.spec.role_pitch_ranges[role]
        assert all(low <= n.pitch < high for n in track.notes), role
        assert all(n.start < bars * TICKS_PER_BAR for n in track.notes), role
        if role == "drums":
            hits = [(n.start, n.pitch) for n in track.notes]
            assert len(hits) == len(set(hits))
    for segment in tokenizer.split_tracks(state.history):
        assert segment.count(tokenizer.bar_id) == bars
