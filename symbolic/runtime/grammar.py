"""The token grammar: which tokens may come next so that a sequence always decodes to the
requested roles, each exactly `bars` bars, notes in range, and the given prefix.

The masks are boolean numpy arrays over the vocabulary built once per tokenizer; a step
combines a few of them (<2% of a forward pass), so every sample is valid by construction.

Two levels: `allowed()` is what any token, forced or sampled, must satisfy (the structure);
`sampling_mask()` adds what only sampled tokens must satisfy, so that a user's seed clip is
never rejected for it: no second hit of one pitch at one position (a doubled drum hit is an
audible spike in the stem), and a token budget per bar that keeps every later bar and track
inside the model's context, so no request fails on the context length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.music.tokenizer import ROLE_PROGRAMS, ComposerTokenizer


class Kind(IntEnum):
    OTHER = 0
    TRACK_START = 1
    TRACK_END = 2
    PROGRAM = 3
    BAR = 4
    POSITION = 5
    PITCH = 6
    PITCH_DRUM = 7
    VELOCITY = 8
    DURATION = 9
    EOS = 10


def _classify(token: str, grid_per_beat: int) -> tuple[Kind, int]:
    name, _, value = token.partition("_")
    if token == "EOS_None":
        return Kind.EOS, 0
    simple = {"Track": None, "Bar": Kind.BAR, "Position": Kind.POSITION, "Pitch": Kind.PITCH,
              "PitchDrum": Kind.PITCH_DRUM, "Velocity": Kind.VELOCITY, "Program": Kind.PROGRAM}
    if name == "Track":
        return (Kind.TRACK_START if value == "Start" else Kind.TRACK_END), 0
    if name == "Duration":
        beats, sub, resolution = (int(x) for x in value.split("."))
        return Kind.DURATION, beats * grid_per_beat + sub * grid_per_beat // resolution
    if name in simple:
        kind = simple[name]
        return kind, (0 if value == "None" else int(value))
    return Kind.OTHER, 0


class GrammarTables:
    """Per-tokenizer constant arrays over the vocabulary."""

    def __init__(self, tokenizer: ComposerTokenizer) -> None:
        grid = tokenizer.spec.grid_per_beat
        kinds, values = zip(*(_classify(t, grid) for t in tokenizer.id_to_token))
        self.kind = np.array(kinds, dtype=np.int64)
        self.value = np.array(values, dtype=np.int64)
        self.vocab_size = len(kinds)
        self.ticks_per_bar = tokenizer.ticks_per_bar_grid
        self.tokenizer = tokenizer

        def one_hot(index: int) -> np.ndarray:
            mask = np.zeros(self.vocab_size, dtype=bool)
            mask[index] = True
            return mask

        self.bar = self.kind == Kind.BAR
        self.position = self.kind == Kind.POSITION
        self.velocity = self.kind == Kind.VELOCITY
        self.pitched = self.kind == Kind.PITCH
        self.any_pitch = self.pitched | (self.kind == Kind.PITCH_DRUM)
        self.note_start = self.position | self.any_pitch
        self.duration = self.kind == Kind.DURATION
        self.track_start = one_hot(tokenizer.track_start_id)
        self.track_end = one_hot(tokenizer.track_end_id)
        self.eos = one_hot(tokenizer.eos_id)
        self.program = {role: one_hot(tokenizer.vocab[f"Program_{p}"]) for role, p in ROLE_PROGRAMS.items()}
        self.pitch: dict[str, np.ndarray] = {}
        for role, (low, high) in tokenizer.spec.role_pitch_ranges.items():
            kind = Kind.PITCH_DRUM if role == "drums" else Kind.PITCH
            self.pitch[role] = (self.kind == kind) & (self.value >= low) & (self.value < high)


    def in_key(self, key: str) -> np.ndarray:
        """1.0 on pitched-note tokens whose pitch class is in `key`'s scale, else 0."""
        from stemforge.symbolic.music.keys import parse_key

        scale = sorted(parse_key(key).scale_pitch_classes)
        return (self.pitched & np.isin(self.value % 12, scale)).astype(np.float32)


class GrammarError(UserError):
    """A forced token (prefix, seed clip, kept track) that breaks the grammar."""


# Typical share of a piece's tokens per role (shipped corpus: drums ~55%, melody ~30%,
# bass ~15%); the context left for generated tracks is split by these weights.
ROLE_TOKEN_WEIGHTS: dict[str, float] = {"drums": 0.5, "bass": 0.2, "melody": 0.3}
NOTE_TOKENS = 4  # Position Pitch Velocity Duration: the most one more note can cost


@dataclass
class GrammarState:
    """Where one sequence stands. `roles` is the order tracks are emitted in."""

    tables: GrammarTables
    roles: tuple[str, ...]
    bars: int
    role_index: int = -1  # index into roles of the current track; -1 before the first
    stage: str = "track_start"  # track_start | program | body | done
    bar_count: int = 0
    position: int = -1  # grid position within the current bar, -1 = none yet
    last: Kind = Kind.OTHER
    notes_in_track: int = 0
    history: list[int] = field(default_factory=list)
    max_tokens: int | None = None  # the model's context; None = no budget
    length: int = 0  # tokens of the whole sequence so far, prefix included
    bar_tokens: int = 0  # tokens of the current bar after its Bar token
    bar_cap: int | None = None  # sampled notes may not take a bar beyond this many tokens
    pitches_here: set[int] = field(default_factory=set)  # pitch tokens at the current position
    capping: bool = False  # the last `sampling_mask` closed the bar for the budget

    @property
    def role(self) -> str | None:
        return self.roles[self.role_index] if 0 <= self.role_index < len(self.roles) else None

    @property
    def bar_index(self) -> int:
        """0-based bar the track is in (valid once its first Bar token is out)."""
        return self.bar_count - 1

    def sampling_mask(self) -> np.ndarray:
        """`allowed()` minus what a sampled token must not do: repeat a pitch at this
        position, or start a note the bar's token budget has no room for."""
        mask = self.allowed()
        self.capping = False
        if self.stage != "body":
            return mask
        if self.pitches_here and self.last in (Kind.POSITION, Kind.VELOCITY, Kind.DURATION):
            mask = mask.copy()
            mask[list(self.pitches_here)] = False
        if self.bar_cap is not None and self.bar_tokens + NOTE_TOKENS > self.bar_cap and self.last != Kind.POSITION:
            closing = mask & ~self.tables.note_start
            if bool(closing.any()):
                mask, self.capping = closing, True
        return mask

    def _set_bar_cap(self) -> None:
        """Split the context left by the generated tracks still to come (this one included),
        after reserving the bare structure of all of them, over this track's bars still to
        come (all of them at its start; after a seed clip's bars, the rest: `rebudget`)."""
        if self.max_tokens is None:
            return
        later = self.roles[self.role_index:]
        bars_left = self.bars - max(0, self.bar_count - 1)
        structure = bars_left + 1 + sum(self.bars + 3 for _ in later[1:]) + 1  # Bars, Track_Ends, EOS
        free = max(0, self.max_tokens - self.length - structure)
        share = ROLE_TOKEN_WEIGHTS.get(self.role, 0.3) / sum(ROLE_TOKEN_WEIGHTS.get(r, 0.3) for r in later)
        self.bar_cap = int(free * share) // bars_left

    def rebudget(self) -> None:
        """The bar budget again from here (a track continued after forced context bars that
        were longer, or shorter, than the budget its start gave them)."""
        if self.stage == "body":
            self._set_bar_cap()

    def allowed(self) -> np.ndarray:
        t = self.tables
        if self.stage == "done":
            return t.eos
        if self.stage == "track_start":
            return t.track_start if self.role_index + 1 < len(self.roles) else t.eos
        if self.stage == "program":
            return t.program[self.roles[self.role_index]]
        role = self.roles[self.role_index]
        if self.last == Kind.PROGRAM:
            return t.bar
        if self.last == Kind.POSITION:
            return t.pitch[role]
        if self.last in (Kind.PITCH, Kind.PITCH_DRUM):
            return t.velocity
        if self.last == Kind.VELOCITY and role != "drums":
            remaining = (self.bars - self.bar_count) * t.ticks_per_bar + t.ticks_per_bar - self.position
            return t.duration & (t.value <= remaining)
        # after a Bar or a complete note (Duration; Velocity for drums): a later position,
        # another note at this position, the next bar or the end
        mask = t.position & (t.value > self.position)
        if self.last in (Kind.DURATION, Kind.VELOCITY):
            mask = mask | t.pitch[role]
        if self.bar_count < self.bars:
            mask = mask | t.bar
        elif self.notes_in_track > 0:
            mask = mask | t.track_end
        return mask

    def advance(self, token: int) -> None:
        if not bool(self.allowed()[token]):
            name = self.tables.tokenizer.id_to_token[token]
            raise GrammarError(f"token {name} is not allowed here (stage {self.stage})")
        kind = Kind(int(self.tables.kind[token]))
        self.history.append(token)
        self.length += 1
        self.bar_tokens += 1
        if kind in (Kind.PITCH, Kind.PITCH_DRUM):
            self.pitches_here.add(token)
        elif kind in (Kind.POSITION, Kind.BAR):
            self.pitches_here = set()
        if kind == Kind.EOS:
            self.stage = "done"
        elif kind == Kind.TRACK_START:
            self.role_index += 1
            self.stage = "program"
        elif kind == Kind.PROGRAM:
            self.stage, self.bar_count, self.position, self.notes_in_track = "body", 0, -1, 0
            self._set_bar_cap()
        elif kind == Kind.TRACK_END:
            self.stage = "track_start"
        elif kind == Kind.BAR:
            self.bar_count += 1
            self.position = -1
            self.bar_tokens = 0
        elif kind == Kind.POSITION:
            self.position = int(self.tables.value[token])
        elif kind == Kind.DURATION or (kind == Kind.VELOCITY and self.roles[self.role_index] == "drums"):
            self.notes_in_track += 1
        self.last = kind

    @property
    def finished(self) -> bool:
        return self.stage == "done"

    @property
    def forced_token(self) -> int | None:
        """The only allowed token, when there is exactly one (fed without sampling)."""
        mask = self.allowed()
        if int(mask.sum()) == 1:
            return int(np.flatnonzero(mask)[0])
        return None
