"""What sets each genre apart in a model's training data: where in the bar each drum
plays, and where bass and melody notes start, counted per genre.

The sampler's genre emphasis (`symbolic.runtime.guide`) reads these counts. A position or drum
that a genre uses more than the training data as a whole gets a bonus of
log P(x | genre) - log P(x), the same contrast classifier-free guidance applies with a
second, unconditioned model (which a model trained without genre dropout does not
have). A trap snare on beat 3, house's off-beat open hats and a clave's positions get
louder; what every genre shares is left to the model.

Counted from the prepared token dataset when `pipeline train` runs and saved as
`style.json` in the model directory, so every model carries its own.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.music.tokenizer import PROGRAM_ROLES, ComposerTokenizer

STYLE_FILE = "style.json"
STYLE_KIND = "stemforge-style"
PRIOR_ONSETS = 50.0  # pseudo-onsets of the whole data's distribution behind each genre estimate
BACKBONE_RATE = 0.7  # a drum at a position in this share of a genre's bars is its skeleton
SKELETON_DRUMS = frozenset(range(35, 41))  # kicks, rim, snares, clap
SKELETON_VELOCITY = 60  # a groove's skeleton is its played snares, not its ghost notes (kicks all count)
KICKS = frozenset({35, 36})
MAX_SKELETONS = 64  # patterns kept per genre, commonest first


class StyleError(UserError):
    """A style.json that cannot be read; the message names the file."""


@dataclass
class StyleStats:
    """Onset counts per genre on the token grid (`positions_per_bar` a bar)."""

    positions_per_bar: int
    bars: dict[str, int]  # genre -> training bars counted
    drums: dict[str, dict[str, list[int]]]  # genre -> drum pitch (str) -> onsets per position
    bass: dict[str, list[int]]  # genre -> onsets per position
    melody: dict[str, list[int]]
    onsets_per_bar: dict[str, dict[str, float]]  # genre -> role -> distinct onset positions a bar
    hits_per_bar: dict[str, float]  # genre -> drum hits a bar (several drums may share an onset)
    # genre -> [[(position, pitch) of the kicks and snares, ...], grooves, feel]: each training
    # window's commonest bar of played (not ghost) kick and snare hits and the feel of its
    # drums (`window_feel`), counted per genre
    skeletons: dict[str, list[list]] = field(default_factory=dict)

    def onset_rate(self, genre: str, role: str) -> float | None:
        """What the density of a part is measured in: drum hits a bar, onsets of the lines."""
        if role == "drums":
            return self.hits_per_bar.get(genre)
        return self.onsets_per_bar.get(genre, {}).get(role)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"kind": STYLE_KIND, **asdict(self)}, separators=(",", ":")))

    @classmethod
    def load(cls, path: Path) -> StyleStats:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise StyleError(f"{path}: not readable ({error})") from error
        if data.pop("kind", None) != STYLE_KIND:
            raise StyleError(f"{path}: not a stemforge style file")
        skeletons = {genre: [(tuple((int(p), int(d)) for p, d in hits), int(count), str(feel))
                             for hits, count, feel in patterns]
                     for genre, patterns in data.pop("skeletons", {}).items()}
        return cls(**data, skeletons=skeletons)

    def _drum_tables(self, genre: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(drum pitches, the genre's onsets (pitches, positions), everyone's)."""
        pitches = sorted({int(p) for counts in self.drums.values() for p in counts})

        def table(genres: list[str]) -> np.ndarray:
            out = np.zeros((len(pitches), self.positions_per_bar))
            for g in genres:
                for pitch, counts in self.drums.get(g, {}).items():
                    out[pitches.index(int(pitch))] += counts
            return out

        return pitches, table([genre]), table(list(self.drums))

    def drum_position_log_ratio(self, genre: str, prior_onsets: float = PRIOR_ONSETS) -> np.ndarray:
        """log P(a drum onset at p | genre) - log P(one at p), per position; the genre's rate
        pulled toward the whole data's by `prior_onsets` pseudo-counts."""
        _, mine, everyone = self._drum_tables(genre)
        bars_mine, bars_all = self.bars.get(genre, 0), max(1, sum(self.bars.values()))
        rate_all = everyone.sum(0) / bars_all + 1e-6
        prior_bars = prior_onsets / max(float(rate_all.mean()), 1e-6)
        rate_mine = (mine.sum(0) + prior_bars * rate_all) / (bars_mine + prior_bars)
        return np.log(rate_mine) - np.log(rate_all)

    def drum_log_share(self, genre: str, prior_onsets: float = PRIOR_ONSETS) -> dict[int, np.ndarray]:
        """pitch -> log P(that drum | an onset at p, genre) per position, pulled toward the
        whole data's shares by `prior_onsets` pseudo-counts (a position the genre rarely
        uses borrows everyone's drums)."""
        pitches, mine, everyone = self._drum_tables(genre)
        share_all = (everyone + 0.5) / (everyone.sum(0) + 0.5 * len(pitches))
        share_mine = (mine + prior_onsets * share_all) / (mine.sum(0) + prior_onsets)
        return {pitch: np.log(share_mine[i]) for i, pitch in enumerate(pitches)}

    def backbone(self, genre: str, min_rate: float = BACKBONE_RATE) -> dict[int, set[int]]:
        """position -> the kicks and snares the genre plays there in at least `min_rate` of
        its bars: its skeleton (house's four kicks, trap's snare on 3, hip-hop's backbeat).
        Cymbals are left to the model: a skeleton of hats would crowd the kick out."""
        bars = self.bars.get(genre, 0)
        out: dict[int, set[int]] = {}
        for pitch, counts in self.drums.get(genre, {}).items():
            if int(pitch) not in SKELETON_DRUMS:
                continue
            for position, count in enumerate(counts):
                if bars and count / bars >= min_rate:
                    out.setdefault(position, set()).add(int(pitch))
        return out

    def line_log_ratio(self, genre: str, role: str, prior_onsets: float = PRIOR_ONSETS) -> np.ndarray:
        """log P(a `role` onset at p | genre) - log P(one at p), per position, the genre's
        rate pulled toward the whole data's by `prior_onsets` pseudo-counts."""
        table = self.bass if role == "bass" else self.melody
        mine = np.asarray(table.get(genre, [0] * self.positions_per_bar), dtype=float)
        everyone = np.sum([np.asarray(v, dtype=float) for v in table.values()], axis=0)
        bars_mine, bars_all = self.bars.get(genre, 0), max(1, sum(self.bars.values()))
        rate_all = everyone / bars_all + 1e-6
        prior_bars = prior_onsets / max(float(rate_all.mean()), 1e-6)
        return np.log((mine + prior_bars * rate_all) / (bars_mine + prior_bars)) - np.log(rate_all)


FEELS: tuple[str, ...] = ("straight", "triplet", "swing16")


def window_feel(slots: Counter) -> str:
    """The grid a window's drums sit on, from how many onsets fall on each 1/12-beat slot of
    the beat: straight 16ths (slots 3, 6, 9), triplets (4, 8) or swung 16ths (4, 6, 10), as
    the corpus quantizes played grooves (`symbolic.music.feel.FEEL_GRIDS`)."""
    straight = slots[3] + slots[9]  # the slots only each grid has (6 is straight's and swung 16ths' "and")
    rolls = slots[1] + slots[2] + slots[5] + slots[7] + slots[11]  # 1/48 and 16th-triplet rolls (trap hats)
    if rolls > 0.15 * sum(count for slot, count in slots.items() if slot):
        return "straight"
    if slots[8] > 2 * slots[10] and slots[8] + slots[4] > straight:
        return "triplet"
    if slots[10] > 2 * slots[8] and slots[10] + slots[4] > straight:  # (a roll in 8th-triplets hits 8 and 10 alike)
        return "swing16"
    return "straight"


def count_style(tokens: np.ndarray, offsets: np.ndarray, tokenizer: ComposerTokenizer) -> StyleStats:
    """Count onsets per genre over the sequences of a prepared split (`*_tokens.npy`)."""
    names = tokenizer.id_to_token
    kind = np.array([t.split("_")[0] for t in names])
    value = np.array([int(t.split("_")[1]) if t.split("_")[0] in ("Position", "Pitch", "PitchDrum", "Program")
                      else -1 for t in names])
    positions = tokenizer.ticks_per_bar_grid
    bars: dict[str, int] = {}
    drums: dict[str, dict[str, np.ndarray]] = {}
    lines: dict[str, dict[str, np.ndarray]] = {"bass": {}, "melody": {}}
    onsets: dict[str, dict[str, int]] = {}
    skeletons: dict[str, Counter] = {}
    velocity_of = {i: int(t.split("_")[1]) for i, t in enumerate(names) if t.startswith("Velocity_")}
    for index in range(len(offsets) - 1):
        sequence = tokens[offsets[index]:offsets[index + 1]]
        genre = names[int(sequence[1])].removeprefix("Genre_")
        bars[genre] = bars.get(genre, 0) + int(names[int(sequence[5])].removeprefix("Bars_"))
        role, position, last_line_position = None, 0, -1
        counted = onsets.setdefault(genre, {})
        drum_bars: list[set[tuple[int, int]]] = []
        drum_slots: Counter = Counter()
        struck: int | None = None  # a skeleton drum whose velocity comes next
        for token in sequence.tolist():
            kind_here = kind[token]
            if kind_here == "Program":
                role, last_line_position = PROGRAM_ROLES.get(int(value[token])), -1
            elif kind_here == "Bar":
                position, last_line_position = 0, -1
                if role == "drums":
                    drum_bars.append(set())
            elif kind_here == "Position":
                position = int(value[token])
                counted[role] = counted.get(role, 0) + 1
                if role == "drums":
                    drum_slots[position % (positions // 4)] += 1
            elif kind_here == "PitchDrum" and role == "drums":
                counts = drums.setdefault(genre, {}).setdefault(str(int(value[token])), np.zeros(positions, int))
                counts[position] += 1
                struck = int(value[token]) if int(value[token]) in SKELETON_DRUMS else None
            elif kind_here == "Velocity" and struck is not None:
                if (struck in KICKS or velocity_of[token] >= SKELETON_VELOCITY) and drum_bars:
                    drum_bars[-1].add((position, struck))
                struck = None
            elif kind_here == "Pitch" and role in lines and position != last_line_position:
                lines[role].setdefault(genre, np.zeros(positions, int))[position] += 1
                last_line_position = position
        played = [frozenset(bar) for bar in drum_bars if bar]
        if played:
            commonest = Counter(played).most_common(1)[0][0]
            skeletons.setdefault(genre, Counter())[(tuple(sorted(commonest)), window_feel(drum_slots))] += 1
    # every onset has its own Position token (REMI writes Position_0 too): these count onsets
    rates = {g: {r: round(n / max(1, bars[g]), 3) for r, n in sorted(by.items()) if r} for g, by in sorted(onsets.items())}
    hits = {g: round(float(sum(c.sum() for c in by.values())) / max(1, bars[g]), 3) for g, by in sorted(drums.items())}
    return StyleStats(
        positions, bars,
        {g: {p: c.tolist() for p, c in sorted(by.items(), key=lambda i: int(i[0]))} for g, by in sorted(drums.items())},
        {g: c.tolist() for g, c in sorted(lines["bass"].items())},
        {g: c.tolist() for g, c in sorted(lines["melody"].items())},
        rates,
        hits,
        {g: [[list(hits), n, feel] for (hits, feel), n in counts.most_common(MAX_SKELETONS) if n >= 2 or len(counts) < 8]
         for g, counts in sorted(skeletons.items())},
    )


def style_of_dataset(data_dir: Path) -> StyleStats:
    """`count_style` of a prepared dataset's training split."""
    tokenizer = ComposerTokenizer.load(data_dir / "tokenizer.json")
    return count_style(np.load(data_dir / "train_tokens.npy"), np.load(data_dir / "train_offsets.npy"), tokenizer)
