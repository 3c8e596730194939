"""Where do the bars start? The first downbeat `pipeline prepare` reads from the notes alone,
against POP909's own beat annotation (beat_midi.txt), on the songs of ../shared/data/pop909
in 4/4 by its index.xlsx.

    python bench/downbeats.py [--data ../shared/data] [--songs N] [--out figures.json]

Per song: the downbeat the notes imply (`symbolic.training.meter.judge_meter`, every note of the file,
its time signature ignored) and the first downbeat of beat_midi.txt, both as a tick in the
bar (480 per beat); the song matches when they fall on the same beat of the bar (within
half a beat), else it is one beat, half a bar or three beats off. Prints the counts, the
share matched and, as the reference measured in the same run, the share a reader who always
puts bar 1 on the first note gets. Also checks that prepare takes the annotation where it
has it (every song's bars then start on the annotated downbeat).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

# Run as a file, this folder would shadow the `eval` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from stemforge.symbolic.core.progress import progress_bar  # noqa: E402
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT  # noqa: E402
from stemforge.symbolic.music.tokenizer import TokenizerSpec  # noqa: E402
from stemforge.symbolic.recipes.corpus import _read_pop909_index  # noqa: E402
from stemforge.symbolic.training.meter import judge_meter  # noqa: E402
from stemforge.symbolic.training.prepare import PrepareError, _scaled_notes, load_piece, read_beat_annotation  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TICKS_PER_BAR = TICKS_PER_BEAT * BEATS_PER_BAR
OFF = {0: "matched", 1: "one beat late", 2: "half a bar off", 3: "one beat early"}


def beats_off(judged: int, annotated: int) -> int:
    """Whole beats (0-3) from the annotated downbeat to the judged one, within the bar."""
    return round(((judged - annotated) % TICKS_PER_BAR) / TICKS_PER_BEAT) % BEATS_PER_BAR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--songs", type=int, default=None, help="only the first N songs")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    root = args.data / "pop909"
    if not (root / "index.xlsx").is_file():
        print(f"skipped: {root} (POP909 with index.xlsx) not found")
        return 0
    meters = _read_pop909_index(root / "index.xlsx")
    songs = sorted(p for p in root.iterdir() if p.is_dir() and meters.get(p.name) == (2, 2))[: args.songs]
    import symusic

    counts, literal, steady, first_note, failures = Counter(), Counter(), Counter(), Counter(), []
    kept_by_annotation, odd_bars, odd_songs = 0, 0, 0
    spec = TokenizerSpec(genres=["pop"])
    started = time.perf_counter()
    for folder in progress_bar(songs, desc="songs", unit="song"):
        midi = folder / f"{folder.name}.mid"
        score = symusic.Score(str(midi))
        annotation = read_beat_annotation(midi, score)
        if annotation is None or annotation.beats_per_bar != BEATS_PER_BAR:
            continue
        scale = TICKS_PER_BEAT / score.ticks_per_quarter
        pitched, drums = _scaled_notes(score, scale)
        judgement = judge_meter(pitched, drums)
        four = judgement.beats_per_bar == 4
        off = beats_off(judgement.downbeat, annotation.downbeat) if four else None
        counts[OFF.get(off, "not read as 4/4")] += 1
        if off:
            failures.append(folder.name)
        literal[four and beats_off(judgement.downbeat, annotation.downbeats[0]) == 0] += 1
        on_phase = sum(min((d - annotation.downbeat) % TICKS_PER_BAR, (annotation.downbeat - d) % TICKS_PER_BAR)
                       <= TICKS_PER_BEAT // 4 for d in annotation.downbeats)
        if on_phase >= 0.9 * len(annotation.downbeats):
            steady[off == 0] += 1
        first = min(n.start for n in pitched + drums)
        first_note[OFF[beats_off(first, annotation.downbeat)]] += 1
        try:  # prepare with the annotation beside the file: the bars most of its downbeats mark
            piece = load_piece(midi, folder, {}, spec)
            kept_by_annotation += piece.meter.get("from") == "annotation" and (
                (annotation.downbeat + piece.meter["shift_ticks"]) % TICKS_PER_BAR == 0)
        except PrepareError:
            pass
        odd = sum(1 for a, b in zip(annotation.downbeats, annotation.downbeats[1:])
                  if abs(b - a - TICKS_PER_BAR) > TICKS_PER_BEAT // 4)
        odd_bars, odd_songs = odd_bars + odd, odd_songs + (odd > 0)
    total = sum(counts.values())
    seconds = time.perf_counter() - started
    print(f"\nPOP909 songs in 4/4 (index.xlsx) with beat_midi.txt: {total}, {seconds:.0f} s")
    print("The annotation's bars: where most of its downbeats fall (an odd first bar, or a beat tracker's phase "
          "jump mid-song, does not move them).")
    print("| first downbeat from the notes | songs | share |\n|---|---|---|")
    for name in (*OFF.values(), "not read as 4/4"):
        print(f"| {name} | {counts[name]} | {counts[name] / max(1, total):.1%} |")
    matched = counts["matched"] / max(1, total)
    reference = first_note["matched"] / max(1, total)
    print(f"matched: {matched:.1%}; bar 1 on the first note (reference, same songs): {reference:.1%}; "
          f"ratio {matched / max(1e-9, reference):.2f}")
    print(f"against the annotation's literal first downbeat: {literal[True]}/{total} ({literal[True] / max(1, total):.1%})"
          f"; on the {sum(steady.values())} songs whose annotation keeps one phase for 90% of its bars: "
          f"{steady[True]}/{sum(steady.values())} ({steady[True] / max(1, sum(steady.values())):.1%})")
    print(f"prepare with beat_midi.txt beside the file: {kept_by_annotation}/{total} songs cut on the annotated bars "
          f"(its downbeats mark {odd_bars} bars of another length than 4 beats, in {odd_songs} songs)")
    if args.out:
        args.out.write_text(json.dumps({"songs": total, "counts": dict(counts), "matched": round(matched, 4),
                                        "first_note_reference": round(reference, 4),
                                        "literal_first_downbeat": literal[True], "steady_songs": dict(steady),
                                        "prepare_on_annotation": kept_by_annotation, "missed": failures}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
