"""The default song forms' recipe: section sequences and lengths counted per style from the
McGill Billboard songs into symbolic/runtime/forms.json, which symbolic/runtime/form.py reads
at run time.

    python -m stemforge.symbolic.recipes.forms build
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from statistics import median
from typing import Any

from stemforge.symbolic.recipes.harmony_data import read_billboard
from stemforge.symbolic.recipes.progressions import SEVENTH_SOURCES, WINDOW_BARS, beat_window, window_label
from stemforge.symbolic.runtime.form import FORMS_PATH, section_name


def build_forms(billboard: Path, top: int = 12) -> dict[str, Any]:
    """Section sequences and lengths of the Billboard songs per style: the `top` commonest
    sequences of section functions (repeated sections of one function merged; functions that
    are not SECTION_KINDS dropped; the first 8 kept) and each function's median length in
    bars, rounded to a whole 4 (at least 4)."""
    songs = read_billboard(billboard)
    sequences: dict[str, Counter] = defaultdict(Counter)
    lengths: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for song in songs:
        sequence: list[str] = []
        for section in song.sections:
            name = section_name(section.function) if section.function else None
            if name is None:
                continue
            lengths[song.style][name].append(len(section.bars))
            if not sequence or sequence[-1] != name:
                sequence.append(name)
        if len(sequence) >= 3:
            sequences[song.style][tuple(sequence[:8])] += 1
    styles = {}
    for style in sorted(sequences):
        styles[style] = {
            "songs": sum(sequences[style].values()),
            "forms": [{"sections": list(seq), "songs": n} for seq, n in sequences[style].most_common(top)],
            "lengths": {name: max(4, 4 * round(median(values) / 4)) for name, values in sorted(lengths[style].items())},
        }
    return {"source": "McGill Billboard Project, Burgoyne, Wild and Fujinaga 2011 (CC0)",
            "built_by": "python -m stemforge.symbolic.recipes.forms build", "styles": styles,
            "pairs": verse_chorus_pairs(songs)}


def _roman_bars(labels: list[str]) -> str:
    """Half-bar roman numerals of a 4-bar window -> 'I | vi | IV V | V' (one or two chords a bar)."""
    bars = []
    for bar in range(0, len(labels), 2):
        first, second = labels[bar], labels[bar + 1]
        bars.append(first if first == second else f"{first} {second}")
    return " | ".join(bars)


def verse_chorus_pairs(songs: list) -> dict[str, dict[str, list[dict[str, str]]]]:
    """Per style and mode, each song's first verse and first chorus progressions (the first 4
    bars of each, roman numerals in the song's key, 7ths kept where the style's table keeps
    them): how real songs pair a verse with its chorus. A song whose verse and chorus are not
    both 4 bars of 4/4 with a chord on every half bar, or are in two keys, is left out."""
    pairs: dict[str, dict[str, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    skipped: Counter = Counter()
    for song in songs:
        found: dict[str, Any] = {}
        for section in song.sections:
            name = section_name(section.function) if section.function else None
            if name not in ("verse", "chorus") or name in found or len(section.bars) < WINDOW_BARS:
                continue
            bars = section.bars[:WINDOW_BARS]
            beats = [bar.beat_chords() for bar in bars]
            if any(bar.beats != 4 for bar in bars) or any(b is None for b in beats) or len({b.key for b in bars}) > 1:
                continue
            window = beat_window(song.song_id, bars[0].key, [c for b in beats for c in b or ()], skipped)
            if window is not None:
                found[name] = window
        if len(found) < 2 or found["verse"].key != found["chorus"].key:
            continue
        key = found["verse"].key
        sevenths = f"billboard_{song.style}" in SEVENTH_SOURCES
        verse, chorus = (_roman_bars([window_label(c, key, sevenths) for c in found[n].chords])
                         for n in ("verse", "chorus"))
        if verse != chorus:
            pairs[song.style][key.mode].append({"verse": verse, "chorus": chorus, "song": song.song_id})
    return {style: dict(modes) for style, modes in sorted(pairs.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemforge.symbolic.recipes.forms",
                                     description="Rebuild symbolic/runtime/forms.json from the Billboard set.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="count the section forms of the Billboard songs per style")
    build.add_argument("--billboard", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data"
                       / "billboard", help="the Billboard folder (default: ../shared/data/billboard)")
    build.add_argument("--out", type=Path, default=FORMS_PATH)
    args = parser.parse_args(argv)
    if not (args.billboard / "McGill-Billboard").is_dir():
        print(f"error: {args.billboard}: not the Billboard folder (no McGill-Billboard/)", file=sys.stderr)
        return 2
    table = build_forms(args.billboard)
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    for style, entry in table["styles"].items():
        print(f"{style}: {entry['songs']} songs; {entry['forms'][0]['sections']}; lengths {entry['lengths']}")
    for style, modes in table["pairs"].items():
        print(f"{style}: verse/chorus pairs " + ", ".join(f"{mode} {len(found)}" for mode, found in modes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
