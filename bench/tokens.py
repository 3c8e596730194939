"""MMM vs REMI+programs on the same MIDI files: round-trip fidelity and sequence length.

    python bench/tokens.py MIDI_DIR [--limit 50]

Both use the grid stemforge trains on (12 steps per beat, 8 velocities); the numbers back
the choice written in docs/tokens.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import symusic  # noqa: E402
from miditok import MMM, REMI, TokenizerConfig  # noqa: E402


def config() -> TokenizerConfig:
    return TokenizerConfig(use_programs=True, programs=[-1, 0, 33], use_pitchdrum_tokens=True,
                           beat_res={(0, 4): 12}, num_velocities=8, use_tempos=False, use_time_signatures=False,
                           base_tokenizer="REMI", use_note_duration_programs=[0, 33])


def notes_of(score: symusic.Score) -> list[set]:
    out = []
    for track in sorted(score.tracks, key=lambda t: (t.is_drum, t.program)):
        # drums are one-shots: stemforge's tokens carry no drum durations
        out.append({(n.time, 0 if track.is_drum else n.duration, n.pitch, track.is_drum) for n in track.notes})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("midi_dir", type=Path)
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args()
    files = sorted(args.midi_dir.rglob("*.mid"))[: args.limit]
    results = {}
    for name, tokenizer in (("MMM", MMM(config())), ("REMI+programs", REMI(config()))):
        lengths, exact = [], 0
        for path in files:
            score = symusic.Score(str(path)).resample(12, min_dur=1)
            for track in score.tracks:
                track.program = 33 if track.name == "bass" else 0
            tokens = tokenizer.encode(score)
            ids = tokens.ids if hasattr(tokens, "ids") else tokens[0].ids
            lengths.append(len(ids) / (score.end() / 48))
            decoded = tokenizer.decode(tokens)
            exact += notes_of(decoded) == notes_of(score)
        results[name] = (np.mean(lengths), exact / len(files))
    print(f"{len(files)} files from {args.midi_dir}")
    print(f"{'tokenizer':16s} {'tokens/bar':>10s} {'exact round trip':>17s}")
    for name, (per_bar, share) in results.items():
        print(f"{name:16s} {per_bar:10.1f} {share:16.0%}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.machine import reported

    with reported():
        main()
