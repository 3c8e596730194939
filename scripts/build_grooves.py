"""Rebuild symbolic/runtime/grooves.json (the groove pool) from the Groove MIDI Dataset, and measure
what the feel does (the figures in docs/groove.md).

    .venv/bin/python scripts/build_grooves.py                 # writes symbolic/runtime/grooves.json
    .venv/bin/python scripts/build_grooves.py --report        # also prints the measurements

Templates come from the GMD train split; the measurements use the validation split, so
they judge the templates on takes they were not built from.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stemforge.configs import resolve_config  # noqa: E402
from stemforge.eval.music_features import swing  # noqa: E402
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT  # noqa: E402
from stemforge.symbolic.music.arrangement import Note, Track  # noqa: E402
from stemforge.symbolic.music.conditions import GENRE_DEFAULT_BPM, GENRES  # noqa: E402
from stemforge.symbolic.recipes import grooves  # noqa: E402
from stemforge.symbolic.recipes.corpus import CorpusConfig, load_gmd  # noqa: E402
from stemforge.symbolic.runtime import groove  # noqa: E402

TOKEN_VELOCITIES = (15, 31, 47, 63, 79, 95, 111, 127)  # the tokenizer's 8 levels (miditok, 8 bins)
BARS = 8


def token_velocity(velocity: int) -> int:
    return min(TOKEN_VELOCITIES, key=lambda level: abs(level - velocity))


def first_bars(notes: list[Note], bars: int = BARS) -> list[Note]:
    return [n for n in notes if n.start < bars * TICKS_PER_BAR]


def unit_table(performances: list[groove.Performance]) -> list[str]:
    """Onset-to-onset timing scatter by tempo, in ticks (beats) and in ms: which unit is
    constant across tempi is the unit the template stores spreads in."""
    lines = ["| tempo (bpm) | takes | hits | scatter (ticks at 480/beat) | scatter (ms) |", "|---|---|---|---|---|"]
    for low, high in ((0, 80), (80, 100), (100, 120), (120, 140), (140, 300)):
        takes = [p for p in performances if low < p.bpm <= high and len(p.hits) >= groove.MIN_PERFORMANCE_HITS]
        ms, ticks = [], []
        for take in takes:
            jitter = groove._align(take).hits.jitter_ms
            jitter = jitter[~np.isnan(jitter)]
            ms.append(jitter)
            ticks.append(jitter * take.bpm / 60000.0 * TICKS_PER_BEAT)
        all_ms, all_ticks = np.concatenate(ms), np.concatenate(ticks)
        lines.append(f"| {low + 1}-{high} | {len(takes)} | {len(all_ms)} | {groove._robust_std(all_ticks):.1f} "
                     f"| {groove._robust_std(all_ms):.1f} |")
    return lines


def straight_jazz_groove(bars: int = BARS) -> dict[str, Track]:
    """Ride on every 8th, kick on 1 and 3, snare on 2 and 4, foot hat on 2 and 4."""
    notes = []
    for bar in range(bars):
        for step in range(8):
            tick = bar * TICKS_PER_BAR + step * 240
            notes.append(Note(tick, 40, 51, 95 if step % 2 == 0 else 79))
            if step in (0, 4):
                notes.append(Note(tick, 40, 36, 79))
            if step in (2, 6):
                notes += [Note(tick, 40, 38, 95), Note(tick, 40, 44, 63)]
    return {"drums": Track("drums", 0, True, notes)}


def on_token_grid(notes: list[Note]) -> list[Note]:
    return [Note(round(n.start / 40) * 40, n.duration, n.pitch, n.velocity) for n in notes]


def report(pool: groove.GroovePool, gmd_root: Path, train: list[groove.Performance]) -> None:
    print("## Timing scatter by tempo (GMD train)\n")
    print("\n".join(unit_table(train)))

    config = CorpusConfig.load(resolve_config("default", "corpus"))
    config.gmd_splits = ["validation"]
    validation = [g for g in load_gmd(gmd_root, config, Counter())
                  if max(n.start for n in g.drums) >= BARS * TICKS_PER_BAR]
    by_genre: dict[str, list] = {}
    for g in validation:
        by_genre.setdefault(g.genre, []).append(g)

    print("\n## Per genre (templates from GMD train; applied to 8-bar GMD validation grooves, token velocities)\n")
    print("| genre | from | takes | swing unit | swing measured | GENRE_SWING | drum scatter (ms) | "
          "timing dev. applied, ms at default bpm | distinct velocities: tokens -> feel (real) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for genre in GENRES:
        template = pool.template(genre)
        bpm = GENRE_DEFAULT_BPM[genre]
        sources = template.donors or (genre,)
        grooves = [g for source in sources for g in by_genre.get(source, [])] or validation
        deviations, distinct_in, distinct_out, distinct_real = [], [], [], []
        for index, source in enumerate(grooves):
            real = first_bars(source.drums)
            tokens = [Note(n.start, n.duration, n.pitch, token_velocity(n.velocity)) for n in real]
            swing_percent = groove.GENRE_SWING[genre]
            out = groove.apply_feel({"drums": Track("drums", 0, True, tokens)}, template, swing_percent=swing_percent,
                                    seed=index, total_ticks=BARS * TICKS_PER_BAR, bpm=bpm)["drums"].notes
            unit = groove._unit_ticks(template, TICKS_PER_BEAT)
            placed = {(groove._swing_tick(n.start, unit, swing_percent), n.pitch) for n in tokens}
            grid = sorted(placed)
            for n_in, n_out in zip(grid, sorted((n.start, n.pitch) for n in out)):
                if n_in[0] and n_in[1] == n_out[1]:
                    deviations.append((n_out[0] - n_in[0]) / TICKS_PER_BEAT * 60000 / bpm)
            distinct_in.append(len({n.velocity for n in tokens}))
            distinct_out.append(len({n.velocity for n in out}))
            distinct_real.append(len({n.velocity for n in real}))
        overall = [f.overall for f in template.groups.values()]
        scatter = sum(s.offset_std_ms * s.hits for s in overall) / sum(s.hits for s in overall)
        origin = "+".join(template.donors) if template.donors else "GMD"
        print(f"| {genre} | {origin} | {template.performances} | {template.swing_unit} | {template.swing_percent:.1f} "
              f"| {groove.GENRE_SWING[genre]:g} | {scatter:.1f} | {np.std(deviations):.1f} "
              f"| {np.median(distinct_in):.0f} -> {np.median(distinct_out):.0f} ({np.median(distinct_real):.0f}) |")

    print("\n## Jazz swing: share of off-beat hits on swung positions (1/12-beat grid)\n")
    straight = straight_jazz_groove()
    jazz = pool.template("jazz")
    felt = groove.apply_feel(straight, jazz, swing_percent=groove.GENRE_SWING["jazz"], seed=1,
                             total_ticks=BARS * TICKS_PER_BAR, bpm=GENRE_DEFAULT_BPM["jazz"])["drums"].notes
    config.gmd_splits = ["train", "validation"]
    jazz_takes = [g for g in load_gmd(gmd_root, config, Counter()) if g.genre == "jazz"]
    real = swing([n for g in jazz_takes for n in g.drums], TICKS_PER_BEAT)
    swung_takes = swing([n for g in jazz_takes if g.feel != "straight" for n in g.drums], TICKS_PER_BEAT)
    print(f"straight 8ths: {swing(straight['drums'].notes, TICKS_PER_BEAT).value:.2f}; after apply_feel "
          f"(jazz, {groove.GENRE_SWING['jazz']:g}%): {swing(on_token_grid(felt), TICKS_PER_BEAT).value:.2f}")
    print(f"GMD jazz, corpus quantization: all {len(jazz_takes)} takes {real.value:.2f}, "
          f"the {sum(g.feel != 'straight' for g in jazz_takes)} takes detected swung {swung_takes.value:.2f}")
    for percent in (58.0, 60.0, 62.0, 64.0, 66.7):
        out = groove.apply_feel(straight, jazz, swing_percent=percent, seed=1, total_ticks=BARS * TICKS_PER_BAR,
                                bpm=GENRE_DEFAULT_BPM["jazz"])["drums"].notes
        print(f"  swing {percent:g}%: {swing(on_token_grid(out), TICKS_PER_BEAT).value:.2f}")

    print("\n## Speed\n")
    rng = random.Random(0)
    total = BARS * TICKS_PER_BAR
    drums = straight_jazz_groove()["drums"].notes + [Note(t, 40, 42, 79) for t in range(0, total, 120)]
    bass = [Note(t, 200, rng.randint(36, 48), 95) for t in range(0, total, 240)]
    melody = [Note(t, 100, rng.randint(60, 72), 95) for t in range(0, total, 120)]
    tracks = {"drums": Track("drums", 0, True, drums), "bass": Track("bass", 33, False, bass),
              "melody": Track("melody", 0, False, melody)}
    runs = 50
    started = time.perf_counter()
    for seed in range(runs):
        groove.apply_feel(tracks, pool.template("lofi"), swing_percent=60, seed=seed, total_ticks=total, bpm=80)
    notes = sum(len(t.notes) for t in tracks.values())
    print(f"apply_feel on 8 bars ({notes} notes, 3 tracks): {(time.perf_counter() - started) / runs * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmd", type=Path, default=REPO.parent / "shared" / "data" / "gmd",
                        help="GMD folder (with info.csv)")
    parser.add_argument("--out", type=Path, default=groove.GROOVES_PATH, help="groove pool JSON to write")
    parser.add_argument("--report", action="store_true", help="print the measurements of docs/groove.md")
    args = parser.parse_args()
    train = grooves.gmd_performances(args.gmd, ("train",))
    pool = grooves.build_pool(train, GENRES)
    pool.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, "
          f"{len(pool.templates)} templates from {len(train)} takes)")
    if args.report:
        report(pool, args.gmd, train)


if __name__ == "__main__":
    main()
