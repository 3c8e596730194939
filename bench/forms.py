"""Forms of 32 and 64 bars composed by the shipped model, beside real song forms: failures,
the cost against a 16-bar piece of the same genre and seed, memory, the contrast between
different sections and the return of a section, fills before a new section, a crash or
accent on its downbeat; and what the Billboard songs do (section lengths, sections that
come back).

    .venv/bin/python bench/forms.py [--seeds 4] [--billboard ../shared/data/billboard]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

# Run as a file, this folder would shadow the `symbolic` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import reported  # noqa: E402
from stemforge.eval.music_features import bar_similarity, phrase_end_variations, split_bars  # noqa: E402
from stemforge.pipeline.request import RunRequest  # noqa: E402
from stemforge.pipeline.run import request_conditions  # noqa: E402
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT  # noqa: E402
from stemforge.symbolic.decoding.model import load_composer  # noqa: E402
from stemforge.symbolic.music.arrangement import Note  # noqa: E402
from stemforge.symbolic.music.conditions import GENRES  # noqa: E402
from stemforge.symbolic.music.genres import genre_entry  # noqa: E402
from stemforge.symbolic.runtime.compose import compose  # noqa: E402
from stemforge.symbolic.runtime.sampling import SamplingSettings  # noqa: E402
from stemforge.symbolic.runtime.sections import CRASH, KICKS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _section_notes(notes: list[Note], start_bar: int, bars: int) -> list[Note]:
    start, end = start_bar * TICKS_PER_BAR, (start_bar + bars) * TICKS_PER_BAR
    return [Note(n.start - start, n.duration, n.pitch, n.velocity) for n in notes if start <= n.start < end]


def _mean_similarity(a: list[Note], b: list[Note], bars: int) -> float | None:
    """Mean bar-by-bar similarity of two sections' melodies over their common bars."""
    pairs = zip(split_bars(a, bars, TICKS_PER_BEAT), split_bars(b, bars, TICKS_PER_BEAT))
    values = [v for x, y in pairs if (v := bar_similarity(x, y, TICKS_PER_BEAT)) is not None]
    return sum(values) / len(values) if values else None


def form_figures(composed, genre: str) -> dict[str, list[float]]:
    tracks = composed.arrangement.tracks
    sections = composed.form["sections"]
    out: dict[str, list[float]] = {"contrast": [], "return": [], "fill": [], "fill_filling": [], "fill_building": [],
                                   "downbeat": []}
    melody = tracks["melody"].notes
    for i, a in enumerate(sections):
        for b in sections[i + 1:]:
            if "melody" not in a["parts"] or "melody" not in b["parts"]:
                continue
            bars = min(a["bars"], b["bars"])
            value = _mean_similarity(_section_notes(melody, a["start_bar"], bars),
                                     _section_notes(melody, b["start_bar"], bars), bars)
            if value is not None:
                out["return" if a["name"] == b["name"] else "contrast"].append(value)
    drums = tracks["drums"].notes
    for before, after in zip(sections, sections[1:]):
        if "drums" not in before["parts"] or before["bars"] < 2:
            continue
        part = _section_notes(drums, before["start_bar"], before["bars"])
        varied = phrase_end_variations(part, before["bars"], TICKS_PER_BEAT, before["bars"])
        if varied.total:
            out["fill"].append(varied.value)
            fills = genre_entry(genre).form.into_section == "fill"
            out["fill_" + ("filling" if fills else "building")].append(varied.value)
        if "drums" in after["parts"]:
            downbeat = after["start_bar"] * TICKS_PER_BAR
            marks = CRASH if genre_entry(genre).form.downbeat == "crash" else None
            hit = any(n.start == downbeat and (n.pitch == marks if marks else n.pitch in KICKS) for n in drums)
            out["downbeat"].append(float(hit))
    return out


def billboard_figures(folder: Path) -> None:
    from stemforge.symbolic.recipes.harmony_data import read_billboard
    from stemforge.symbolic.runtime.form import section_name

    songs = read_billboard(folder)
    lengths: dict[str, list[int]] = {}
    returning = total = 0
    for song in songs:
        names = [section_name(s.function) for s in song.sections if s.function]
        names = [n for n in names if n]
        for section in song.sections:
            name = section_name(section.function) if section.function else None
            if name:
                lengths.setdefault(name, []).append(len(section.bars))
        counts = Counter(names)
        returning += sum(1 for n in names if counts[n] > 1)
        total += len(names)
    print(f"Billboard ({len(songs)} songs): sections that come back {returning / max(1, total):.0%} of "
          f"{total}; median bars: " + ", ".join(f"{n} {statistics.median(v):g}" for n, v in sorted(lengths.items())
                                                  if len(v) >= 20))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--billboard", type=Path, default=REPO.parent / "shared" / "data" / "billboard")
    args = parser.parse_args()
    composer = load_composer()
    settings = SamplingSettings()
    failures: Counter = Counter()
    requests: Counter = Counter()
    times: dict[int, list[float]] = {16: [], 32: [], 64: []}
    ratios: list[float] = []
    figures: dict[str, list[float]] = {"contrast": [], "return": [], "fill": [], "fill_filling": [],
                                       "fill_building": [], "downbeat": []}
    rss: dict[int, float] = {}
    compose(composer, request_conditions(RunRequest(prompt="lofi", bars=4), None, 0), settings, 0)  # warm
    for bars in (16, 32, 64):
        for genre in GENRES:
            for seed in range(args.seeds):
                requests[bars] += 1
                try:
                    conditions = request_conditions(RunRequest(prompt=genre, bars=bars, seed=seed), None, seed)
                    started = time.process_time()
                    composed = compose(composer, conditions, settings, seed)
                    seconds = time.process_time() - started
                except Exception as error:  # noqa: BLE001 - a failure is what this bench counts
                    failures[bars] += 1
                    print(f"{genre} {bars} bars seed {seed}: {type(error).__name__}: {error}", file=sys.stderr)
                    continue
                if any(w for w in composed.warnings if "context" in w):
                    failures[bars] += 1
                times[bars].append(seconds)
                if bars == 64:
                    reference = times[16][GENRES.index(genre) * args.seeds + seed]
                    ratios.append(seconds / reference)
                if composed.form:
                    for name, values in form_figures(composed, genre).items():
                        figures[name].extend(values)
        rss[bars] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"requests: {dict(requests)}; failures (errors or context cuts): {dict(failures)}")
    for bars, values in times.items():
        print(f"compose CPU s, {bars} bars: median {statistics.median(values):.2f} (n={len(values)}); "
              f"peak RSS after them {rss[bars]:.0f} MB")
    print(f"64 bars / 16 bars (same genre and seed): median {statistics.median(ratios):.2f}x, "
          f"max {max(ratios):.2f}x (aim <= 4.5x)")

    def mean(values: list[float]) -> str:
        return f"{sum(values) / len(values):.2f} (n={len(values)})" if values else "-"

    print(f"melody similarity between different sections: {mean(figures['contrast'])} (aim <= 0.3)")
    print(f"melody similarity of a returning section: {mean(figures['return'])} (aim >= 0.7)")
    print(f"fill or variation in the bar before a new section: {mean(figures['fill'])} (aim >= 0.8)")
    filling = sum(genre_entry(g).form.into_section == "fill" for g in GENRES)
    print(f"  in the {filling} genres whose drummers fill: {mean(figures['fill_filling'])}; the others "
          f"(electronic builds, ambient): {mean(figures['fill_building'])}")
    print(f"crash (accent: lofi, ambient) on a new section's downbeat: {mean(figures['downbeat'])}")
    if (args.billboard / "McGill-Billboard").is_dir():
        billboard_figures(args.billboard)
    return 0


if __name__ == "__main__":
    with reported():
        raise SystemExit(main())
