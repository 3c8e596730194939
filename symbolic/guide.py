"""The sampler's musical steering: follows a `CompositionPlan` token by token.

The grammar (`symbolic.grammar`) keeps every sequence valid; the guide makes it music a
producer keeps. It watches each token go by (`observe`), hands the sampler whole bars to
force where the plan repeats a bar (`bar_tokens`), and otherwise shifts the model's
logits (in nats) where the plan has an opinion:

- where a note goes (decision points: a new position, another note here, or the next bar):
  density (busy/sparse push toward more or fewer notes) and, for the bass, the kicks of the
  drum track already written (on a kick +, off a kick -, skipping an uncovered kick -);
- which pitch it gets (bass and melody): the key's scale, the chord's bass note where the
  chord changes, chord tones (melody: on the beats), and the size of the step from the
  previous note (repeats and steps +, leaps beyond a 4th - per semitone). Pitch shifts keep
  the total mass of the pitch tokens, so they change which note is played, never whether.

Strengths are nats on the model's logits, so a confident model can still overrule them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from symbolic.conditions import parse_key
from symbolic.grammar import GrammarState, GrammarTables, Kind
from symbolic.plan import VARIATION_KEEPS_BEATS, CompositionPlan

KICK_PITCHES: frozenset[int] = frozenset({35, 36})
LEAP_SEMITONES = 5  # a 4th or more


@dataclass(frozen=True)
class GuideStrengths:
    """How hard each rule pulls, in nats (0 switches a rule off)."""

    key: float = 1.5  # in-scale pitches of bass and melody
    home: float = 0.7  # more for the tonic triad: the key's home notes, so the tonal centre is heard
    mode_note: float = 1.0  # more again for the key's third, the note that tells minor from major
    chord_bass: float = 6.0  # the chord's bass note for the first bass note of a chord
    bass_chord_tone: float = 1.5
    bass_repeat: float = 1.0
    melody_chord_tone: float = 2.0  # chord tones on the beats
    melody_step: float = 1.5  # a step of 1-2 semitones
    leap_per_semitone: float = 0.35  # beyond a major 3rd, bass and melody
    kick: float = 2.0  # bass positions on (+) / off (-) a kick, times the plan's kick lock
    skip_kick: float = 3.0  # moving past a kick no bass note has taken yet
    density: float = 1.0  # per beat of gap to the next note: busy favours short gaps, sparse long


DENSITY_SIGN: dict[str, float] = {"sparse": -1.0, "normal": 0.0, "busy": 1.0}
# the bass is held to the kicks, so the density words must pull it harder to show
DENSITY_ROLE_SCALE: dict[str, float] = {"drums": 1.0, "bass": 2.0, "melody": 1.0}


def guide_pitches(logits: torch.Tensor, bias: torch.Tensor, pitches: torch.Tensor) -> torch.Tensor:
    """Shift probability among the allowed pitches by `bias`, keeping their total mass: the
    guidance changes which note is played, never whether one is."""
    if not bool(pitches.any()):
        return logits
    before = logits[pitches]
    after = before + bias[pitches]
    out = logits.clone()
    out[pitches] = after - torch.logsumexp(after, 0) + torch.logsumexp(before, 0)
    return out


class Guide:
    """One piece's steering state; build a new one per sample."""

    def __init__(self, tables: GrammarTables, plan: CompositionPlan | None, key: str | None,
                 strengths: GuideStrengths) -> None:
        self.tables = tables
        self.plan = plan
        self.strengths = strengths
        grid = tables.tokenizer.spec.grid_per_beat
        self.grid_per_beat = grid
        self.half_bar = VARIATION_KEEPS_BEATS * grid
        self.positions_per_bar = tables.ticks_per_bar
        self.pitch_of = torch.where(tables.pitched, tables.value, torch.full_like(tables.value, -1000)).float()
        pc = tables.value % 12
        self.pc_masks = torch.stack([(tables.pitched & (pc == p)).float() for p in range(12)])
        self.key_vector = None
        if key and strengths.key:
            parsed = parse_key(key)
            third = (parsed.tonic + (3 if parsed.mode == "minor" else 4)) % 12
            triad = [parsed.tonic, third, (parsed.tonic + 7) % 12]
            self.key_vector = (tables.in_key(key) * strengths.key + strengths.home * self.pc_masks[triad].sum(0)
                               + strengths.mode_note * self.pc_masks[third])
        position_ids = (tables.kind == Kind.POSITION).nonzero().flatten()
        order = tables.value[position_ids].argsort()
        self.position_ids = position_ids[order]  # token id of Position_0, Position_1, ...
        self.closing = tables.bar | tables.track_end
        chords = plan.chords if plan else ()
        self.chord_starts = [c[0] for c in chords]
        self.chords = chords
        self._chord_vectors: dict[frozenset[int], torch.Tensor] = {}
        # what has been written so far
        self.bodies: dict[str, list[list[int]]] = {}
        self.kicks: dict[int, set[int]] = {}
        self.previous_pitch: int | None = None
        self.previous_chord: int | None = None
        self.position = -1
        self.onsets: set[int] = set()
        self.closed = False

    # ------------------------------------------------------------------ watching

    def observe(self, token: int, state: GrammarState) -> None:
        """Called after `state.advance(token)`."""
        kind = Kind(int(self.tables.kind[token]))
        role = state.role
        if kind == Kind.PROGRAM:
            self.bodies[role] = []
            self.previous_pitch, self.previous_chord = None, None
            return
        if kind == Kind.BAR:
            self.bodies[role].append([])
            self.position, self.onsets, self.closed = -1, set(), False
            return
        if state.stage != "body" or not self.bodies.get(role):
            return
        self.bodies[role][-1].append(token)
        value = int(self.tables.value[token])
        if kind == Kind.POSITION:
            self.position = value
        elif kind == Kind.PITCH_DRUM:
            self.onsets.add(self.position)
            if role == "drums" and value in KICK_PITCHES:
                self.kicks.setdefault(state.bar_index, set()).add(self.position)
        elif kind == Kind.PITCH:
            self.onsets.add(self.position)
            self.previous_pitch = value
            self.previous_chord = self._chord_index(state.bar_index)

    def bar_tokens(self, state: GrammarState) -> list[int]:
        """Tokens to force at the start of the bar `state` has just entered: the plan's
        repeat of an earlier bar (whole, or its first half for a variation), else none."""
        role, bar = state.role, state.bar_index
        source = self.plan.sources.get(role, {}).get(bar) if self.plan else None
        bodies = self.bodies.get(role, [])
        if source is None or source.source >= len(bodies) - 1:
            return []
        body = bodies[source.source]
        if source.whole:
            self.closed = True
            return list(body)
        kept = []
        for token in body:
            if self.tables.kind[token] == Kind.POSITION and self.tables.value[token] >= self.half_bar:
                break
            kept.append(token)
        return kept

    # ------------------------------------------------------------------ steering

    def steer(self, state: GrammarState, mask: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask, logits) for one sampled token."""
        if state.stage != "body" or state.bar_count == 0:
            return mask, logits
        role = state.role
        if role != "drums" and state.last in (Kind.POSITION, Kind.DURATION):
            logits = self._steer_pitch(state, mask, logits)
        if state.last in (Kind.BAR, Kind.DURATION) or (state.last == Kind.VELOCITY and role == "drums"):
            if self.closed:
                closing = mask & self.closing
                if bool(closing.any()):
                    return closing, logits
            logits = self._steer_onsets(state, mask, logits)
        return mask, logits

    def _steer_onsets(self, state: GrammarState, mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        s = self.strengths
        density = (DENSITY_SIGN.get(self.plan.density if self.plan else "normal", 0.0) * s.density
                   * DENSITY_ROLE_SCALE.get(state.role, 1.0))
        lock = self.plan.kick_lock if self.plan else 0.0
        kicks = self.kicks.get(state.bar_index) if state.role == "bass" and lock > 0 else None
        if not density and not kicks:
            return logits
        bias = torch.zeros_like(logits)
        if density:
            # the gap to the next onset in beats; ending the bar is a gap to its end
            current = max(self.position, 0)
            gaps = (torch.arange(self.positions_per_bar) - current).clamp(min=0) / self.grid_per_beat
            bias[self.position_ids] -= density * gaps
            bias[self.closing] -= density * (self.positions_per_bar - current) / self.grid_per_beat
        if kicks:
            by_position = torch.full((self.positions_per_bar,), -s.kick * lock)
            by_position[sorted(kicks)] = s.kick * lock
            uncovered = [k for k in sorted(kicks) if k > state.position and k not in self.onsets]
            if uncovered:
                by_position[uncovered[0] + 1:] -= s.skip_kick * lock
                bias[self.closing] -= s.skip_kick * lock
            bias[self.position_ids] += by_position
        return logits + bias

    def _chord_index(self, bar: int) -> int | None:
        if not self.chords:
            return None
        tick = bar * self.positions_per_bar + max(self.position, 0)
        return max(0, bisect.bisect_right(self.chord_starts, tick) - 1)

    def _chord_vector(self, tones: frozenset[int]) -> torch.Tensor:
        vector = self._chord_vectors.get(tones)
        if vector is None:
            vector = self._chord_vectors[tones] = self.pc_masks[sorted(tones)].sum(0)
        return vector

    def _steer_pitch(self, state: GrammarState, mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        s = self.strengths
        pitches = mask & self.tables.pitched
        if not bool(pitches.any()):
            return logits
        bias = self.key_vector.clone() if self.key_vector is not None else torch.zeros_like(logits)
        index = self._chord_index(state.bar_index)
        chord = self.chords[index] if index is not None else None
        melody = state.role == "melody"
        if chord is not None:
            _, _, root, bass_pc, tones = chord
            if melody:
                if self.position % self.grid_per_beat == 0:
                    bias += s.melody_chord_tone * self._chord_vector(tones)
            elif self.position == 0 or index != self.previous_chord or self.previous_pitch is None:
                bias += s.chord_bass * self.pc_masks[bass_pc]
            else:
                bias += s.bass_chord_tone * self._chord_vector(tones)
        if self.previous_pitch is not None:
            distance = (self.pitch_of - self.previous_pitch).abs()
            bias -= s.leap_per_semitone * (distance - (LEAP_SEMITONES - 1)).clamp(min=0)
            if melody:
                bias += s.melody_step * ((distance >= 1) & (distance <= 2)).float()
            else:
                bias += s.bass_repeat * (distance == 0).float()
        return guide_pitches(logits, bias, pitches)
