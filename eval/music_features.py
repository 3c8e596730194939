"""Musical features of arrangements, for comparing generated music with its training data
(`bench/quality.py`): where drum hits fall in the bar, swing, notes per bar, notes in key,
bass notes that land on kicks, and a small genre classifier over a window's features.

Times are integer ticks; every function takes `ticks_per_beat`, bars are 4/4. Shares are
returned as `Share` (hits, total) so that they pool over many windows as a ratio of sums
instead of a mean of ratios (a 2-note bass line must not weigh as much as a 40-note one).
The swing definition is the corpus builder's (`symbolic.corpus_rules.swing_ratio`), made
independent of the tick resolution, so figures compare with docs/corpus.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon

from symbolic.arrangement import BEATS_PER_BAR, Note
from symbolic.conditions import Key

STEPS_PER_BAR = 16  # 16th notes
STEPS_PER_BEAT = STEPS_PER_BAR // BEATS_PER_BAR
# General MIDI drum notes grouped the way a producer reads a groove.
KICKS: frozenset[int] = frozenset({35, 36})
SNARES: frozenset[int] = frozenset({37, 38, 39, 40})  # rim, snare, clap, electric snare
CYMBALS: frozenset[int] = frozenset({42, 44, 46, 49, 51, 52, 53, 55, 57, 59})  # hats, crash, ride
DRUM_GROUPS: dict[str, frozenset[int] | None] = {"kick": KICKS, "snare": SNARES, "cymbal": CYMBALS, "other": None}
# Swung positions inside a beat, as fractions of it: the 8th-triplet "and" (2/3), the
# swung 16ths (1/3 and 5/6). 0.5 and 0.25/0.75 are the straight off-beats.
SWUNG_FRACTIONS: tuple[tuple[int, int], ...] = ((1, 3), (2, 3), (5, 6))


@dataclass(frozen=True)
class Share:
    """`hits` of `total` events; adds up over windows. `value` is NaN for no events."""

    hits: int = 0
    total: int = 0

    def __add__(self, other: Share) -> Share:
        return Share(self.hits + other.hits, self.total + other.total)

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else float("nan")


def total_share(shares: Iterable[Share]) -> Share:
    return sum(shares, Share())


def drum_group(pitch: int) -> str:
    for name, pitches in DRUM_GROUPS.items():
        if pitches is not None and pitch in pitches:
            return name
    return "other"


def step_in_bar(tick: int, ticks_per_beat: int) -> int:
    """The nearest 16th step of the bar (0-15); swung notes fall to their nearest 16th and
    a hit just before the next bar wraps to step 0."""
    return round(tick * STEPS_PER_BEAT / ticks_per_beat) % STEPS_PER_BAR


def onset_histogram(notes: Iterable[Note], ticks_per_beat: int, pitches: frozenset[int] | None = None) -> np.ndarray:
    """Onset counts over the 16 steps of a bar, summed over all bars (float64, length 16);
    only notes whose pitch is in `pitches` when given."""
    histogram = np.zeros(STEPS_PER_BAR)
    for note in notes:
        if pitches is None or note.pitch in pitches:
            histogram[step_in_bar(note.start, ticks_per_beat)] += 1
    return histogram


def group_histograms(drums: Iterable[Note], ticks_per_beat: int) -> dict[str, np.ndarray]:
    """`onset_histogram` per drum group (kick, snare, cymbal, other)."""
    out = {name: np.zeros(STEPS_PER_BAR) for name in DRUM_GROUPS}
    for note in drums:
        out[drum_group(note.pitch)][step_in_bar(note.start, ticks_per_beat)] += 1
    return out


def histogram_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 = same distribution, 1 = disjoint) between two
    onset histograms, each normalised to sum 1; NaN when either is empty."""
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def swing(notes: Iterable[Note], ticks_per_beat: int) -> Share:
    """Off-beat onsets (not on a beat) that sit on a swung position, of all off-beat onsets:
    0 for a straight groove, 1 for a fully swung one."""
    swung_ticks = {ticks_per_beat * a // b for a, b in SWUNG_FRACTIONS if ticks_per_beat * a % b == 0}
    offbeat = [note.start % ticks_per_beat for note in notes if note.start % ticks_per_beat]
    return Share(sum(1 for o in offbeat if o in swung_ticks), len(offbeat))


def in_key(notes: Iterable[Note], key: Key) -> Share:
    """Notes whose pitch class is in the key's (natural) scale."""
    scale = key.scale_pitch_classes
    pitches = [note.pitch % 12 for note in notes]
    return Share(sum(1 for p in pitches if p in scale), len(pitches))


def best_key_share(notes: Iterable[Note]) -> Share:
    """`in_key` for the best-fitting of the 24 major/minor keys: tells music that is tonal in
    another key (high here, low for the asked key) from music that is not tonal at all."""
    pitches = list(notes)
    shares = [in_key(pitches, Key(tonic, mode)) for tonic in range(12) for mode in ("major", "minor")]
    return max(shares, key=lambda share: share.hits)


def bass_on_kick(bass: Iterable[Note], drums: Iterable[Note], tolerance_ticks: int = 0) -> Share:
    """Bass onsets (distinct start ticks) within `tolerance_ticks` of a kick onset."""
    kicks = np.asarray(sorted({n.start for n in drums if n.pitch in KICKS}), dtype=np.int64)
    onsets = sorted({n.start for n in bass})
    if not len(kicks):
        return Share(0, len(onsets))
    hits = 0
    for onset in onsets:
        nearest = np.abs(kicks - onset).min()
        hits += int(nearest <= tolerance_ticks)
    return Share(hits, len(onsets))


def notes_per_bar(tracks: dict[str, list[Note]], bars: int) -> float:
    return sum(len(notes) for notes in tracks.values()) / bars


def cut_window(tracks: dict[str, list[Note]], start_bar: int, bars: int, ticks_per_beat: int) -> dict[str, list[Note]]:
    """The notes starting in [start_bar, start_bar + bars), moved to start at tick 0."""
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    lo, hi = start_bar * ticks_per_bar, (start_bar + bars) * ticks_per_bar
    return {role: [Note(n.start - lo, n.duration, n.pitch, n.velocity) for n in notes if lo <= n.start < hi]
            for role, notes in tracks.items()}


# ------------------------------------------------------------------ classifier features

PITCHED = ("bass", "melody")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"drums_{g}_step{s}" for g in DRUM_GROUPS for s in range(STEPS_PER_BAR)),
    *(f"{r}_step{s}" for r in PITCHED for s in range(STEPS_PER_BAR)),
    *(f"{r}_notes_per_bar" for r in ("drums", *PITCHED)),
    *(f"{r}_{stat}" for r in PITCHED for stat in ("mean_pitch", "pitch_spread", "mean_beats")),
    *(f"{r}_mean_velocity" for r in ("drums", *PITCHED)),
    "drums_swing", "melody_swing", "bass_on_kick",
)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def window_features(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int) -> np.ndarray:
    """One vector (named by FEATURE_NAMES) describing a window: per-bar onset histograms of
    the drum groups, bass and melody; notes per bar; register, spread and note length of the
    pitched parts; loudness; swing; bass on kick. Tempo is left out on purpose: it is a
    condition, not something the composer generates. An absent part gives zeros."""
    drums, bass, melody = (tracks.get(r, []) for r in ("drums", *PITCHED))
    parts = [group_histograms(drums, ticks_per_beat)[g] / bars for g in DRUM_GROUPS]
    parts += [onset_histogram(tracks.get(r, []), ticks_per_beat) / bars for r in PITCHED]
    values = [len(drums) / bars, len(bass) / bars, len(melody) / bars]
    for notes in (bass, melody):
        pitches = [n.pitch for n in notes]
        values += [_mean(pitches), float(np.std(pitches)) if pitches else 0.0,
                   _mean([n.duration / ticks_per_beat for n in notes])]
    values += [_mean([n.velocity for n in notes]) for notes in (drums, bass, melody)]
    for share in (swing(drums, ticks_per_beat), swing(melody, ticks_per_beat), bass_on_kick(bass, drums)):
        values.append(0.0 if share.total == 0 else share.value)
    return np.concatenate([*parts, np.asarray(values)]).astype(np.float32)


@dataclass
class GenreClassifier:
    """Multinomial logistic regression on standardised features (L2-regularised, fitted
    full-batch with L-BFGS). Written here because scikit-learn is not a dependency; it is
    a dozen lines of torch. l2 = 1e-2 had the best held-out accuracy on the default corpus
    (validation windows: 1e-4 76.5%, 1e-3 77.5%, 1e-2 77.8%, 1e-1 73.8%)."""

    labels: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)

    @classmethod
    def fit(cls, features: np.ndarray, labels: list[str], l2: float = 1e-2, steps: int = 200) -> GenreClassifier:
        names = sorted(set(labels))
        if len(names) < 2:
            raise ValueError(f"classifier: needs at least two genres to tell apart, got {names}")
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale < 1e-6] = 1.0
        x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
        y = torch.tensor([names.index(label) for label in labels])
        weight = torch.zeros(x.shape[1], len(names), requires_grad=True)
        bias = torch.zeros(len(names), requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(names, mean, scale, weight.detach().numpy().copy(), bias.detach().numpy().copy())

    def predict(self, features: np.ndarray) -> list[str]:
        logits = ((features - self.mean) / self.scale) @ self.weight + self.bias
        return [self.labels[i] for i in logits.argmax(axis=1)]
